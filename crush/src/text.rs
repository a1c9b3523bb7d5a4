//! Ceph's decompiled CRUSH map text (`crushtool -d` output): [`parse`] compiles it into a
//! [`CrushMap`] as `crushtool -c` does, [`print`](fn@print) writes a map back byte for byte as
//! `crushtool -d` would.
//!
//! The format, in the order crushtool requires:
//!
//! ```text
//! # begin crush map
//! tunable choose_total_tries 50          (only values that differ from argonaut)
//! device 0 osd.0 class hdd
//! type 1 host
//! host node0 {
//!     id -2                                (optional: else the first free id from -1 down)
//!     id -9 class hdd                      (the id of the shadow copy node0~hdd)
//!     alg straw2
//!     hash 0                               (or `hash rjenkins1`)
//!     item osd.0 weight 3.638 [pos 0]      (without weight: 1.0, or the child's total)
//! }
//! rule replicated { id 0  type replicated  min_size 1  max_size 10
//!     step take default class hdd   step chooseleaf firstn 0 type host   step emit }
//! choose_args 0 { { bucket_id -1  weight_set [ [ 1.0 2.0 ] ]  ids [ 5 6 ] } }
//! ```
//!
//! Weights go through C's `strtof`, times 65536 in `f32`, truncated (ALGORITHM-NOTES §12);
//! the printer writes them with `%.3f` of the same `f32`. Buckets may be written in any
//! order: they are compiled children first (crushtool swaps buckets around for the same
//! purpose). Shadow trees ([`crate::shadow`]) are built once every bucket is known, before
//! the first rule, so `step take B class C` can resolve to the copy's id.
//!
//! Where crushtool is silent or inconsistent this parser is stricter, and says so with a line
//! number: duplicate ids, names, `alg`/`hash`/`id` lines or items in one bucket, negative or
//! non-finite weights, values that do not fit their field, a bucket id that another bucket
//! reserves as a shadow id, buckets of the device type 0. Ids the compiler picks for buckets
//! without an `id` line also skip ids reserved by `id N class C` lines. It also accepts,
//! for round trips of maps the builder made, `step noop`, a numeric rule `type`, negative
//! `choose_args` keys and rules without `min_size`/`max_size` (1 and 100, as Ceph 17
//! writes), and it builds shadow trees even when the text has no rule. The printer writes
//! weights of 32768.0 and more as the unsigned numbers they are, where crushtool's C `int`
//! cast makes them negative (and its own output uncompilable).

mod lexer;
mod parser;
mod printer;

use thiserror::Error;

use crate::model::CrushMap;
use crate::shadow::ShadowError;

/// Why a crush map text does not compile. Every variant carries the 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The text does not follow the grammar.
    #[error("line {line}: expected {expected}, found {found}")]
    Syntax {
        /// 1-based line of the offending token (the last line at end of input).
        line: usize,
        /// What the grammar allows here.
        expected: String,
        /// What the text has instead (a quoted token or `end of input`).
        found: String,
    },
    /// A name refers to something that is not defined.
    #[error("line {line}: {what} `{name}` is not defined")]
    Undefined {
        /// 1-based line of the reference.
        line: usize,
        /// What kind of thing was expected (`bucket type`, `item`, `device class`, ...).
        what: &'static str,
        /// The name as written.
        name: String,
    },
    /// A name or id is defined twice.
    #[error("line {line}: {what} `{name}` is already defined")]
    Duplicate {
        /// 1-based line of the second definition.
        line: usize,
        /// What kind of thing (`bucket id`, `rule name`, ...).
        what: &'static str,
        /// The name or id as written.
        name: String,
    },
    /// A well-formed statement that is not allowed (value out of range, bad weight, ...).
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line of the statement.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The device-class shadow trees could not be built.
    #[error("line {line}: cannot build the device-class shadow trees: {source}")]
    Shadow {
        /// 1-based line where the trees are built (the first rule, or the end of the text).
        line: usize,
        /// The underlying problem.
        source: ShadowError,
    },
}

impl ParseError {
    /// The 1-based line number the error refers to.
    pub fn line(&self) -> usize {
        match self {
            ParseError::Syntax { line, .. }
            | ParseError::Undefined { line, .. }
            | ParseError::Duplicate { line, .. }
            | ParseError::Invalid { line, .. }
            | ParseError::Shadow { line, .. } => *line,
        }
    }
}

/// Compiles a crush map text the way `crushtool -c` does. Never panics.
pub fn parse(text: &str) -> Result<CrushMap, ParseError> {
    parser::parse(text)
}

/// Writes `map` as `crushtool -d` would (shadow buckets are not printed; their ids appear as
/// `id N class C` lines of their originals).
pub fn print(map: &CrushMap) -> String {
    printer::print(map)
}

/// Converts a weight written in the text to 16.16 fixed point exactly as crushtool does:
/// nearest `f32` (`strtof`), times 65536 in `f32`, truncated toward zero. `None` if `text`
/// is not a decimal number, or the result is negative, not finite or beyond `u32`.
pub fn weight_from_text(text: &str) -> Option<u32> {
    parser::weight_from_text(text)
}

/// Formats a 16.16 weight as crushtool does (`%.3f` of `(float)w / 65536`).
pub fn weight_to_text(weight: u32) -> String {
    printer::fixed_point(weight)
}
