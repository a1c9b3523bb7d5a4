//! The memory backend: ordered maps behind a lock, nothing on disk (tests and caches, like
//! Tair's mdb engine). Sync is free and durability is none: a restart loses everything.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, PoisonError, RwLock};

use crate::batch::Mutation;
use crate::engine::{Scan, Store};
use crate::{Backend, Entry, KeyRange, Result};

type Keyspaces = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Keyspaces as B-trees; empty keyspaces are removed so they vanish from listings.
#[derive(Debug, Default)]
pub(crate) struct MemoryStore {
    keyspaces: Arc<RwLock<Keyspaces>>,
}

impl Store for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let keyspaces = read(&self.keyspaces);
        Ok(keyspaces
            .get(keyspace)
            .and_then(|entries| entries.get(key))
            .cloned())
    }

    fn scan(&self, keyspace: &str, range: KeyRange) -> Result<Scan> {
        let (lower, upper) = range.into_bounds();
        Ok(Scan::new(MemoryScan {
            keyspaces: self.keyspaces.clone(),
            keyspace: keyspace.to_owned(),
            lower,
            upper,
            front: VecDeque::new(),
            back: VecDeque::new(),
            exhausted: false,
        }))
    }

    fn apply(&self, mutations: Vec<Mutation>) -> Result<()> {
        // One write lock for the whole batch: readers see all of it or none of it.
        let mut keyspaces = self
            .keyspaces
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for mutation in mutations {
            match mutation.value {
                Some(value) => {
                    keyspaces
                        .entry(mutation.keyspace)
                        .or_default()
                        .insert(mutation.key, value);
                }
                None => {
                    if let Some(entries) = keyspaces.get_mut(&mutation.keyspace) {
                        entries.remove(&mutation.key);
                        if entries.is_empty() {
                            keyspaces.remove(&mutation.keyspace);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn sync_to_disk(&self) -> Result<()> {
        Ok(())
    }

    fn keyspaces(&self) -> Result<Vec<String>> {
        Ok(read(&self.keyspaces).keys().cloned().collect())
    }
}

fn read(keyspaces: &RwLock<Keyspaces>) -> std::sync::RwLockReadGuard<'_, Keyspaces> {
    // Applies never panic half-way, so a poisoned lock still guards consistent maps.
    keyspaces.read().unwrap_or_else(PoisonError::into_inner)
}

/// Entries fetched per lock acquisition: large enough to amortize the lock, small enough
/// that a scan never holds it long.
const SCAN_CHUNK: usize = 128;

/// A scan that copies a chunk of entries at a time and releases the lock between chunks,
/// so the caller may write while scanning. Each end narrows its bound past what it fetched,
/// so the two ends never yield the same key.
struct MemoryScan {
    keyspaces: Arc<RwLock<Keyspaces>>,
    keyspace: String,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    /// Fetched from the low end, ascending.
    front: VecDeque<Entry>,
    /// Fetched from the high end, descending.
    back: VecDeque<Entry>,
    /// The range between `lower` and `upper` was found empty: nothing more to fetch.
    exhausted: bool,
}

impl MemoryScan {
    fn fetch(&mut self, from_front: bool) {
        let range = KeyRange::new(self.lower.clone(), self.upper.clone());
        let keyspaces = read(&self.keyspaces);
        let (Some(entries), Some(range)) = (keyspaces.get(&self.keyspace), range.normalized())
        else {
            self.exhausted = true;
            return;
        };
        let in_range = entries.range(range.into_bounds());
        let chunk: Vec<Entry> = if from_front {
            in_range
                .take(SCAN_CHUNK)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        } else {
            in_range
                .rev()
                .take(SCAN_CHUNK)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        drop(keyspaces);
        if chunk.len() < SCAN_CHUNK {
            self.exhausted = true;
        }
        if let Some((last, _)) = chunk.last() {
            if from_front {
                self.lower = Bound::Excluded(last.clone());
            } else {
                self.upper = Bound::Excluded(last.clone());
            }
        }
        if from_front {
            self.front.extend(chunk);
        } else {
            self.back.extend(chunk);
        }
    }
}

impl Iterator for MemoryScan {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.front.is_empty() && !self.exhausted {
            self.fetch(true);
        }
        self.front
            .pop_front()
            .or_else(|| self.back.pop_back())
            .map(Ok)
    }
}

impl DoubleEndedIterator for MemoryScan {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.back.is_empty() && !self.exhausted {
            self.fetch(false);
        }
        self.back
            .pop_front()
            .or_else(|| self.front.pop_back())
            .map(Ok)
    }
}
