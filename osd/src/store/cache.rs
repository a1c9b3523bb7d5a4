//! [`MetaCache`]: a bounded in-memory cache of object metadata (including "known absent"),
//! so a write or read of a hot object skips one engine lookup.
//!
//! Bounded by an approximate byte budget with two generations: new and recently used
//! entries go into the *hot* map; when it exceeds half the budget, the hot map becomes the
//! *cold* one and the old cold map is dropped. A hit in the cold map moves the entry back
//! to hot. Every operation is O(1) and the cache never holds more than about its budget;
//! the eviction is LRU-like without per-entry bookkeeping.
//!
//! Consistency: writers update the cache after their batch reached the engine (under their
//! PG's lock). A reader that missed loads from the engine and inserts only if no write
//! happened in between ([`MetaCache::generation`] is unchanged) — otherwise a slow reader
//! could put back a value older than a concurrent writer's.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use clustermap::PgId;

use super::types::ObjectInfo;

/// Fixed per-entry overhead estimate: the hash map slot, the key's `Vec`, the value.
const ENTRY_OVERHEAD: usize = 96;

type CacheKey = (PgId, Vec<u8>);

#[derive(Debug, Default)]
struct Generations {
    hot: HashMap<CacheKey, Option<ObjectInfo>>,
    cold: HashMap<CacheKey, Option<ObjectInfo>>,
    hot_bytes: usize,
    /// Bumped by every write, so readers can tell whether their engine read is current.
    generation: u64,
}

/// Object metadata by (PG, encoded object key); `None` values mean "does not exist".
#[derive(Debug)]
pub(crate) struct MetaCache {
    budget: usize,
    inner: Mutex<Generations>,
}

fn cost(key: &CacheKey) -> usize {
    key.1.len() + ENTRY_OVERHEAD
}

impl MetaCache {
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            budget: budget_bytes,
            inner: Mutex::new(Generations::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // Every critical section leaves the maps consistent, even if a caller panicked.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached state: `Some(None)` means known absent, `None` means not cached.
    pub fn get(&self, pg: PgId, oid: &[u8]) -> Option<Option<ObjectInfo>> {
        let mut inner = self.lock();
        let key = (pg, oid.to_vec());
        if let Some(value) = inner.hot.get(&key) {
            return Some(*value);
        }
        let value = inner.cold.remove(&key)?;
        self.insert_hot(&mut inner, key, value);
        Some(value)
    }

    /// The current write generation, to pass to [`MetaCache::insert_if_unchanged`].
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Caches a value read from the engine, unless a write happened since `generation`.
    pub fn insert_if_unchanged(
        &self,
        pg: PgId,
        oid: &[u8],
        value: Option<ObjectInfo>,
        generation: u64,
    ) {
        let mut inner = self.lock();
        if inner.generation == generation {
            self.insert_hot(&mut inner, (pg, oid.to_vec()), value);
        }
    }

    /// Records a written value (call after the write reached the engine).
    pub fn update(&self, pg: PgId, oid: &[u8], value: Option<ObjectInfo>) {
        let mut inner = self.lock();
        inner.generation += 1;
        let key = (pg, oid.to_vec());
        inner.cold.remove(&key);
        self.insert_hot(&mut inner, key, value);
    }

    /// Forgets everything (a PG was removed).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.hot.clear();
        inner.cold.clear();
        inner.hot_bytes = 0;
    }

    fn insert_hot(&self, inner: &mut Generations, key: CacheKey, value: Option<ObjectInfo>) {
        if self.budget == 0 {
            return;
        }
        let added = cost(&key);
        if let Some(slot) = inner.hot.get_mut(&key) {
            *slot = value;
            return;
        }
        // Rotate before inserting, so neither generation ever exceeds half the budget.
        if inner.hot_bytes + added > self.budget / 2 {
            inner.cold = std::mem::take(&mut inner.hot);
            inner.hot_bytes = 0;
        }
        inner.hot.insert(key, value);
        inner.hot_bytes += added;
    }

    /// Entries held (hot and cold), for tests.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.hot.len() + inner.cold.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::types::Eversion;
    use std::time::UNIX_EPOCH;

    fn info(size: u64) -> Option<ObjectInfo> {
        Some(ObjectInfo {
            size,
            version: Eversion::new(1, size),
            mtime: UNIX_EPOCH,
        })
    }

    const PG: PgId = PgId { pool: 1, ps: 0 };

    #[test]
    fn the_cache_stays_within_its_budget() {
        let cache = MetaCache::new(100 * (ENTRY_OVERHEAD + 8));
        for i in 0..10_000u64 {
            cache.update(PG, &i.to_be_bytes(), info(i));
            assert!(cache.len() <= 100, "{} entries after {i}", cache.len());
        }
        // The most recent entries are still there.
        assert_eq!(cache.get(PG, &9_999u64.to_be_bytes()), Some(info(9_999)));
        assert_eq!(cache.get(PG, &0u64.to_be_bytes()), None);
    }

    #[test]
    fn a_reader_never_overwrites_a_newer_write() {
        let cache = MetaCache::new(1 << 20);
        let generation = cache.generation();
        // A write lands between the reader's engine read and its insert.
        cache.update(PG, b"obj", info(2));
        cache.insert_if_unchanged(PG, b"obj", info(1), generation);
        assert_eq!(cache.get(PG, b"obj"), Some(info(2)));
        let generation = cache.generation();
        cache.insert_if_unchanged(PG, b"other", None, generation);
        assert_eq!(cache.get(PG, b"other"), Some(None));
        cache.clear();
        assert_eq!(cache.get(PG, b"obj"), None);
    }

    #[test]
    fn a_zero_budget_caches_nothing() {
        let cache = MetaCache::new(0);
        cache.update(PG, b"obj", info(1));
        assert_eq!(cache.get(PG, b"obj"), None);
    }
}
