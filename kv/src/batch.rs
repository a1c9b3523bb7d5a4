//! [`WriteBatch`]: puts, deletes and range deletes over any keyspaces, applied atomically.
//!
//! Before a backend sees a batch it is *resolved* into a sorted list of final
//! [`Mutation`]s, one per key: later operations on a key win over earlier ones, and a range
//! delete becomes point deletes of the keys that exist when the batch is applied (the engine
//! holds its write lock meanwhile, so no other writer can slip a key into the range). This
//! keeps every backend's apply step a plain "set or remove these keys" and gives all of them
//! the same semantics, including for a batch that writes one key twice.

use std::collections::BTreeMap;

use crate::keys::{validate_key, validate_keyspace, validate_value};
use crate::{KeyRange, Result};

/// An ordered list of writes, applied all together or not at all by [`crate::Engine::write`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum BatchOp {
    Put {
        keyspace: String,
        key: Vec<u8>,
        value: Vec<u8>,
        log_only: bool,
    },
    Delete {
        keyspace: String,
        key: Vec<u8>,
    },
    DeleteRange {
        keyspace: String,
        range: KeyRange,
    },
}

/// The final state of one key after a resolved batch: `Some` to store, `None` to remove.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Mutation {
    pub keyspace: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    /// A put made with [`WriteBatch::put_log_only`].
    pub log_only: bool,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value` in `keyspace`.
    pub fn put(
        &mut self,
        keyspace: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.push_put(keyspace, key.into(), value.into(), false)
    }

    /// Sets `key` to `value` in `keyspace` in the engine's log only: on an engine that
    /// accepted a log release hook ([`crate::Engine::on_log_release`]) the put is made
    /// durable with its batch but never stored in the engine's tables, and it is dropped
    /// with the log once the hook has run; after a crash, a log-only put the log still
    /// held comes back as an ordinary key (with the rest of its batch). Reads do not see
    /// it while the engine runs; on other engines it is an ordinary put.
    ///
    /// This is how a caller keeps data durable in the log until it has written it
    /// elsewhere itself (BlueStore's deferred writes): the hook makes that copy durable.
    pub fn put_log_only(
        &mut self,
        keyspace: &str,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> &mut Self {
        self.push_put(keyspace, key.into(), value.into(), true)
    }

    fn push_put(
        &mut self,
        keyspace: &str,
        key: Vec<u8>,
        value: Vec<u8>,
        log_only: bool,
    ) -> &mut Self {
        self.ops.push(BatchOp::Put {
            keyspace: keyspace.to_owned(),
            key,
            value,
            log_only,
        });
        self
    }

    /// Removes `key` from `keyspace` (nothing happens if it is absent).
    pub fn delete(&mut self, keyspace: &str, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp::Delete {
            keyspace: keyspace.to_owned(),
            key: key.into(),
        });
        self
    }

    /// Removes every key of `keyspace` inside `range`, including keys put earlier in this
    /// batch; puts later in the batch survive. `KeyRange::all()` empties the keyspace.
    pub fn delete_range(&mut self, keyspace: &str, range: KeyRange) -> &mut Self {
        self.ops.push(BatchOp::DeleteRange {
            keyspace: keyspace.to_owned(),
            range,
        });
        self
    }

    /// Number of operations added.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Checks every keyspace name, key and value, so a bad batch is refused before any of
    /// it is applied.
    pub(crate) fn validate(&self) -> Result<()> {
        for op in &self.ops {
            match op {
                BatchOp::Put {
                    keyspace,
                    key,
                    value,
                    ..
                } => {
                    validate_keyspace(keyspace)?;
                    validate_key(key)?;
                    validate_value(value)?;
                }
                BatchOp::Delete { keyspace, key } => {
                    validate_keyspace(keyspace)?;
                    validate_key(key)?;
                }
                BatchOp::DeleteRange { keyspace, range } => {
                    validate_keyspace(keyspace)?;
                    range.validate()?;
                }
            }
        }
        Ok(())
    }

    /// Resolves the batch into one final mutation per key, sorted by keyspace and key.
    /// `existing_keys(keyspace, range)` lists the stored keys inside a (normalized) range;
    /// it is asked once per range delete.
    pub(crate) fn resolve(
        self,
        mut existing_keys: impl FnMut(&str, &KeyRange) -> Result<Vec<Vec<u8>>>,
    ) -> Result<Vec<Mutation>> {
        if !self
            .ops
            .iter()
            .any(|op| matches!(op, BatchOp::DeleteRange { .. }))
        {
            return Ok(resolve_point_ops(self.ops));
        }
        // Per key: the value to store (None: remove) and whether the put is log-only.
        type Final = (Option<Vec<u8>>, bool);
        let mut pending: BTreeMap<String, BTreeMap<Vec<u8>, Final>> = BTreeMap::new();
        for op in self.ops {
            match op {
                BatchOp::Put {
                    keyspace,
                    key,
                    value,
                    log_only,
                } => {
                    pending
                        .entry(keyspace)
                        .or_default()
                        .insert(key, (Some(value), log_only));
                }
                BatchOp::Delete { keyspace, key } => {
                    pending
                        .entry(keyspace)
                        .or_default()
                        .insert(key, (None, false));
                }
                BatchOp::DeleteRange { keyspace, range } => {
                    let Some(range) = range.normalized() else {
                        continue;
                    };
                    let stored = existing_keys(&keyspace, &range)?;
                    let keys = pending.entry(keyspace).or_default();
                    for (_, value) in keys.range_mut(range.into_bounds()) {
                        *value = (None, false);
                    }
                    for key in stored {
                        keys.insert(key, (None, false));
                    }
                }
            }
        }
        Ok(pending
            .into_iter()
            .flat_map(|(keyspace, keys)| {
                keys.into_iter()
                    .map(move |(key, (value, log_only))| Mutation {
                        keyspace: keyspace.clone(),
                        key,
                        value,
                        log_only,
                    })
            })
            .collect())
    }
}

/// [`WriteBatch::resolve`] for a batch of puts and deletes only, which is nearly every
/// batch: a sort of its few operations instead of building maps (the maps were 2 % of an
/// OSD's CPU under small writes).
fn resolve_point_ops(ops: Vec<BatchOp>) -> Vec<Mutation> {
    let mut mutations: Vec<Mutation> = ops
        .into_iter()
        .filter_map(|op| match op {
            BatchOp::Put {
                keyspace,
                key,
                value,
                log_only,
            } => Some(Mutation {
                keyspace,
                key,
                value: Some(value),
                log_only,
            }),
            BatchOp::Delete { keyspace, key } => Some(Mutation {
                keyspace,
                key,
                value: None,
                log_only: false,
            }),
            BatchOp::DeleteRange { .. } => None,
        })
        .collect();
    // The sort is stable, so the operations on one key stay in the order they were made,
    // and the last of each run is the one that counts.
    mutations.sort_by(|a, b| (&a.keyspace, &a.key).cmp(&(&b.keyspace, &b.key)));
    mutations.dedup_by(|later, kept| {
        let same = later.keyspace == kept.keyspace && later.key == kept.key;
        if same {
            std::mem::swap(later, kept);
        }
        same
    });
    mutations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_stored_keys(_: &str, _: &KeyRange) -> Result<Vec<Vec<u8>>> {
        Ok(Vec::new())
    }

    #[test]
    fn the_last_operation_on_a_key_wins() {
        let mut batch = WriteBatch::new();
        batch
            .put("a", b"k".to_vec(), b"1".to_vec())
            .delete("a", b"k".to_vec())
            .put("a", b"j".to_vec(), b"2".to_vec())
            .delete("a", b"j".to_vec())
            .put("a", b"j".to_vec(), b"3".to_vec());
        let resolved = batch.resolve(no_stored_keys).unwrap();
        assert_eq!(
            resolved,
            vec![
                Mutation {
                    keyspace: "a".into(),
                    key: b"j".to_vec(),
                    value: Some(b"3".to_vec()),
                    log_only: false,
                },
                Mutation {
                    keyspace: "a".into(),
                    key: b"k".to_vec(),
                    value: None,
                    log_only: false,
                },
            ]
        );
    }

    #[test]
    fn batches_without_range_deletes_resolve_as_the_general_path_does() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _ in 0..500 {
            let mut batch = WriteBatch::new();
            for _ in 0..1 + next(8) {
                let keyspace = ["a", "b"][next(2) as usize];
                let key = vec![b'k', next(4) as u8];
                match next(3) {
                    0 => batch.delete(keyspace, key),
                    1 => batch.put_log_only(keyspace, key, next(100).to_be_bytes()),
                    _ => batch.put(keyspace, key, next(100).to_be_bytes()),
                };
            }
            // A range delete over a keyspace nothing else touches changes no key, but it
            // sends the batch down the general path.
            let mut general = batch.clone();
            general.delete_range("unused", KeyRange::all());
            assert_eq!(
                batch.resolve(no_stored_keys).unwrap(),
                general.resolve(no_stored_keys).unwrap()
            );
        }
    }

    #[test]
    fn range_delete_covers_stored_and_earlier_keys_but_not_later_ones() {
        let mut batch = WriteBatch::new();
        batch
            .put("a", b"b1".to_vec(), b"early".to_vec())
            .put("other", b"b2".to_vec(), b"untouched".to_vec())
            .delete_range("a", KeyRange::prefix(b"b"))
            .put("a", b"b3".to_vec(), b"late".to_vec());
        let resolved = batch
            .resolve(|keyspace, range| {
                assert_eq!(keyspace, "a");
                assert!(range.contains(b"b9"));
                Ok(vec![b"b9".to_vec()])
            })
            .unwrap();
        let summary: Vec<_> = resolved
            .iter()
            .map(|m| (m.keyspace.as_str(), m.key.as_slice(), m.value.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("a", &b"b1"[..], None),
                ("a", &b"b3"[..], Some(&b"late"[..])),
                ("a", &b"b9"[..], None),
                ("other", &b"b2"[..], Some(&b"untouched"[..])),
            ]
        );
    }

    #[test]
    fn validation_rejects_the_whole_batch() {
        let mut batch = WriteBatch::new();
        batch.put("ok", b"k".to_vec(), b"v".to_vec());
        batch.put("not ok", b"k".to_vec(), b"v".to_vec());
        assert!(batch.validate().is_err());
        let mut empty_key = WriteBatch::new();
        empty_key.delete("ok", Vec::new());
        assert!(matches!(empty_key.validate(), Err(crate::Error::EmptyKey)));
    }
}
