//! The fjall backend: each of our keyspaces is a fjall keyspace (its own LSM tree), and a
//! batch is one fjall cross-keyspace batch, which fjall's journal makes crash-atomic.
//!
//! Durability: batches are written to the journal's OS buffer on commit (so a killed process
//! loses nothing that was committed), and `sync` is one fdatasync of the active journal, run
//! outside fjall's journal lock so that commits go on while it runs (see `fjall_journal`).
//! Values of at least [`Options::fjall_blob_threshold`] bytes are kept in blob files
//! (key-value separation), so compaction does not rewrite large values. Large values are
//! lz4-compressed in the journal and blob files unless [`Options::fjall_compression`] is off.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

use fjall::{
    AbstractTree, CompressionType, Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions,
};

use crate::batch::Mutation;
use crate::engine::{Scan, Store, Visitor};
use crate::fjall_idle::{IdleRelease, StartError, MARKER_KEYSPACE};
use crate::fjall_journal::JournalSync;
use crate::{Backend, Error, KeyRange, Options, Result};

pub(crate) struct FjallStore {
    path: PathBuf,
    db: Database,
    /// Open keyspace handles; fjall's own lookup takes a global write lock, ours a read lock.
    handles: RwLock<HashMap<String, Keyspace>>,
    blob_threshold: Option<u32>,
    blob_compression: CompressionType,
    memtable_bytes: u64,
    write_buffer_bytes: u64,
    /// Bytes applied since the memtables were last measured against the budget.
    unchecked_bytes: AtomicU64,
    journal: JournalSync,
    /// Collects flushed memtables once writes stop. It holds a clone of `db`; dropping it
    /// joins its thread, so the database is closed when the store's drop returns.
    idle_release: IdleRelease,
}

fn compression_of(options: &Options) -> CompressionType {
    if options.fjall_compression {
        CompressionType::Lz4
    } else {
        CompressionType::None
    }
}

fn storage_error(error: fjall::Error) -> Error {
    Error::storage(Backend::Fjall, error)
}

impl FjallStore {
    pub fn open(path: &Path, options: &Options) -> Result<Self> {
        // One background worker: with two, fjall 3.1's first worker hands every compaction
        // request back to the queue until the second takes it, and while the second is busy
        // that loop alone cost an OSD about 6% of its CPU under small writes.
        let db = Database::builder(path)
            .cache_size(options.cache_bytes)
            .journal_compression(compression_of(options))
            .worker_threads(1)
            .open()
            .map_err(storage_error)?;
        let idle_release = IdleRelease::start(db.clone()).map_err(|error| match error {
            StartError::Keyspace(error) => storage_error(error),
            StartError::Thread(source) => Error::Io {
                operation: "start the memtable release thread for",
                path: path.to_owned(),
                source,
            },
        })?;
        Ok(Self {
            path: path.to_owned(),
            db,
            handles: RwLock::new(HashMap::new()),
            blob_threshold: options.fjall_blob_threshold,
            blob_compression: compression_of(options),
            memtable_bytes: options.fjall_memtable_bytes,
            write_buffer_bytes: options.fjall_write_buffer_bytes,
            unchecked_bytes: AtomicU64::new(0),
            journal: JournalSync::new(path),
            idle_release,
        })
    }

