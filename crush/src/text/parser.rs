//! Compiles the token stream into a [`CrushMap`], following `crushtool -c` (Ceph 16's
//! `CrushCompiler` and grammar) where it is well defined.
//!
//! The text has four sections in this order: `tunable`/`device`/`type` lines, buckets,
//! rules, `choose_args`. Buckets are collected first and compiled together when the first
//! rule (or `choose_args`, or the end) is reached: children before parents whatever their
//! order in the text, ids assigned, weights computed, then the shadow trees built, so rules
//! can take `B class C`. Every statement is read token by token with no recursion, and
//! every error names its line.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::lexer::{tokenize, Tok, Token};
use super::ParseError;
use crate::model::{
    Bucket, BucketAlg, BucketItem, ChooseArg, ChooseArgs, CrushMap, Device, Rule, RuleType, Step,
    ITEM_UNDEF, WEIGHT_ONE,
};
use crate::shadow;

/// crushtool refuses device weights above 100.0 (`CRUSH_MAX_DEVICE_WEIGHT`).
const MAX_DEVICE_WEIGHT: u32 = 100 * WEIGHT_ONE;
/// crushtool refuses bucket weights above 65535.0 (`CRUSH_MAX_BUCKET_WEIGHT`).
const MAX_BUCKET_WEIGHT: u32 = 65535 * WEIGHT_ONE;
/// Rule ids are encoded in one byte in Ceph's binary map.
const MAX_RULE_ID: i64 = 255;

/// Statement keywords inside a bucket: a word on the same line that is one of these starts
/// the next statement rather than being a misspelt option of the current one.
const BUCKET_KEYWORDS: &[&str] = &["id", "alg", "hash", "item"];
/// Keywords that may follow a `step take` on the same line.
const RULE_KEYWORDS: &[&str] = &["step", "id", "ruleset", "type", "min_size", "max_size"];
/// Keywords that start a top-level statement.
const TOP_KEYWORDS: &[&str] = &["tunable", "device", "type", "rule", "choose_args"];

const TUNABLE_NAMES: &str = "choose_local_tries, choose_local_fallback_tries, \
     choose_total_tries, chooseleaf_descend_once, chooseleaf_vary_r, chooseleaf_stable, \
     straw_calc_version, allowed_bucket_algs";

/// Which part of the text the parser is in; the order is the order crushtool requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Header,
    Buckets,
    Rules,
    ChooseArgs,
}

/// A bucket as written, before names are resolved.
struct RawBucket<'a> {
    name: &'a str,
    name_line: usize,
    type_id: i32,
    id: Option<(i32, usize)>,
    /// `id N class C` lines: shadow id, class name, line.
    class_ids: Vec<(i32, &'a str, usize)>,
    alg: Option<BucketAlg>,
    line: usize,
    items: Vec<RawItem<'a>>,
}

/// An `item` line as written.
struct RawItem<'a> {
    name: &'a str,
    line: usize,
    weight: Option<u32>,
    pos: Option<(usize, usize)>,
}

/// Compiles a crush map text.
pub(crate) fn parse(text: &str) -> Result<CrushMap, ParseError> {
    let mut parser = Parser {
        tokens: tokenize(text),
        pos: 0,
        last_line: text.lines().count().max(1),
        map: CrushMap::default(),
        item_ids: HashMap::new(),
        type_ids: HashMap::new(),
        class_ids: HashMap::new(),
        raw_buckets: Vec::new(),
        buckets_compiled: false,
        section: Section::Header,
    };
    parser.run()?;
    Ok(parser.map)
}

/// Converts a weight as crushtool does: `strtof`, times 65536 in `f32`, truncated.
pub(crate) fn weight_from_text(text: &str) -> Option<u32> {
    if !is_decimal(text) {
        return None;
    }
    // Rust's `f32` parser rounds to nearest like glibc's `strtof`.
    let value: f32 = text.parse().ok()?;
    let scaled = value * WEIGHT_ONE as f32;
    if !(0.0..4_294_967_296.0).contains(&scaled) {
        return None;
    }
    Some(scaled as u32)
}

/// `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?`: what Boost Spirit's
/// `real_p` accepts in the crushtool grammar.
fn is_decimal(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let mut mantissa_digits = digits(&mut i);
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        mantissa_digits += digits(&mut i);
    }
    if mantissa_digits == 0 {
        return false;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == bytes.len()
}

/// `-?digits`.
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Ceph's `is_valid_crush_name`: letters, digits, `-`, `_` and `.`.
fn is_valid_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
    last_line: usize,
    map: CrushMap,
    /// Devices and (compiled) buckets by name.
    item_ids: HashMap<String, i32>,
    type_ids: HashMap<String, i32>,
    class_ids: HashMap<String, i32>,
    raw_buckets: Vec<RawBucket<'a>>,
    buckets_compiled: bool,
    section: Section,
}

