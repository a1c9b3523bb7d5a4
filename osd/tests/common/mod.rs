//! Test support shared by the `store_*` tests: scratch directories, stores on the memory
//! and fjall backends, deterministic data and a small random generator.
#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use clustermap::{PgId, Uuid};
use kv::{Backend, Engine, KeyRange, Options};
use osd::store::{Eversion, ObjectId, ObjectStore, StoreConfig, StoreError, Transaction};

/// The PG most tests use.
pub const PG: PgId = PgId { pool: 1, ps: 0 };
pub const UUID: Uuid = Uuid([0x5a; 16]);
pub const KIB: u64 = 1024;
pub const CHUNK: u64 = osd::store::CHUNK_SIZE as u64;

/// A fresh, empty directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "osd-store-test-{label}-{}-{unique}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a scratch directory");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A formatted store on the memory backend with `PG` created; also returns the engine.
/// Large chunks go to a block file, as in the OSD; the file is unlinked at once (the store
/// keeps it open), so nothing is left behind.
pub fn memory_store_with(config: StoreConfig) -> (ObjectStore, Arc<dyn Engine>) {
    let engine = kv::open(Backend::Memory, Path::new("unused"), &Options::default()).unwrap();
    let dir = TempDir::new("blocks");
    let blocks = dir.path().join("blocks");
    let store = ObjectStore::mkfs_with_blocks(engine.clone(), UUID, config, Some(&blocks)).unwrap();
    drop(dir);
    store.create_pg(PG).unwrap();
    (store, engine)
}

/// [`memory_store_with`] without a block file: every chunk stays in the engine, for tests
/// that look at the engine's stored chunks.
pub fn memory_store_in_engine_only(config: StoreConfig) -> (ObjectStore, Arc<dyn Engine>) {
    let engine = kv::open(Backend::Memory, Path::new("unused"), &Options::default()).unwrap();
    let store = ObjectStore::mkfs(engine.clone(), UUID, config).unwrap();
    store.create_pg(PG).unwrap();
    (store, engine)
}

pub fn memory_store() -> (ObjectStore, Arc<dyn Engine>) {
    memory_store_with(StoreConfig::default())
}

/// Opens (formatting on first use) a fjall store in `dir`, with the engine options the
/// daemon uses (the store compresses, fjall does not).
pub fn fjall_store(dir: &Path, config: StoreConfig) -> (ObjectStore, Arc<dyn Engine>) {
    let options = Options {
        cache_bytes: 16 << 20,
        fjall_compression: false,
        ..Options::default()
    };
    let engine = kv::open(Backend::Fjall, dir, &options).unwrap();
    // Large chunks go to a block file, as in the OSD.
    let blocks = dir.join("blocks");
    let store = match ObjectStore::open_with_blocks(engine.clone(), config.clone(), Some(&blocks)) {
        Ok(store) => store,
        Err(StoreError::NotFormatted) => {
            ObjectStore::mkfs_with_blocks(engine.clone(), UUID, config, Some(&blocks)).unwrap()
        }
        Err(other) => panic!("open failed: {other}"),
    };
    (store, engine)
}

pub fn obj(name: &str) -> ObjectId {
    ObjectId::new(name)
}

/// Commits one transaction on `object` of `PG`, built by `build`, at epoch 1.
pub fn commit(
    store: &ObjectStore,
    object: &ObjectId,
    build: impl FnOnce(&mut Transaction),
) -> Result<Eversion, StoreError> {
    let mut txn = Transaction::new(PG, object.clone(), 1);
    build(&mut txn);
    store.commit(txn)
}

/// Deterministic bytes that differ by `seed` and position.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A small deterministic random generator (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// Every key of a keyspace that starts with `tag` (the store's section tags, see
/// `osd::store::keys`), with its value.
pub fn section(engine: &dyn Engine, keyspace: &str, tag: u8) -> Vec<(Vec<u8>, Vec<u8>)> {
    engine
        .scan(keyspace, KeyRange::prefix(&[tag]))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

pub fn pg_keyspace(pg: PgId) -> String {
    format!("pg:{pg}")
}
