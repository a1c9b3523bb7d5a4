//! Splits a crush map text into tokens that remember their line.
//!
//! crushtool's grammar is free-form: it strips `#` comments, joins all lines and lets runs of
//! white space separate words. The only characters that form tokens on their own are the
//! braces and brackets. Everything else between separators is one word; whether a word is a
//! valid name or number is decided by the parser, which can then say what it expected.

use std::fmt;

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// A run of characters that are not white space, braces, brackets or `#`.
    Word(&'a str),
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
}

impl fmt::Display for Tok<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::LBrace => f.write_str("`{`"),
            Tok::RBrace => f.write_str("`}`"),
            Tok::LBracket => f.write_str("`[`"),
            Tok::RBracket => f.write_str("`]`"),
        }
    }
}

/// A token and the 1-based line it starts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token<'a> {
    /// The token.
    pub tok: Tok<'a>,
    /// 1-based line number.
    pub line: usize,
}

/// Splits `text` into tokens. Never fails: every character either separates, is a bracket,
/// starts a comment or belongs to a word.
pub(crate) fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    for (index, raw_line) in text.lines().enumerate() {
        let line = index + 1;
        let content = match raw_line.find('#') {
            Some(comment) => &raw_line[..comment],
            None => raw_line,
        };
        let mut word_start: Option<usize> = None;
        for (pos, ch) in content.char_indices() {
            let single = match ch {
                '{' => Some(Tok::LBrace),
                '}' => Some(Tok::RBrace),
                '[' => Some(Tok::LBracket),
                ']' => Some(Tok::RBracket),
                _ => None,
            };
            if single.is_some() || ch.is_whitespace() {
                if let Some(start) = word_start.take() {
                    tokens.push(Token {
                        tok: Tok::Word(&content[start..pos]),
                        line,
                    });
                }
                if let Some(tok) = single {
                    tokens.push(Token { tok, line });
                }
            } else if word_start.is_none() {
                word_start = Some(pos);
            }
        }
        if let Some(start) = word_start {
            tokens.push(Token {
                tok: Tok::Word(&content[start..]),
                line,
            });
        }
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_brackets_comments_and_lines() {
        let tokens = tokenize("host a{ # comment { here\n\titem x weight 1.0\n}[1 2]");
        let kinds: Vec<(Tok<'_>, usize)> = tokens.iter().map(|t| (t.tok, t.line)).collect();
        assert_eq!(
            kinds,
            vec![
                (Tok::Word("host"), 1),
                (Tok::Word("a"), 1),
                (Tok::LBrace, 1),
                (Tok::Word("item"), 2),
                (Tok::Word("x"), 2),
                (Tok::Word("weight"), 2),
                (Tok::Word("1.0"), 2),
                (Tok::RBrace, 3),
                (Tok::LBracket, 3),
                (Tok::Word("1"), 3),
                (Tok::Word("2"), 3),
                (Tok::RBracket, 3),
            ]
        );
    }

    #[test]
    fn non_ascii_stays_inside_words() {
        let tokens = tokenize("é{ü");
        assert_eq!(tokens.len(), 3);
        assert_eq!(tokens[0].tok, Tok::Word("é"));
        assert_eq!(tokens[2].tok, Tok::Word("ü"));
    }
}