    /// The handle of an existing keyspace, or of a new one when `create` is set.
    fn keyspace(&self, name: &str, create: bool) -> Result<Option<Keyspace>> {
        if let Some(handle) = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(Some(handle.clone()));
        }
        if !create && !self.db.keyspace_exists(name) {
            return Ok(None);
        }
        let blob_threshold = self.blob_threshold;
        let blob_compression = self.blob_compression;
        let memtable_bytes = self.memtable_bytes;
        // The name was validated (1..=128 bytes), so fjall's name assertion cannot fire.
        let handle = self
            .db
            .keyspace(name, || {
                let separation = blob_threshold.map(|threshold| {
                    KvSeparationOptions::default()
                        .separation_threshold(threshold)
                        .compression(blob_compression)
                });
                KeyspaceCreateOptions::default()
                    .max_memtable_size(memtable_bytes)
                    .with_kv_separation(separation)
            })
            .map_err(storage_error)?;
        self.handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), handle.clone());
        Ok(Some(handle))
    }

    /// Keeps the memtables of all keyspaces within the write buffer budget by sealing the
    /// largest active ones (fjall then flushes them in the background). Measuring walks
    /// every keyspace, so it runs once per sixteenth of the budget written: the budget can
    /// be exceeded by that much plus one batch.
    fn enforce_write_buffer(&self, written: u64) -> Result<()> {
        let step = (self.write_buffer_bytes / 16).max(1);
        if self.unchecked_bytes.fetch_add(written, Ordering::AcqRel) + written < step {
            return Ok(());
        }
        self.unchecked_bytes.store(0, Ordering::Release);
        let mut sizes: Vec<(u64, Keyspace)> = {
            let handles = self.handles.read().unwrap_or_else(PoisonError::into_inner);
            handles
                .values()
                .map(|handle| (handle.tree.active_memtable().size(), handle.clone()))
                .collect()
        };
        let mut held: u64 = sizes.iter().map(|(size, _)| size).sum();
        sizes.sort_unstable_by_key(|(size, _)| std::cmp::Reverse(*size));
        for (size, handle) in sizes {
            if held <= self.write_buffer_bytes || size == 0 {
                break;
            }
            handle.rotate_memtable().map_err(storage_error)?;
            held -= size;
        }
        Ok(())
    }
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.path)
            .field("blob_threshold", &self.blob_threshold)
            .finish_non_exhaustive()
    }
}

impl Store for FjallStore {
    fn backend(&self) -> Backend {
        Backend::Fjall
    }

    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(handle) = self.keyspace(keyspace, false)? else {
            return Ok(None);
        };
        let value = handle.get(key).map_err(storage_error)?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn scan(&self, keyspace: &str, range: KeyRange) -> Result<Scan> {
        let Some(handle) = self.keyspace(keyspace, false)? else {
            return Ok(Scan::empty());
        };
        let entries = handle.range(range.into_bounds()).map(|guard| {
            let (key, value) = guard.into_inner().map_err(storage_error)?;
            Ok((key.to_vec(), value.to_vec()))
        });
        Ok(Scan::new(entries))
    }

