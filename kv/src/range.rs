//! [`KeyRange`]: the bounds of a scan or of a range delete, normalised once so that no
//! backend ever sees bounds its library would panic on (start after end, empty keys).

use std::ops::{Bound, RangeBounds};

use crate::keys::{prefix_successor, FIRST_USER_KEY, MAX_KEY_LEN};
use crate::{Error, Result};

/// A range of keys inside one keyspace: a start and an end bound, each inclusive, exclusive
/// or open. A range whose start lies after its end is simply empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRange {
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        Self::new(Bound::Unbounded, Bound::Unbounded)
    }

    /// The keys between two bounds.
    pub fn new(start: Bound<Vec<u8>>, end: Bound<Vec<u8>>) -> Self {
        Self { start, end }
    }

    /// Keys from `start` (inclusive) to `end` (exclusive), like `start..end`.
    pub fn between(start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) -> Self {
        Self::new(Bound::Included(start.into()), Bound::Excluded(end.into()))
    }

    /// Keys from `start` (inclusive) on, like `start..`.
    pub fn from_key(start: impl Into<Vec<u8>>) -> Self {
        Self::new(Bound::Included(start.into()), Bound::Unbounded)
    }

    /// Keys that start with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        let end = match prefix_successor(prefix) {
            Some(successor) => Bound::Excluded(successor),
            None => Bound::Unbounded,
        };
        Self::new(Bound::Included(prefix.to_vec()), end)
    }

    /// Any Rust range over byte strings: `KeyRange::from_bounds(&b"a"[..]..=&b"c"[..])`.
    pub fn from_bounds<K: AsRef<[u8]> + ?Sized>(range: impl RangeBounds<K>) -> Self {
        let owned = |bound: Bound<&K>| match bound {
            Bound::Included(key) => Bound::Included(key.as_ref().to_vec()),
            Bound::Excluded(key) => Bound::Excluded(key.as_ref().to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        Self::new(owned(range.start_bound()), owned(range.end_bound()))
    }

    /// The start bound.
    pub fn start(&self) -> Bound<&[u8]> {
        as_slice_bound(&self.start)
    }

    /// The end bound.
    pub fn end(&self) -> Bound<&[u8]> {
        as_slice_bound(&self.end)
    }

    /// Whether `key` lies inside the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let after_start = match self.start() {
            Bound::Included(start) => key >= start,
            Bound::Excluded(start) => key > start,
            Bound::Unbounded => true,
        };
        let before_end = match self.end() {
            Bound::Included(end) => key <= end,
            Bound::Excluded(end) => key < end,
            Bound::Unbounded => true,
        };
        after_start && before_end
    }

    /// Refuses bounds longer than [`MAX_KEY_LEN`] (fjall panics on them; no stored key is
    /// that long anyway).
    pub(crate) fn validate(&self) -> Result<()> {
        for bound in [self.start(), self.end()] {
            if let Bound::Included(key) | Bound::Excluded(key) = bound {
                if key.len() > MAX_KEY_LEN {
                    return Err(Error::KeyTooLarge {
                        len: key.len(),
                        max: MAX_KEY_LEN,
                    });
                }
            }
        }
        Ok(())
    }

    /// The same set of callers' keys with bounds every backend accepts, or `None` when the
    /// range certainly holds no such key. The start is raised to [`FIRST_USER_KEY`] because
    /// no caller's key sorts before it (none is empty or [`crate::keys::RESERVED_KEY`], which
    /// the fjall backend keeps in every keyspace); start-after-end (which makes
    /// `BTreeMap::range` panic) becomes `None`.
    pub(crate) fn normalized(&self) -> Option<Self> {
        let start = match &self.start {
            Bound::Unbounded => Bound::Included(FIRST_USER_KEY.to_vec()),
            Bound::Included(key) | Bound::Excluded(key) if key.as_slice() < FIRST_USER_KEY => {
                Bound::Included(FIRST_USER_KEY.to_vec())
            }
            other => other.clone(),
        };
        let end = match &self.end {
            Bound::Included(key) | Bound::Excluded(key) if key.is_empty() => return None,
            other => other.clone(),
        };
        let empty = match (&start, &end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e))
            | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
            _ => false,
        };
        (!empty).then(|| Self::new(start, end))
    }

    /// The owned bounds, for backends that take `(Bound, Bound)` tuples.
    pub(crate) fn into_bounds(self) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
        (self.start, self.end)
    }
}

fn as_slice_bound(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_respects_each_bound_kind() {
        let range = KeyRange::from_bounds(&b"b"[..]..=&b"d"[..]);
        assert!(!range.contains(b"a"));
        assert!(range.contains(b"b"));
        assert!(range.contains(b"d"));
        assert!(!range.contains(b"da"));
        let half_open = KeyRange::between(b"b".to_vec(), b"d".to_vec());
        assert!(!half_open.contains(b"d"));
        assert!(half_open.contains(b"cz"));
    }

    #[test]
    fn prefix_range_holds_exactly_the_prefixed_keys() {
        let range = KeyRange::prefix(b"ab");
        assert!(range.contains(b"ab"));
        assert!(range.contains(b"ab\xff\xff"));
        assert!(!range.contains(b"ac"));
        assert!(!range.contains(b"aa\xff"));
        assert_eq!(KeyRange::prefix(b"\xff").end(), Bound::Unbounded);
    }

    #[test]
    fn normalization_drops_impossible_ranges() {
        assert!(KeyRange::between(b"b".to_vec(), b"a".to_vec())
            .normalized()
            .is_none());
        assert!(KeyRange::between(b"a".to_vec(), b"a".to_vec())
            .normalized()
            .is_none());
        assert!(KeyRange::from_bounds(&b"a"[..]..=&b"a"[..])
            .normalized()
            .is_some());
        assert!(KeyRange::new(Bound::Unbounded, Bound::Excluded(Vec::new()))
            .normalized()
            .is_none());
        let from_first = Some(KeyRange::from_key(FIRST_USER_KEY.to_vec()));
        assert_eq!(KeyRange::from_key(Vec::new()).normalized(), from_first);
        assert_eq!(KeyRange::all().normalized(), from_first);
        assert_eq!(KeyRange::from_key(b"\0".to_vec()).normalized(), from_first);
        assert!(
            KeyRange::new(Bound::Unbounded, Bound::Included(b"\0".to_vec()))
                .normalized()
                .is_none()
        );
    }
}
