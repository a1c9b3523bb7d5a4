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
//!
//! Every write looks its object up here, so lookups borrow the caller's key (no allocation)
//! and the maps use hashbrown's default hasher (foldhash) rather than SipHash: the keys
//! are object names and this is an OSD-internal map that nobody outside chooses the layout
//! of (clients choose names, but a collision only costs time within a bounded map).
//! With SipHash and an allocated key per lookup the cache was 3 % of an OSD's CPU under
//! 4 KiB writes.

use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};

use hashbrown::{Equivalent, HashMap};

use clustermap::PgId;

use super::types::ObjectInfo;

/// Fixed per-entry overhead estimate: the hash map slot, the key's `Vec`, the value.
const ENTRY_OVERHEAD: usize = 96;

type CacheKey = (PgId, Vec<u8>);

/// A [`CacheKey`] borrowed from the caller; hashes exactly as the owned key does.
struct Lookup<'k>(PgId, &'k [u8]);

impl Hash for Lookup<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The tuple's hash is its fields' in order, and a Vec hashes as its slice.
        (self.0, self.1).hash(state);
    }
}

impl Equivalent<CacheKey> for Lookup<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        self.0 == key.0 && self.1 == key.1.as_slice()
    }
}

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
        let key = Lookup(pg, oid);
        if let Some(value) = inner.hot.get(&key) {
            return Some(*value);
        }
        let (key, value) = inner.cold.remove_entry(&key)?;
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
            self.insert(&mut inner, pg, oid, value);
        }
    }

    /// Records a written value (call after the write reached the engine).
    pub fn update(&self, pg: PgId, oid: &[u8], value: Option<ObjectInfo>) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.cold.remove(&Lookup(pg, oid));
        self.insert(&mut inner, pg, oid, value);
    }

    /// Forgets everything (a PG was removed).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.hot.clear();
        inner.cold.clear();
        inner.hot_bytes = 0;
    }

    /// Sets the hot entry of a borrowed key, allocating the key only when it is new.
    fn insert(&self, inner: &mut Generations, pg: PgId, oid: &[u8], value: Option<ObjectInfo>) {
        if let Some(slot) = inner.hot.get_mut(&Lookup(pg, oid)) {
            *slot = value;
            return;
        }
        self.insert_hot(inner, (pg, oid.to_vec()), value);
    }

    /// Adds an entry that is not in the hot map.
    fn insert_hot(&self, inner: &mut Generations, key: CacheKey, value: Option<ObjectInfo>) {
        if self.budget == 0 {
            return;
        }
        let added = cost(&key);
        // Rotate before inserting, so neither generation ever exceeds half the budget. The
        // new hot map starts at the size the last one reached, so it does not grow by
        // rehashing all over again.
        if inner.hot_bytes + added > self.budget / 2 {
            let capacity = inner.hot.len();
            inner.cold = std::mem::replace(&mut inner.hot, HashMap::with_capacity(capacity));
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