    fn visit(&self, keyspace: &str, range: KeyRange, visit: Visitor<'_>) -> Result<()> {
        let Some(handle) = self.keyspace(keyspace, false)? else {
            return Ok(());
        };
        for guard in handle.range(range.into_bounds()) {
            let (key, value) = guard.into_inner().map_err(storage_error)?;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }

    fn keys_in(&self, keyspace: &str, range: &KeyRange) -> Result<Vec<Vec<u8>>> {
        let Some(handle) = self.keyspace(keyspace, false)? else {
            return Ok(Vec::new());
        };
        // Keys only: with key-value separation this never reads the blob files.
        handle
            .range(range.clone().into_bounds())
            .map(|guard| guard.key().map(|key| key.to_vec()).map_err(storage_error))
            .collect()
    }

    fn apply(&self, mutations: Vec<Mutation>) -> Result<()> {
        let mut batch = self.db.batch();
        let mut written = 0u64;
        for mutation in mutations {
            written += (mutation.key.len() + mutation.value.as_ref().map_or(0, Vec::len)) as u64;
            // A put creates its keyspace; deleting from a missing keyspace changes nothing.
            let creates = mutation.value.is_some();
            let Some(keyspace) = self.keyspace(&mutation.keyspace, creates)? else {
                continue;
            };
            match mutation.value {
                Some(value) => batch.insert(&keyspace, mutation.key, value),
                None => batch.remove(&keyspace, mutation.key),
            }
        }
        batch.commit().map_err(storage_error)?;
        self.idle_release.wrote(written);
        self.enforce_write_buffer(written)
    }

    fn sync_to_disk(&self) -> Result<()> {
        self.journal
            .sync()
            .map_err(|source| Error::io("fdatasync the journal of", &self.path, source))
    }

    fn keyspaces(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for name in self.db.list_keyspace_names() {
            let name: &str = &name;
            if name == MARKER_KEYSPACE {
                continue;
            }
            if let Some(handle) = self.keyspace(name, false)? {
                if handle.first_key_value().is_some() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, StoreEngine};
    use crate::fjall_journal::newest_journal;
    use crate::WriteBatch;
    use std::time::{Duration, Instant};

    /// A store in a new scratch directory `kv-fjall-<name>-<pid>`.
    fn fresh_store(name: &str, options: &Options) -> (PathBuf, StoreEngine<FjallStore>) {
        let dir = std::env::temp_dir().join(format!("kv-fjall-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = StoreEngine::new(FjallStore::open(&dir, options).unwrap());
        (dir, engine)
    }

    fn active_memtable_bytes(store: &FjallStore) -> u64 {
        let handles = store.handles.read().unwrap();
        handles
            .values()
            .map(|handle| handle.tree.active_memtable().size())
            .sum()
    }

    #[test]
    fn the_write_buffer_budget_bounds_all_memtables_together() {
        let budget = 2 << 20;
        let options = Options {
            // Far above what is written: only the shared budget can cause flushes.
            fjall_memtable_bytes: 256 << 20,
            fjall_write_buffer_bytes: budget,
            fjall_blob_threshold: None,
            ..Options::default()
        };
        let (dir, engine) = fresh_store("budget", &options);
        let value = vec![3u8; 32 << 10];
        for round in 0u32..256 {
            let mut batch = WriteBatch::new();
            let keyspace = format!("pg{}", round % 16);
            batch.put(&keyspace, round.to_be_bytes().to_vec(), value.clone());
            engine.write(batch).unwrap();
            let held = active_memtable_bytes(engine.store());
            // 8 MiB written in all; between checks the memtables may grow by a sixteenth
            // of the budget and one batch (plus fjall's per-item overhead).
            assert!(
                held <= budget + budget / 16 + 2 * value.len() as u64,
                "round {round}: active memtables hold {held} bytes"
            );
        }
        for round in 0u32..256 {
            let keyspace = format!("pg{}", round % 16);
            let stored = engine.get(&keyspace, &round.to_be_bytes()).unwrap();
            assert_eq!(stored.as_deref(), Some(&value[..]));
        }
        drop(engine);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_sync_follows_the_journal_to_the_file_fjall_rotated_to() {
        let options = Options {
            fjall_memtable_bytes: 4 << 20,
            ..Options::default()
        };
        let (dir, engine) = fresh_store("journal", &options);
        let mut batch = WriteBatch::new();
        batch.put("a", b"first".to_vec(), b"value".to_vec());
        engine.write(batch).unwrap();
        engine.sync().unwrap();
        let first = engine.store().journal.synced_id().unwrap();
        assert_eq!(newest_journal(&dir).unwrap(), Some(first));

        // fjall seals a journal once it passes 64 MB at a memtable flush. The values are
        // pseudo-random so that the journal's compression cannot shrink them.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut round = 0u32;
        let deadline = Instant::now() + Duration::from_secs(60);
        while newest_journal(&dir).unwrap() == Some(first) {
            assert!(Instant::now() < deadline, "fjall never rotated its journal");
            let value: Vec<u8> = (0..(1 << 20) / 8)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()
                })
                .collect();
            let mut batch = WriteBatch::new();
            batch.put("a", round.to_be_bytes().to_vec(), value);
            engine.write(batch).unwrap();
            round += 1;
        }
        let mut batch = WriteBatch::new();
        batch.put("a", b"last".to_vec(), b"value".to_vec());
        engine.write(batch).unwrap();
        engine.sync().unwrap();
        let newest = newest_journal(&dir).unwrap();
        assert!(newest > Some(first));
        assert_eq!(engine.store().journal.synced_id(), newest);
        drop(engine);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Superseded tree versions kept, over all keyspaces: each pins the sealed memtables
    /// (with their values) it references.
    fn kept_old_versions(store: &FjallStore) -> usize {
        let handles = store.handles.read().unwrap();
        handles
            .values()
            .map(|handle| handle.tree.version_free_list_len())
            .sum()
    }

    #[test]
    fn flushed_memtables_are_let_go_once_writes_stop() {
        let options = Options {
            fjall_write_buffer_bytes: 1 << 20,
            ..Options::default()
        };
        let (dir, engine) = fresh_store("idle", &options);
        let value = vec![5u8; 64 << 10];
        // 8 MiB over 8 keyspaces through a 1 MiB write buffer: many rotations and flushes.
        for round in 0u32..128 {
            let mut batch = WriteBatch::new();
            batch.put(
                &format!("pg{}", round % 8),
                round.to_be_bytes().to_vec(),
                value.clone(),
            );
            engine.write(batch).unwrap();
        }
        // The last write leaves versions behind once its flushes finish; a quiet store then
        // collects them, keeping at most the version of the one memtable it rotated.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut peak = 0;
        loop {
            let kept = kept_old_versions(engine.store());
            peak = peak.max(kept);
            if peak > 1 && kept <= 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "still {kept} superseded versions kept (peak {peak}) 20 s after the last write"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for round in 0u32..128 {
            let stored = engine
                .get(&format!("pg{}", round % 8), &round.to_be_bytes())
                .unwrap();
            assert_eq!(stored.as_deref(), Some(&value[..]));
        }
        drop(engine);
        // The release thread held a database handle: the directory reopens at once.
        let engine = StoreEngine::new(FjallStore::open(&dir, &options).unwrap());
        assert!(engine.get("pg0", &0u32.to_be_bytes()).unwrap().is_some());
        drop(engine);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Bytes keyspace `name` holds on disk once its memtables are all flushed.
    fn flushed_disk_space(store: &FjallStore, name: &str) -> u64 {
        let handle = store.keyspace(name, false).unwrap().unwrap();
        handle.rotate_memtable().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while handle.tree.sealed_memtable_count() > 0 {
            assert!(
                Instant::now() < deadline,
                "memtables of {name} never flushed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        handle.tree.disk_space()
    }

    #[test]
    fn compression_can_be_left_to_the_caller_and_either_setting_reads_the_other() {
        let value: Vec<u8> = (0..64 << 10).map(|index| (index % 251) as u8).collect();
        let written = 64 * value.len() as u64;
        let mut disk_sizes = Vec::new();
        for compression in [true, false] {
            let options = Options {
                fjall_compression: compression,
                // Small memtables: most values are flushed into blob files too.
                fjall_memtable_bytes: 1 << 20,
                ..Options::default()
            };
            let (dir, engine) = fresh_store(&format!("compression-{compression}"), &options);
            for round in 0u32..64 {
                let mut batch = WriteBatch::new();
                batch.put("a", round.to_be_bytes().to_vec(), value.clone());
                engine.write(batch).unwrap();
            }
            engine.sync().unwrap();
            disk_sizes.push(flushed_disk_space(engine.store(), "a"));
            drop(engine);
            let other = Options {
                fjall_compression: !compression,
                ..options
            };
            let engine = StoreEngine::new(FjallStore::open(&dir, &other).unwrap());
            for round in 0u32..64 {
                let stored = engine.get("a", &round.to_be_bytes()).unwrap();
                assert_eq!(stored.as_deref(), Some(&value[..]), "round {round}");
            }
            drop(engine);
            std::fs::remove_dir_all(&dir).unwrap();
        }
        let (compressed, plain) = (disk_sizes[0], disk_sizes[1]);
        assert!(
            plain >= written,
            "{plain} bytes on disk for {written} written"
        );
        assert!(
            compressed * 4 < plain,
            "{compressed} bytes on disk compressed, {plain} uncompressed"
        );
    }
}
