//! The rules for keyspace names, keys and values, shared by every backend so that a store
//! can move between backends without its data becoming unwritable.
//!
//! A *keyspace* is a named, independently ordered set of keys (fjall calls it a keyspace,
//! sled a tree; sled stores ours as key prefixes in one tree, see `sled_store`). Keyspaces
//! need no creation step: the first write creates one, and a keyspace with no keys is the
//! same as one that never existed. One write batch may touch several keyspaces atomically.
//!
//! Names are 1 to [`MAX_KEYSPACE_LEN`] bytes of ASCII letters, digits and `_ . : -`, so
//! callers can build them from identifiers (`raft_log`, `pg:1.2f`). Keys are 1 to
//! [`MAX_KEY_LEN`] bytes (fjall cannot store the empty key, so no backend accepts it), except
//! [`RESERVED_KEY`]; values are 0 to [`MAX_VALUE_LEN`] bytes.

use crate::{Error, Result};

/// Longest keyspace name, in bytes.
pub const MAX_KEYSPACE_LEN: usize = 128;

/// Longest key, in bytes (fjall's own limit is 64 KiB; sled adds our keyspace prefix).
pub const MAX_KEY_LEN: usize = 16 * 1024;

/// Longest value, in bytes. Larger blobs belong in several keys (the OSDs use 64 KiB chunks).
pub const MAX_VALUE_LEN: usize = 256 * 1024 * 1024;

/// The one key no caller may use, the smallest non-empty key: the fjall backend keeps in it,
/// in every keyspace, the number of the last logged batch that keyspace holds (see
/// `fjall_wal`). Every other key sorts at or after [`FIRST_USER_KEY`].
pub const RESERVED_KEY: &[u8] = b"\0";

/// The smallest key a caller may use.
pub const FIRST_USER_KEY: &[u8] = b"\0\0";

/// Checks a keyspace name against the rules above.
pub fn validate_keyspace(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_KEYSPACE_LEN {
        "it is longer than 128 bytes"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
    {
        "only ASCII letters, digits and _ . : - are allowed"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKeyspace {
        name: name.to_owned(),
        reason,
    })
}

/// Checks a key's length.
pub fn validate_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::EmptyKey);
    }
    if key == RESERVED_KEY {
        return Err(Error::ReservedKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    Ok(())
}

/// Checks a value's length.
pub fn validate_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// when there is none (the prefix is empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last_incrementable = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut successor = prefix[..=last_incrementable].to_vec();
    successor[last_incrementable] += 1;
    Some(successor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_names_follow_the_documented_rules() {
        for good in ["a", "raft_log", "pg:1.2f", "A-Z.0_9", &"x".repeat(128)] {
            assert!(validate_keyspace(good).is_ok(), "{good:?} should be valid");
        }
        for bad in ["", "with space", "slash/", "ünï", &"x".repeat(129)] {
            assert!(
                matches!(validate_keyspace(bad), Err(Error::InvalidKeyspace { .. })),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn key_and_value_limits() {
        assert!(matches!(validate_key(b""), Err(Error::EmptyKey)));
        assert!(validate_key(&[0; MAX_KEY_LEN]).is_ok());
        assert!(matches!(
            validate_key(&vec![0; MAX_KEY_LEN + 1]),
            Err(Error::KeyTooLarge { .. })
        ));
        assert!(validate_value(b"").is_ok());
    }

    #[test]
    fn prefix_successor_skips_trailing_ff() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff]), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