impl<'a> Parser<'a> {
    // ----- token helpers -------------------------------------------------------------

    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.pos).copied()
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    /// Line of the next token, or the last line at end of input.
    fn line(&self) -> usize {
        self.peek().map_or(self.last_line, |t| t.line)
    }

    fn found(&self) -> String {
        self.peek()
            .map_or_else(|| "end of input".to_string(), |t| t.tok.to_string())
    }

    /// A syntax error at the next token.
    fn syntax<T>(&self, expected: &str) -> Result<T, ParseError> {
        Err(ParseError::Syntax {
            line: self.line(),
            expected: expected.to_string(),
            found: self.found(),
        })
    }

    /// The next token, which must be a word.
    fn word(&mut self, expected: &str) -> Result<(&'a str, usize), ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(word),
                line,
            }) => {
                self.bump();
                Ok((word, line))
            }
            _ => self.syntax(expected),
        }
    }

    /// The next token, which must be the word `keyword`.
    fn keyword(&mut self, keyword: &str) -> Result<usize, ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(word),
                line,
            }) if word == keyword => {
                self.bump();
                Ok(line)
            }
            _ => self.syntax(&format!("`{keyword}`")),
        }
    }

    /// The next token, which must be `tok` (a brace or bracket).
    fn punct(&mut self, tok: Tok<'static>) -> Result<usize, ParseError> {
        match self.peek() {
            Some(token) if token.tok == tok => {
                self.bump();
                Ok(token.line)
            }
            _ => self.syntax(&tok.to_string()),
        }
    }

    /// The next token, which must be a valid name.
    fn name(&mut self, expected: &str) -> Result<(&'a str, usize), ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(word),
                line,
            }) if is_valid_name(word) => {
                self.bump();
                Ok((word, line))
            }
            _ => self.syntax(&format!("{expected} (letters, digits, `-`, `_` and `.`)")),
        }
    }

    /// The next token, which must be an integer in `min..=max`.
    fn integer(&mut self, what: &str, min: i64, max: i64) -> Result<(i64, usize), ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(word),
                line,
            }) if is_integer(word) => {
                self.bump();
                match word.parse::<i64>() {
                    Ok(value) if (min..=max).contains(&value) => Ok((value, line)),
                    _ => Err(ParseError::Invalid {
                        line,
                        message: format!("{what} must be between {min} and {max}, found {word}"),
                    }),
                }
            }
            _ => self.syntax(what),
        }
    }

    /// The next token, which must be a weight.
    fn weight(&mut self) -> Result<(u32, usize), ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(word),
                line,
            }) if is_decimal(word) => {
                self.bump();
                match weight_from_text(word) {
                    Some(weight) => Ok((weight, line)),
                    None => Err(ParseError::Invalid {
                        line,
                        message: format!(
                            "weight {word} is out of range (it must be from 0 to 65535.99998)"
                        ),
                    }),
                }
            }
            _ => self.syntax("a weight (a decimal number)"),
        }
    }

    /// Consumes `keyword` if it comes next. A different word on `owner_line` that does not
    /// start a new statement (`follow`) is an error naming what was `expected`.
    fn optional_keyword(
        &mut self,
        keyword: &str,
        owner_line: usize,
        follow: &[&str],
        expected: &str,
    ) -> Result<bool, ParseError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(word),
                ..
            }) if word == keyword => {
                self.bump();
                Ok(true)
            }
            Some(Token {
                tok: Tok::Word(word),
                line,
            }) if line == owner_line && !follow.contains(&word) => self.syntax(expected),
            _ => Ok(false),
        }
    }

    fn class_id_or_create(&mut self, name: &str) -> i32 {
        if let Some(id) = self.class_ids.get(name) {
            return *id;
        }
        let id = self
            .map
            .classes
            .keys()
            .next_back()
            .map_or(0, |last| last + 1);
        self.map.classes.insert(id, name.to_string());
        self.class_ids.insert(name.to_string(), id);
        id
    }

    // ----- top level -----------------------------------------------------------------

    fn run(&mut self) -> Result<(), ParseError> {
        while let Some(token) = self.peek() {
            let line = token.line;
            let Tok::Word(word) = token.tok else {
                return self.syntax(
                    "`tunable`, `device`, `type`, a bucket, `rule`, `choose_args` or end of input",
                );
            };
            match word {
                "tunable" | "device" | "type" => {
                    if self.section != Section::Header {
                        return Err(ParseError::Invalid {
                            line,
                            message: format!(
                                "`{word}` lines must come before buckets, rules and choose_args"
                            ),
                        });
                    }
                    match word {
                        "tunable" => self.parse_tunable()?,
                        "device" => self.parse_device()?,
                        _ => self.parse_type()?,
                    }
                }
                "rule" => {
                    if self.section == Section::ChooseArgs {
                        return Err(ParseError::Invalid {
                            line,
                            message: "rules must come before choose_args".to_string(),
                        });
                    }
                    self.compile_buckets(line)?;
                    self.section = Section::Rules;
                    self.parse_rule()?;
                }
                "choose_args" => {
                    self.compile_buckets(line)?;
                    self.section = Section::ChooseArgs;
                    self.parse_choose_args()?;
                }
                _ if self.type_ids.contains_key(word) => {
                    if self.section > Section::Buckets {
                        return Err(ParseError::Invalid {
                            line,
                            message: "buckets must be defined before rules and choose_args"
                                .to_string(),
                        });
                    }
                    self.section = Section::Buckets;
                    self.parse_bucket()?;
                }
                _ => {
                    return self.syntax(
                        "`tunable`, `device`, `type`, `rule`, `choose_args` or a bucket type name",
                    )
                }
            }
        }
        self.compile_buckets(self.last_line)
    }

    fn parse_tunable(&mut self) -> Result<(), ParseError> {
        self.keyword("tunable")?;
        let (name, line) = self.name("a tunable name")?;
        // Ceph keeps the last four in one byte each.
        let max: i64 = match name {
            "choose_local_tries"
            | "choose_local_fallback_tries"
            | "choose_total_tries"
            | "allowed_bucket_algs" => u32::MAX.into(),
            "chooseleaf_descend_once"
            | "chooseleaf_vary_r"
            | "chooseleaf_stable"
            | "straw_calc_version" => 255,
            _ => {
                return Err(ParseError::Invalid {
                    line,
                    message: format!("unknown tunable `{name}` (known: {TUNABLE_NAMES})"),
                })
            }
        };
        let (value, _) = self.integer(&format!("a value for tunable {name}"), 0, max)?;
        let value = u32::try_from(value).unwrap_or(u32::MAX);
        let t = &mut self.map.tunables;
        let field = match name {
            "choose_local_tries" => &mut t.choose_local_tries,
            "choose_local_fallback_tries" => &mut t.choose_local_fallback_tries,
            "choose_total_tries" => &mut t.choose_total_tries,
            "allowed_bucket_algs" => &mut t.allowed_bucket_algs,
            "chooseleaf_descend_once" => &mut t.chooseleaf_descend_once,
            "chooseleaf_vary_r" => &mut t.chooseleaf_vary_r,
            "chooseleaf_stable" => &mut t.chooseleaf_stable,
            _ => &mut t.straw_calc_version,
        };
        *field = value;
        Ok(())
    }

    fn parse_device(&mut self) -> Result<(), ParseError> {
        let line = self.keyword("device")?;
        // ITEM_NONE and ITEM_UNDEF are markers, never devices.
        let (id, _) = self.integer("a device id", 0, i64::from(ITEM_UNDEF) - 1)?;
        let id = id as i32;
        let (name, name_line) = self.name("a device name")?;
        let class = if self.optional_keyword(
            "class",
            name_line,
            TOP_KEYWORDS,
            "`class` or end of line after the device name",
        )? {
            Some(self.name("a device class name")?.0)
        } else {
            None
        };
        if self.map.devices.contains_key(&id) {
            return Err(ParseError::Duplicate {
                line,
                what: "device id",
                name: id.to_string(),
            });
        }
        if self.item_ids.contains_key(name) {
            return Err(ParseError::Duplicate {
                line: name_line,
                what: "device name",
                name: name.to_string(),
            });
        }
        if let Some(class) = class {
            self.class_id_or_create(class);
        }
        self.item_ids.insert(name.to_string(), id);
        self.map.devices.insert(
            id,
            Device {
                id,
                name: name.to_string(),
                class: class.map(str::to_string),
            },
        );
        Ok(())
    }

    fn parse_type(&mut self) -> Result<(), ParseError> {
        let line = self.keyword("type")?;
        let (id, _) = self.integer("a type id", 0, i32::MAX.into())?;
        let id = id as i32;
        let (name, name_line) = self.name("a type name")?;
        if self.map.types.contains_key(&id) {
            return Err(ParseError::Duplicate {
                line,
                what: "type id",
                name: id.to_string(),
            });
        }
        if self.type_ids.contains_key(name) {
            return Err(ParseError::Duplicate {
                line: name_line,
                what: "type name",
                name: name.to_string(),
            });
        }
        self.type_ids.insert(name.to_string(), id);
        self.map.types.insert(id, name.to_string());
        Ok(())
    }

    // ----- buckets -------------------------------------------------------------------

    fn parse_bucket(&mut self) -> Result<(), ParseError> {
        let (type_name, line) = self.word("a bucket type name")?;
        let type_id = self.type_ids.get(type_name).copied().unwrap_or_default();
        if type_id == 0 {
            return Err(ParseError::Invalid {
                line,
                message: format!(
                    "type `{type_name}` (id 0) is the device type; buckets need another type"
                ),
            });
        }
        let (name, name_line) = self.name("a bucket name")?;
        self.punct(Tok::LBrace)?;
        let mut bucket = RawBucket {
            name,
            name_line,
            type_id,
            id: None,
            class_ids: Vec::new(),
            alg: None,
            line,
            items: Vec::new(),
        };
        let mut saw_hash = false;
        loop {
            let Some(token) = self.peek() else {
                return self.syntax("`}`");
            };
            match token.tok {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Word("id") => {
                    self.bump();
                    let (id, id_line) =
                        self.integer("a bucket id (a negative number)", i32::MIN.into(), -1)?;
                    let id = id as i32;
                    if self.optional_keyword(
                        "class",
                        id_line,
                        BUCKET_KEYWORDS,
                        "`class` or end of line after the bucket id",
                    )? {
                        let (class, class_line) = self.name("a device class name")?;
                        if bucket.class_ids.iter().any(|(_, c, _)| *c == class) {
                            return Err(ParseError::Duplicate {
                                line: class_line,
                                what: "shadow id for class",
                                name: class.to_string(),
                            });
                        }
                        bucket.class_ids.push((id, class, class_line));
                    } else if bucket.id.is_some() {
                        return Err(ParseError::Invalid {
                            line: id_line,
                            message: format!("bucket `{name}` has more than one `id` line"),
                        });
                    } else {
                        bucket.id = Some((id, id_line));
                    }
                }
                Tok::Word("alg") => {
                    self.bump();
                    let expected =
                        "a bucket algorithm (`uniform`, `list`, `tree`, `straw` or `straw2`)";
                    let alg_line = self.line();
                    let (alg, _) = self.word(expected)?;
                    let Some(alg) = BucketAlg::from_name(alg) else {
                        return Err(ParseError::Syntax {
                            line: alg_line,
                            expected: expected.to_string(),
                            found: format!("`{alg}`"),
                        });
                    };
                    if bucket.alg.is_some() {
                        return Err(ParseError::Invalid {
                            line: alg_line,
                            message: format!("bucket `{name}` has more than one `alg` line"),
                        });
                    }
                    bucket.alg = Some(alg);
                }
                Tok::Word("hash") => {
                    self.bump();
                    let hash_line = self.line();
                    let (hash, _) = self.word("`0` or `rjenkins1`")?;
                    if hash != "0" && hash != "rjenkins1" {
                        let message = if is_integer(hash) {
                            format!("hash {hash} is not supported: only 0 (rjenkins1) exists")
                        } else {
                            return Err(ParseError::Syntax {
                                line: hash_line,
                                expected: "`0` or `rjenkins1`".to_string(),
                                found: format!("`{hash}`"),
                            });
                        };
                        return Err(ParseError::Invalid {
                            line: hash_line,
                            message,
                        });
                    }
                    if saw_hash {
                        return Err(ParseError::Invalid {
                            line: hash_line,
                            message: format!("bucket `{name}` has more than one `hash` line"),
                        });
                    }
                    saw_hash = true;
                }
                Tok::Word("item") => {
                    self.bump();
                    let (item, item_line) = self.name("an item name")?;
                    bucket.items.push(self.parse_item_options(item, item_line)?);
                }
                _ => return self.syntax("`id`, `alg`, `hash`, `item` or `}`"),
            }
        }
        if bucket.alg.is_none() {
            return Err(ParseError::Invalid {
                line,
                message: format!("bucket `{name}` has no `alg` line"),
            });
        }
        self.raw_buckets.push(bucket);
        Ok(())
    }

    /// `[weight W] [pos P]` after an item name (either order, each at most once).
    fn parse_item_options(
        &mut self,
        name: &'a str,
        line: usize,
    ) -> Result<RawItem<'a>, ParseError> {
        let mut item = RawItem {
            name,
            line,
            weight: None,
            pos: None,
        };
        loop {
            let expected = match (item.weight.is_some(), item.pos.is_some()) {
                (false, false) => "`weight`, `pos` or end of line after the item name",
                (true, false) => "`pos` or end of line after the item weight",
                (false, true) => "`weight` or end of line after the item position",
                (true, true) => "end of line after the item",
            };
            match self.peek() {
                Some(Token {
                    tok: Tok::Word("weight"),
                    ..
                }) if item.weight.is_none() => {
                    self.bump();
                    item.weight = Some(self.weight()?.0);
                }
                Some(Token {
                    tok: Tok::Word("pos"),
                    ..
                }) if item.pos.is_none() => {
                    self.bump();
                    let (pos, pos_line) = self.integer("a position", 0, u32::MAX.into())?;
                    item.pos = Some((usize::try_from(pos).unwrap_or(usize::MAX), pos_line));
                }
                // A word on the item's own line that starts no statement is a misspelt option.
                Some(Token {
                    tok: Tok::Word(word),
                    line: word_line,
                }) if word_line == line && !BUCKET_KEYWORDS.contains(&word) => {
                    return self.syntax(expected);
                }
                _ => return Ok(item),
            }
        }
    }

    /// Compiles the collected buckets (once) and builds the shadow trees.
    fn compile_buckets(&mut self, line: usize) -> Result<(), ParseError> {
        if self.buckets_compiled {
            return Ok(());
        }
        self.buckets_compiled = true;
        let raws = std::mem::take(&mut self.raw_buckets);

        let mut index_by_name: HashMap<&str, usize> = HashMap::new();
        for (index, raw) in raws.iter().enumerate() {
            if self.item_ids.contains_key(raw.name) || index_by_name.contains_key(raw.name) {
                return Err(ParseError::Duplicate {
                    line: raw.name_line,
                    what: "bucket or device name",
                    name: raw.name.to_string(),
                });
            }
            index_by_name.insert(raw.name, index);
        }

        // Ids written in the text, and shadow ids reserved by `id N class C` lines: the
        // compiler never hands either out.
        let mut used_ids: BTreeSet<i32> = BTreeSet::new();
        for raw in &raws {
            if let Some((id, id_line)) = raw.id {
                if !used_ids.insert(id) {
                    return Err(ParseError::Duplicate {
                        line: id_line,
                        what: "bucket id",
                        name: id.to_string(),
                    });
                }
            }
        }
        let mut reserved_ids: BTreeSet<i32> = BTreeSet::new();
        for raw in &raws {
            for (id, class, class_line) in &raw.class_ids {
                if used_ids.contains(id) {
                    return Err(ParseError::Invalid {
                        line: *class_line,
                        message: format!(
                            "id {id} for class {class} of bucket `{}` is already a bucket's id",
                            raw.name
                        ),
                    });
                }
                if !reserved_ids.insert(*id) {
                    return Err(ParseError::Duplicate {
                        line: *class_line,
                        what: "shadow bucket id",
                        name: id.to_string(),
                    });
                }
            }
        }

        let order = compile_order(&raws, &index_by_name)?;
        let mut reserved: BTreeMap<(i32, i32), i32> = BTreeMap::new();
        let mut next_auto_id: i32 = -1;
        for index in order {
            let Some(raw) = raws.get(index) else { continue };
            let id = match raw.id {
                Some((id, _)) => id,
                None => {
                    while used_ids.contains(&next_auto_id) || reserved_ids.contains(&next_auto_id) {
                        next_auto_id =
                            next_auto_id
                                .checked_sub(1)
                                .ok_or_else(|| ParseError::Invalid {
                                    line: raw.line,
                                    message: "no bucket id left".to_string(),
                                })?;
                    }
                    used_ids.insert(next_auto_id);
                    next_auto_id
                }
            };
            for (shadow_id, class, _) in &raw.class_ids {
                let class_id = self.class_id_or_create(class);
                reserved.insert((id, class_id), *shadow_id);
            }
            let items = self.resolve_items(raw)?;
            self.item_ids.insert(raw.name.to_string(), id);
            self.map.buckets.insert(
                id,
                Bucket {
                    id,
                    name: raw.name.to_string(),
                    type_id: raw.type_id,
                    alg: raw.alg.unwrap_or(BucketAlg::Straw2),
                    hash: 0,
                    items,
                    shadow: None,
                },
            );
        }
        shadow::build(&mut self.map, &reserved)
            .map_err(|source| ParseError::Shadow { line, source })
    }

    /// Resolves a bucket's items: names to ids, weights (as written, else 1.0 for a device
    /// and the child's total for a bucket) and positions.
    fn resolve_items(&self, raw: &RawBucket<'_>) -> Result<Vec<BucketItem>, ParseError> {
        let count = raw.items.len();
        let mut taken_positions = vec![false; count];
        for item in &raw.items {
            if let Some((pos, pos_line)) = item.pos {
                if pos >= count {
                    return Err(ParseError::Invalid {
                        line: pos_line,
                        message: format!(
                            "item `{}` has pos {pos}, but bucket `{}` has only {count} items",
                            item.name, raw.name
                        ),
                    });
                }
                if std::mem::replace(&mut taken_positions[pos], true) {
                    return Err(ParseError::Invalid {
                        line: pos_line,
                        message: format!(
                            "item `{}` has pos {pos}, which another item of bucket `{}` already has",
                            item.name, raw.name
                        ),
                    });
                }
            }
        }
        let mut slots: Vec<Option<BucketItem>> = vec![None; count];
        let mut next_free = 0usize;
        let mut seen: HashSet<i32> = HashSet::new();
        let mut total: u32 = 0;
        let mut uniform_weight: Option<u32> = None;
        for item in &raw.items {
            let Some(&id) = self.item_ids.get(item.name) else {
                return Err(ParseError::Undefined {
                    line: item.line,
                    what: "item",
                    name: item.name.to_string(),
                });
            };
            if !seen.insert(id) {
                return Err(ParseError::Invalid {
                    line: item.line,
                    message: format!(
                        "item `{}` appears twice in bucket `{}`",
                        item.name, raw.name
                    ),
                });
            }
            let weight = match item.weight {
                Some(weight) => weight,
                None if id >= 0 => WEIGHT_ONE,
                None => self.map.buckets.get(&id).map_or(0, Bucket::weight),
            };
            if id >= 0 && weight > MAX_DEVICE_WEIGHT {
                return Err(ParseError::Invalid {
                    line: item.line,
                    message: format!(
                        "device `{}` has weight {}; device weights are limited to 100",
                        item.name,
                        super::printer::fixed_point(weight)
                    ),
                });
            }
            if id < 0 && weight > MAX_BUCKET_WEIGHT {
                return Err(ParseError::Invalid {
                    line: item.line,
                    message: format!(
                        "bucket `{}` has weight above 65535, the limit for bucket weights",
                        item.name
                    ),
                });
            }
            if raw.alg == Some(BucketAlg::Uniform) {
                match uniform_weight {
                    None => uniform_weight = Some(weight),
                    Some(first) if first != weight => {
                        return Err(ParseError::Invalid {
                            line: item.line,
                            message: format!(
                                "item `{}` in uniform bucket `{}` has weight {} but the items \
                                 before it have {}; uniform buckets need identical weights",
                                item.name,
                                raw.name,
                                super::printer::fixed_point(weight),
                                super::printer::fixed_point(first)
                            ),
                        });
                    }
                    Some(_) => {}
                }
            }
            total = total
                .checked_add(weight)
                .ok_or_else(|| ParseError::Invalid {
                    line: item.line,
                    message: format!(
                        "the weights in bucket `{}` add up to more than 65535.99998",
                        raw.name
                    ),
                })?;
            let pos = match item.pos {
                Some((pos, _)) => pos,
                None => {
                    while taken_positions.get(next_free) == Some(&true) {
                        next_free += 1;
                    }
                    let pos = next_free;
                    next_free += 1;
                    pos
                }
            };
            if let Some(slot) = slots.get_mut(pos) {
                *slot = Some(BucketItem { id, weight });
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    // ----- rules ---------------------------------------------------------------------

    fn parse_rule(&mut self) -> Result<(), ParseError> {
        let line = self.keyword("rule")?;
        let (name, name_line) = self.name("a rule name")?;
        if self.map.rule_by_name(name).is_some() {
            return Err(ParseError::Duplicate {
                line: name_line,
                what: "rule name",
                name: name.to_string(),
            });
        }
        self.punct(Tok::LBrace)?;
        let mut id: Option<(u32, usize)> = None;
        let mut rule_type: Option<RuleType> = None;
        // Ceph 17 made the sizes optional and writes 1 and 100 when they are absent.
        let mut min_size: Option<u32> = None;
        let mut max_size: Option<u32> = None;
        let mut steps = Vec::new();
        loop {
            let Some(token) = self.peek() else {
                return self.syntax("`}`");
            };
            let token_line = token.line;
            let duplicate = |what: &str| ParseError::Invalid {
                line: token_line,
                message: format!("rule `{name}` has more than one `{what}` line"),
            };
            match token.tok {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Word(keyword @ ("id" | "ruleset")) => {
                    self.bump();
                    let (value, value_line) = self.integer("a rule id", 0, MAX_RULE_ID)?;
                    if id.is_some() {
                        return Err(duplicate(keyword));
                    }
                    id = Some((value as u32, value_line));
                }
                Tok::Word("type") => {
                    self.bump();
                    let expected = "`replicated`, `erasure` or a rule type number";
                    let type_line = self.line();
                    let (word, _) = self.word(expected)?;
                    let parsed = match word {
                        "replicated" => RuleType::Replicated,
                        "erasure" => RuleType::Erasure,
                        _ if is_integer(word) => match word.parse::<u8>() {
                            Ok(1) => RuleType::Replicated,
                            Ok(3) => RuleType::Erasure,
                            Ok(code) => RuleType::Other(code.into()),
                            Err(_) => {
                                return Err(ParseError::Invalid {
                                    line: type_line,
                                    message: format!(
                                        "rule type must be between 0 and 255, found {word}"
                                    ),
                                })
                            }
                        },
                        _ => {
                            return Err(ParseError::Syntax {
                                line: type_line,
                                expected: expected.to_string(),
                                found: format!("`{word}`"),
                            })
                        }
                    };
                    if rule_type.is_some() {
                        return Err(duplicate("type"));
                    }
                    rule_type = Some(parsed);
                }
                Tok::Word(keyword @ ("min_size" | "max_size")) => {
                    self.bump();
                    let (value, _) = self.integer("a size", 0, u32::MAX.into())?;
                    let slot = if keyword == "min_size" {
                        &mut min_size
                    } else {
                        &mut max_size
                    };
                    if slot.is_some() {
                        return Err(duplicate(keyword));
                    }
                    *slot = Some(value as u32);
                }
                Tok::Word("step") => {
                    self.bump();
                    steps.push(self.parse_step()?);
                }
                _ => {
                    return self.syntax("`id`, `type`, `min_size`, `max_size`, `step` or `}`");
                }
            }
        }
        let Some((id, id_line)) = id else {
            return Err(ParseError::Invalid {
                line,
                message: format!("rule `{name}` has no `id` line"),
            });
        };
        let Some(rule_type) = rule_type else {
            return Err(ParseError::Invalid {
                line,
                message: format!("rule `{name}` has no `type` line"),
            });
        };
        if steps.is_empty() {
            return Err(ParseError::Invalid {
                line,
                message: format!("rule `{name}` has no steps"),
            });
        }
        if self.map.rules.contains_key(&id) {
            return Err(ParseError::Duplicate {
                line: id_line,
                what: "rule id",
                name: id.to_string(),
            });
        }
        self.map.rules.insert(
            id,
            Rule {
                id,
                name: name.to_string(),
                rule_type,
                min_size: min_size.unwrap_or(1),
                max_size: max_size.unwrap_or(100),
                steps,
            },
        );
        Ok(())
    }

    fn parse_step(&mut self) -> Result<Step, ParseError> {
        let expected = "a step (`take`, `choose`, `chooseleaf`, `emit`, `set_choose_tries`, \
                        `set_chooseleaf_tries`, `set_choose_local_tries`, \
                        `set_choose_local_fallback_tries`, `set_chooseleaf_vary_r` or \
                        `set_chooseleaf_stable`)";
        let step_line = self.line();
        let (word, _) = self.word(expected)?;
        let tries = |parser: &mut Self| -> Result<i32, ParseError> {
            let (value, _) = parser.integer(&format!("a number for {word}"), 0, i32::MAX.into())?;
            Ok(value as i32)
        };
        Ok(match word {
            "take" => return self.parse_take(),
            "choose" | "chooseleaf" => {
                let mode_line = self.line();
                let (mode, _) = self.word("`firstn` or `indep`")?;
                if mode != "firstn" && mode != "indep" {
                    return Err(ParseError::Syntax {
                        line: mode_line,
                        expected: "`firstn` or `indep`".to_string(),
                        found: format!("`{mode}`"),
                    });
                }
                let (n, _) = self.integer("a count", i32::MIN.into(), i32::MAX.into())?;
                let n = n as i32;
                self.keyword("type")?;
                let (type_name, type_line) = self.name("a type name")?;
                let Some(&type_id) = self.type_ids.get(type_name) else {
                    return Err(ParseError::Undefined {
                        line: type_line,
                        what: "type",
                        name: type_name.to_string(),
                    });
                };
                match (word, mode) {
                    ("choose", "firstn") => Step::ChooseFirstN { n, type_id },
                    ("choose", _) => Step::ChooseIndep { n, type_id },
                    (_, "firstn") => Step::ChooseLeafFirstN { n, type_id },
                    _ => Step::ChooseLeafIndep { n, type_id },
                }
            }
            "emit" => Step::Emit,
            "noop" => Step::Noop,
            "set_choose_tries" => Step::SetChooseTries(tries(self)?),
            "set_chooseleaf_tries" => Step::SetChooseLeafTries(tries(self)?),
            "set_choose_local_tries" => Step::SetChooseLocalTries(tries(self)?),
            "set_choose_local_fallback_tries" => Step::SetChooseLocalFallbackTries(tries(self)?),
            "set_chooseleaf_vary_r" => Step::SetChooseLeafVaryR(tries(self)?),
            "set_chooseleaf_stable" => Step::SetChooseLeafStable(tries(self)?),
            _ => {
                return Err(ParseError::Syntax {
                    line: step_line,
                    expected: expected.to_string(),
                    found: format!("`{word}`"),
                })
            }
        })
    }

    /// `take NAME [class C]`, resolved to the item or its shadow copy.
    fn parse_take(&mut self) -> Result<Step, ParseError> {
        let (name, name_line) = self.name("a bucket or device name")?;
        let Some(&id) = self.item_ids.get(name) else {
            return Err(ParseError::Undefined {
                line: name_line,
                what: "bucket or device",
                name: name.to_string(),
            });
        };
        if !self.optional_keyword(
            "class",
            name_line,
            RULE_KEYWORDS,
            "`class` or end of line after the take item",
        )? {
            return Ok(Step::Take(id));
        }
        let (class, class_line) = self.name("a device class name")?;
        let Some(&class_id) = self.class_ids.get(class) else {
            return Err(ParseError::Undefined {
                line: class_line,
                what: "device class",
                name: class.to_string(),
            });
        };
        let shadow = self
            .map
            .class_buckets
            .get(&(id, class_id))
            .filter(|shadow| self.map.buckets.contains_key(shadow));
        match shadow {
            Some(shadow) => Ok(Step::Take(*shadow)),
            None => Err(ParseError::Invalid {
                line: class_line,
                message: format!(
                    "`{name}` has no shadow copy for class {class} (devices have none, and \
                     trees containing a uniform bucket get none)"
                ),
            }),
        }
    }

    // ----- choose_args ---------------------------------------------------------------

    fn parse_choose_args(&mut self) -> Result<(), ParseError> {
        self.keyword("choose_args")?;
        let (key, key_line) = self.integer("a choose_args key", i64::MIN, i64::MAX)?;
        if self.map.choose_args.contains_key(&key) {
            return Err(ParseError::Duplicate {
                line: key_line,
                what: "choose_args key",
                name: key.to_string(),
            });
        }
        self.punct(Tok::LBrace)?;
        let mut set = ChooseArgs::new();
        let mut seen: HashSet<i32> = HashSet::new();
        loop {
            match self.peek().map(|t| t.tok) {
                Some(Tok::RBrace) => {
                    self.bump();
                    break;
                }
                Some(Tok::LBrace) => {
                    self.bump();
                    self.parse_choose_arg(&mut set, &mut seen)?;
                }
                _ => return self.syntax("`{` or `}`"),
            }
        }
        self.map.choose_args.insert(key, set);
        Ok(())
    }

    fn parse_choose_arg(
        &mut self,
        set: &mut ChooseArgs,
        seen: &mut HashSet<i32>,
    ) -> Result<(), ParseError> {
        self.keyword("bucket_id")?;
        let (bucket_id, bucket_line) =
            self.integer("a bucket id (a negative number)", i32::MIN.into(), -1)?;
        let bucket_id = bucket_id as i32;
        let Some(size) = self.map.buckets.get(&bucket_id).map(|b| b.items.len()) else {
            return Err(ParseError::Undefined {
                line: bucket_line,
                what: "bucket id",
                name: bucket_id.to_string(),
            });
        };
        if !seen.insert(bucket_id) {
            return Err(ParseError::Duplicate {
                line: bucket_line,
                what: "choose_args entry for bucket id",
                name: bucket_id.to_string(),
            });
        }
        let mut weight_set: Option<Vec<Vec<u32>>> = None;
        let mut ids: Option<Vec<i32>> = None;
        loop {
            let Some(token) = self.peek() else {
                return self.syntax("`weight_set`, `ids` or `}`");
            };
            match token.tok {
                Tok::RBrace => {
                    self.bump();
                    break;
                }
                Tok::Word(keyword @ ("weight_set" | "ids")) => {
                    self.bump();
                    let already = if keyword == "ids" {
                        ids.is_some()
                    } else {
                        weight_set.is_some()
                    };
                    if already {
                        return Err(ParseError::Invalid {
                            line: token.line,
                            message: format!(
                                "choose_args entry for bucket {bucket_id} has more than one `{keyword}`"
                            ),
                        });
                    }
                    if keyword == "ids" {
                        ids = Some(self.parse_id_list(bucket_id, size)?);
                    } else {
                        weight_set = Some(self.parse_weight_set(bucket_id, size)?);
                    }
                }
                _ => return self.syntax("`weight_set`, `ids` or `}`"),
            }
        }
        let arg = ChooseArg {
            weight_set: weight_set.unwrap_or_default(),
            ids: ids.filter(|ids| !ids.is_empty()),
        };
        // An entry with neither part is what crushtool stores for "no override".
        if !arg.weight_set.is_empty() || arg.ids.is_some() {
            set.insert(bucket_id, arg);
        }
        Ok(())
    }

    /// `[ [ w ... ] ... ]`, each list as long as the bucket.
    fn parse_weight_set(
        &mut self,
        bucket_id: i32,
        size: usize,
    ) -> Result<Vec<Vec<u32>>, ParseError> {
        self.punct(Tok::LBracket)?;
        let mut rows = Vec::new();
        loop {
            match self.peek().map(|t| t.tok) {
                Some(Tok::RBracket) => {
                    self.bump();
                    return Ok(rows);
                }
                Some(Tok::LBracket) => {
                    let row_line = self.line();
                    self.bump();
                    let mut row = Vec::new();
                    loop {
                        match self.peek().map(|t| t.tok) {
                            Some(Tok::RBracket) => {
                                self.bump();
                                break;
                            }
                            Some(Tok::Word(_)) => row.push(self.weight()?.0),
                            _ => return self.syntax("a weight or `]`"),
                        }
                    }
                    if row.len() != size {
                        return Err(ParseError::Invalid {
                            line: row_line,
                            message: format!(
                                "bucket {bucket_id} has {size} items, so each weight_set list \
                                 needs {size} weights, found {}",
                                row.len()
                            ),
                        });
                    }
                    rows.push(row);
                }
                _ => return self.syntax("`[` or `]`"),
            }
        }
    }

    /// `[ id ... ]`, as long as the bucket.
    fn parse_id_list(&mut self, bucket_id: i32, size: usize) -> Result<Vec<i32>, ParseError> {
        let line = self.punct(Tok::LBracket)?;
        let mut ids = Vec::new();
        loop {
            match self.peek().map(|t| t.tok) {
                Some(Tok::RBracket) => {
                    self.bump();
                    break;
                }
                Some(Tok::Word(_)) => {
                    let (id, _) = self.integer("an id", i32::MIN.into(), i32::MAX.into())?;
                    ids.push(id as i32);
                }
                _ => return self.syntax("an id or `]`"),
            }
        }
        if ids.len() != size {
            return Err(ParseError::Invalid {
                line,
                message: format!(
                    "bucket {bucket_id} has {size} items, so `ids` needs {size} ids, found {}",
                    ids.len()
                ),
            });
        }
        Ok(ids)
    }
}

/// The order in which buckets are compiled: children before their parents, otherwise the
/// text's order. A bucket that (indirectly) contains itself is an error.
fn compile_order(
    raws: &[RawBucket<'_>],
    index_by_name: &HashMap<&str, usize>,
) -> Result<Vec<usize>, ParseError> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        New,
        InProgress,
        Done,
    }
    let mut state = vec![State::New; raws.len()];
    let mut order = Vec::with_capacity(raws.len());
    for start in 0..raws.len() {
        if state[start] != State::New {
            continue;
        }
        state[start] = State::InProgress;
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        while let Some((bucket, next)) = stack.last_mut() {
            let parent = &raws[*bucket];
            if let Some(item) = parent.items.get(*next) {
                *next += 1;
                let Some(&child) = index_by_name.get(item.name) else {
                    continue;
                };
                match state[child] {
                    State::New => {
                        state[child] = State::InProgress;
                        stack.push((child, 0));
                    }
                    State::InProgress => {
                        let message = if raws[child].name == parent.name {
                            format!("bucket `{}` lists itself as an item", parent.name)
                        } else {
                            format!(
                                "bucket `{}` cannot contain `{}`, which already contains it",
                                parent.name, raws[child].name
                            )
                        };
                        return Err(ParseError::Invalid {
                            line: item.line,
                            message,
                        });
                    }
                    State::Done => {}
                }
            } else {
                state[*bucket] = State::Done;
                order.push(*bucket);
                stack.pop();
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_convert_like_crushtool() {
        assert_eq!(weight_from_text("3.64"), Some(238551));
        assert_eq!(weight_from_text("0.1"), Some(6553));
        assert_eq!(weight_from_text("1.23456789"), Some(80908));
        assert_eq!(weight_from_text("1.235"), Some(80936));
        assert_eq!(weight_from_text("1"), Some(65536));
        assert_eq!(weight_from_text("+.5"), Some(32768));
        assert_eq!(weight_from_text("1."), Some(65536));
        assert_eq!(weight_from_text("1e1"), Some(655360));
        assert_eq!(weight_from_text("-0.0"), Some(0));
        assert_eq!(weight_from_text("-1"), None);
        assert_eq!(weight_from_text("inf"), None);
        assert_eq!(weight_from_text("nan"), None);
        assert_eq!(weight_from_text("1e40"), None);
        assert_eq!(weight_from_text("65536"), None);
        assert_eq!(weight_from_text("."), None);
        assert_eq!(weight_from_text("1e"), None);
        assert_eq!(weight_from_text("0x10"), None);
    }

    #[test]
    fn names_and_integers() {
        assert!(is_valid_name("osd.12"));
        assert!(is_valid_name("dc0-r2_h5"));
        assert!(!is_valid_name("default~ssd"));
        assert!(!is_valid_name(""));
        assert!(is_integer("-12"));
        assert!(!is_integer("-"));
        assert!(!is_integer("+1"));
    }
}
