//! The fjall backend: each of our keyspaces is a fjall keyspace (its own LSM tree), and a
//! batch is one fjall cross-keyspace batch, which fjall's journal makes crash-atomic.
//!
//! Durability: batches are written to the journal's OS buffer on commit (so a killed process
//! loses nothing that was committed). With [`Options::fjall_wal`] (the default) `sync`
//! writes the batches since the last one to our own write-ahead log (see `fjall_wal`), and
//! only sometimes fdatasyncs the journal; without it, `sync` is one fdatasync of the active
//! journal. Either way the fdatasync runs outside fjall's journal lock so that commits go on
//! while it runs (see `fjall_journal`).
//! Values of at least [`Options::fjall_blob_threshold`] bytes are kept in blob files
//! (key-value separation), so compaction does not rewrite large values. Large values are
//! lz4-compressed in the journal and blob files unless [`Options::fjall_compression`] is off.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use fjall::{
    AbstractTree, CompressionType, Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions,
};

use crate::batch::Mutation;
use crate::engine::{LogReleaseHook, Scan, Store, Visitor};
use crate::fjall_checkpoint::{CheckpointSync, Checkpointer};
use crate::fjall_idle::{IdleRelease, StartError, MARKER_KEYSPACE};
use crate::fjall_journal::JournalSync;
use crate::fjall_wal::{Wal, LEGACY_APPLIED_KEY, LEGACY_APPLIED_KEYSPACE};
use crate::keys::{FIRST_USER_KEY, RESERVED_KEY};
use crate::{Backend, Error, KeyRange, Options, Result};

pub(crate) struct FjallStore {
    path: PathBuf,
    db: Database,
    /// Open keyspace handles; fjall's own lookup takes a global write lock, ours a read lock.
    /// Looked up for every key a batch writes: hashbrown's foldhash, not SipHash (the
    /// names are the store's own).
    handles: RwLock<hashbrown::HashMap<String, Keyspace>>,
    blob_threshold: Option<u32>,
    blob_compression: CompressionType,
    memtable_bytes: u64,
    write_buffer_bytes: u64,
    /// The ring size of a new write-ahead log.
    wal_bytes: u64,
    /// Bytes applied since the memtables were last measured against the budget.
    unchecked_bytes: AtomicU64,
    journal: Arc<JournalSync>,
    /// What a checkpoint of the log makes durable: the journal, and log-only puts' data.
    checkpoint_sync: Arc<CheckpointSync>,
    /// Our own write-ahead log, when batches are made durable through it (see `fjall_wal`).
    wal: Option<Arc<Wal>>,
    /// Runs the log's early checkpoints (with the log).
    checkpointer: Option<Checkpointer>,
    /// The number the next batch gets in the log (batches are applied one at a time).
    next_record: AtomicU64,
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

/// fjall keyspaces of the backend's own, never listed (their names are not valid keyspace
/// names for callers).
fn is_internal_keyspace(name: &str) -> bool {
    name == MARKER_KEYSPACE || name == LEGACY_APPLIED_KEYSPACE
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
        let journal = Arc::new(JournalSync::new(path));
        let mut store = Self {
            path: path.to_owned(),
            db,
            handles: RwLock::new(hashbrown::HashMap::new()),
            blob_threshold: options.fjall_blob_threshold,
            blob_compression: compression_of(options),
            memtable_bytes: options.fjall_memtable_bytes,
            write_buffer_bytes: options.fjall_write_buffer_bytes,
            wal_bytes: options.fjall_wal_bytes,
            unchecked_bytes: AtomicU64::new(0),
            checkpoint_sync: Arc::new(CheckpointSync::new(Arc::clone(&journal))),
            journal,
            wal: None,
            checkpointer: None,
            next_record: AtomicU64::new(1),
            idle_release,
        };
        let log = path.join(crate::fjall_wal::WAL_FILE);
        if options.fjall_wal {
            store.start_wal()?;
        } else if log.exists() {
            // Opened without the log after a run with it: what the log holds is replayed
            // and made durable in fjall before the log goes.
            store.start_wal()?;
            store.checkpointer = None;
            store.wal = None;
            std::fs::remove_file(&log)
                .map_err(|source| Error::io("remove the write-ahead log", &log, source))?;
        }
        Ok(store)
    }

    /// Opens the write-ahead log and replays the batches it holds that fjall lost, then
    /// checkpoints so the ring starts empty and every replayed batch is durable in fjall.
    ///
    /// What fjall lost is decided per keyspace: after a crash each keyspace holds a prefix
    /// of its own history (its flushed tables plus the part of the journal that reached
    /// the disk), but keyspaces flush independently and fjall does not sync its journal
    /// before a flush, so one keyspace may hold batches that another lost. Each keyspace
    /// therefore keeps the number of the last logged batch it holds, and a logged batch's
    /// writes to a keyspace are replayed only when that keyspace lacks them.
    fn start_wal(&mut self) -> Result<()> {
        let (wal, records) = Wal::open(&self.path, self.wal_bytes)
            .map_err(|source| Error::io("open the write-ahead log in", &self.path, source))?;
        // Stores written before each keyspace kept its own number have one for all.
        let legacy = self.legacy_applied_record()?;
        let mut applied: HashMap<String, u64> = HashMap::new();
        let mut last = legacy;
        let mut replayed = 0usize;
        for record in records {
            last = last.max(record.number);
            let mut missing = Vec::new();
            for mutation in record.mutations {
                let held = match applied.get(&mutation.keyspace) {
                    Some(held) => *held,
                    None => {
                        let held = self.applied_record(&mutation.keyspace)?.unwrap_or(legacy);
                        applied.insert(mutation.keyspace.clone(), held);
                        held
                    }
                };
                if record.number > held {
                    missing.push(mutation);
                }
            }
            if !missing.is_empty() {
                self.commit(missing, Some(record.number))?;
                replayed += 1;
            }
        }
        if replayed > 0 {
            tracing::info!(
                path = %self.path.display(),
                replayed,
                "replayed batches from the write-ahead log that the journal had lost"
            );
        }
        wal.checkpoint_now(|| self.journal.sync())
            .map_err(|source| Error::io("checkpoint the write-ahead log in", &self.path, source))?;
        // Numbers keep growing across restarts, so the next one must pass every keyspace's.
        for name in self.db.list_keyspace_names() {
            if is_internal_keyspace(&name) {
                continue;
            }
            if let Some(held) = self.applied_record(&name)? {
                last = last.max(held);
            }
        }
        self.next_record.store(last + 1, Ordering::Release);
        let wal = Arc::new(wal);
        let checkpointer = Checkpointer::start(
            Arc::clone(&wal),
            Arc::clone(&self.checkpoint_sync),
            &self.path,
        )
        .map_err(|source| Error::io("start the checkpoint thread for", &self.path, source))?;
        self.checkpointer = Some(checkpointer);
        self.wal = Some(wal);
        Ok(())
    }

    /// The number of the last logged batch `keyspace` holds (`None`: it holds none).
    fn applied_record(&self, keyspace: &str) -> Result<Option<u64>> {
        let Some(handle) = self.keyspace(keyspace, false)? else {
            return Ok(None);
        };
        let value = handle.get(RESERVED_KEY).map_err(storage_error)?;
        Ok(value
            .and_then(|bytes| <[u8; 8]>::try_from(&bytes[..]).ok())
            .map(u64::from_be_bytes))
    }

    /// The one number that stores of the first log format kept for all keyspaces (0: none).
    fn legacy_applied_record(&self) -> Result<u64> {
        let Some(handle) = self.keyspace(LEGACY_APPLIED_KEYSPACE, false)? else {
            return Ok(0);
        };
        let value = handle.get(LEGACY_APPLIED_KEY).map_err(storage_error)?;
        Ok(value
            .and_then(|bytes| <[u8; 8]>::try_from(&bytes[..]).ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Commits `mutations` as one fjall batch, with `record` (its number in the log) stored
    /// atomically in every keyspace it writes; returns the bytes written.
    fn commit(&self, mutations: Vec<Mutation>, record: Option<u64>) -> Result<u64> {
        let mut batch = self.db.batch();
        let mut written = 0u64;
        // Batches touch one keyspace or a few: a list beats a set.
        let mut touched: Vec<(String, Keyspace)> = Vec::new();
        for mutation in mutations {
            written += (mutation.key.len() + mutation.value.as_ref().map_or(0, Vec::len)) as u64;
            // A put creates its keyspace; deleting from a missing keyspace changes nothing.
            let creates = mutation.value.is_some();
            let Some(keyspace) = self.keyspace(&mutation.keyspace, creates)? else {
                continue;
            };
            if record.is_some() && !touched.iter().any(|(name, _)| *name == mutation.keyspace) {
                touched.push((mutation.keyspace, keyspace.clone()));
            }
            match mutation.value {
                Some(value) => batch.insert(&keyspace, mutation.key, value),
                None => batch.remove(&keyspace, mutation.key),
            }
        }
        if let Some(number) = record {
            for (_, keyspace) in &touched {
                batch.insert(keyspace, RESERVED_KEY, number.to_be_bytes());
            }
        }
        batch.commit().map_err(storage_error)?;
        Ok(written)
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
        let written = match &self.wal {
            Some(wal) => {
                // The engine applies one batch at a time, so numbers follow commit order.
                let number = self.next_record.fetch_add(1, Ordering::AcqRel);
                let record = Wal::record(number, &mutations);
                let mut mutations = mutations;
                if self.checkpoint_sync.keeps_log_only() {
                    mutations.retain(|mutation| !mutation.log_only);
                }
                let written = self.commit(mutations, Some(number))?;
                wal.logged(record);
                written
            }
            None => self.commit(mutations, None)?,
        };
        self.idle_release.wrote(written);
        self.enforce_write_buffer(written)
    }

    fn sync_to_disk(&self) -> Result<()> {
        match &self.wal {
            Some(wal) => {
                wal.sync(|| self.checkpoint_sync.sync()).map_err(|source| {
                    Error::io("sync the write-ahead log of", &self.path, source)
                })?;
                if let Some(checkpointer) = &self.checkpointer {
                    checkpointer.after_sync();
                }
                Ok(())
            }
            None => self
                .journal
                .sync()
                .map_err(|source| Error::io("fdatasync the journal of", &self.path, source)),
        }
    }

    fn on_log_release(&self, hook: LogReleaseHook) -> bool {
        self.wal.is_some() && self.checkpoint_sync.set_release_hook(hook)
    }

    fn keyspaces(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for name in self.db.list_keyspace_names() {
            let name: &str = &name;
            if is_internal_keyspace(name) {
                continue;
            }
            if let Some(handle) = self.keyspace(name, false)? {
                // The reserved key alone (left by deleting every key) is no content.
                if handle.range(FIRST_USER_KEY..).next().is_some() {
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

    #[test]
    fn batches_synced_through_the_log_come_back_when_fjall_lost_them() {
        let (dir, engine) = fresh_store("wal-source", &Options::default());
        let mut expected = Vec::new();
        for round in 0u32..300 {
            let mut batch = WriteBatch::new();
            let value = vec![(round % 251) as u8; 100 + round as usize * 13];
            batch.put("data", round.to_be_bytes().to_vec(), value.clone());
            if round % 3 == 0 && round > 0 {
                batch.delete("data", (round - 1).to_be_bytes().to_vec());
                expected.retain(|(key, _)| *key != round - 1);
            }
            engine.write(batch).unwrap();
            expected.push((round, value));
            if round % 7 == 0 {
                engine.sync().unwrap();
            }
        }
        engine.sync().unwrap();
        // A database that lost every batch its journal held, as after a power cut before
        // fjall's journal reached the disk: only the log survives.
        let (lost, empty) = fresh_store("wal-replay", &Options::default());
        drop(empty);
        std::fs::copy(
            dir.join(crate::fjall_wal::WAL_FILE),
            lost.join(crate::fjall_wal::WAL_FILE),
        )
        .unwrap();
        let engine = StoreEngine::new(FjallStore::open(&lost, &Options::default()).unwrap());
        let stored: Vec<(u32, Vec<u8>)> = engine
            .scan("data", KeyRange::all())
            .unwrap()
            .map(|entry| {
                let (key, value) = entry.unwrap();
                (u32::from_be_bytes(key[..].try_into().unwrap()), value)
            })
            .collect();
        assert_eq!(stored.len(), expected.len());
        assert!(stored == expected, "the replayed data differs");
        assert_eq!(
            engine.keyspaces().unwrap(),
            ["data"],
            "the log's own keyspace is hidden"
        );
        // Replayed once: a second open finds everything in fjall and the ring empty.
        drop(engine);
        let engine = StoreEngine::new(FjallStore::open(&lost, &Options::default()).unwrap());
        assert_eq!(
            engine.scan("data", KeyRange::all()).unwrap().count(),
            expected.len()
        );
        assert_eq!(engine.store().applied_record("data").unwrap(), Some(300));
        // Opened without the log: it is checkpointed and removed, the data stays.
        drop(engine);
        let without = Options {
            fjall_wal: false,
            ..Options::default()
        };
        let engine = StoreEngine::new(FjallStore::open(&lost, &without).unwrap());
        assert_eq!(
            engine.scan("data", KeyRange::all()).unwrap().count(),
            expected.len()
        );
        assert!(!lost.join(crate::fjall_wal::WAL_FILE).exists());
    }

    /// Copies a closed store's folder without fjall's journal files: what a power cut
    /// leaves when the journal never reached the disk but flushed tables did.
    fn copy_without_journal(from: &Path, to: &Path) {
        let _ = std::fs::remove_dir_all(to);
        let mut pending = vec![(from.to_owned(), to.to_owned())];
        while let Some((source, target)) = pending.pop() {
            std::fs::create_dir_all(&target).unwrap();
            for entry in std::fs::read_dir(&source).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name();
                if entry.file_type().unwrap().is_dir() {
                    pending.push((entry.path(), target.join(&name)));
                } else if !name.to_string_lossy().ends_with(".jnl") {
                    std::fs::copy(entry.path(), target.join(&name)).unwrap();
                }
            }
        }
    }

    #[test]
    fn each_keyspace_gets_back_exactly_the_logged_writes_it_lost() {
        let (dir, engine) = fresh_store("wal-per-keyspace", &Options::default());
        let put = |keyspace: &str, key: &[u8], value: &[u8]| {
            let mut batch = WriteBatch::new();
            batch.put(keyspace, key.to_vec(), value.to_vec());
            engine.write(batch).unwrap();
        };
        put("early", b"k", b"old");
        put("late", b"k", b"lost");
        put("early", b"k", b"new");
        put("early", b"gone", b"x");
        let mut batch = WriteBatch::new();
        batch.delete("early", b"gone".to_vec());
        engine.write(batch).unwrap();
        engine.sync().unwrap();
        // "early" reaches a table holding every batch above, "late" stays in the journal.
        let early = engine.store().keyspace("early", false).unwrap().unwrap();
        early.rotate_memtable().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while early.tree.sealed_memtable_count() > 0 {
            assert!(Instant::now() < deadline, "the memtable never flushed");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(early);
        drop(engine);
        let cut = std::env::temp_dir().join(format!("kv-fjall-wal-cut-{}", std::process::id()));
        copy_without_journal(&dir, &cut);
        let engine = StoreEngine::new(FjallStore::open(&cut, &Options::default()).unwrap());
        // The log replays the batch "late" lost, and nothing over what "early" holds (a
        // replay of the first batch there would bring back "old").
        assert_eq!(
            engine.get("late", b"k").unwrap().as_deref(),
            Some(&b"lost"[..])
        );
        assert_eq!(
            engine.get("early", b"k").unwrap().as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(engine.get("early", b"gone").unwrap(), None);
        assert_eq!(engine.keyspaces().unwrap(), ["early", "late"]);
        drop(engine);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&cut).unwrap();
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

    /// Memtables sealed and not yet flushed, over all keyspaces.
    fn sealed_memtables(store: &FjallStore) -> usize {
        let handles = store.handles.read().unwrap();
        handles
            .values()
            .map(|handle| handle.tree.sealed_memtable_count())
            .sum()
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
        // The last write leaves versions behind once its flushes finish (how many depends
        // on how far fjall's own collection got during the writes, so the test does not
        // insist on seeing them); a quiet store then collects them, keeping at most the
        // version of the one memtable it rotated.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut peak = 0;
        loop {
            let kept = kept_old_versions(engine.store());
            peak = peak.max(kept);
            if kept <= 1 && sealed_memtables(engine.store()) == 0 {
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

    #[test]
    fn log_only_puts_stay_out_of_fjall_and_come_back_from_the_log_after_a_crash() {
        let (dir, engine) = fresh_store("log-only", &Options::default());
        let hook_calls = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&hook_calls);
        assert!(engine.on_log_release(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })));
        assert!(
            !engine.on_log_release(Box::new(|| Ok(()))),
            "a second hook is refused"
        );
        let mut batch = WriteBatch::new();
        batch
            .put("objects", b"ref".to_vec(), b"at 4096".to_vec())
            .put_log_only("deferred", b"4096".to_vec(), vec![7u8; 5000]);
        engine.write_sync(batch).unwrap();
        assert_eq!(
            engine.get("objects", b"ref").unwrap().as_deref(),
            Some(&b"at 4096"[..])
        );
        assert_eq!(
            engine.get("deferred", b"4096").unwrap(),
            None,
            "never stored in fjall"
        );
        assert_eq!(engine.keyspaces().unwrap(), ["objects"]);
        assert_eq!(hook_calls.load(Ordering::SeqCst), 0, "no checkpoint ran");
        // Closed without a checkpoint, as by a crash: the log still holds the frame.
        drop(engine);
        let engine = StoreEngine::new(FjallStore::open(&dir, &Options::default()).unwrap());
        assert_eq!(
            engine.get("deferred", b"4096").unwrap(),
            Some(vec![7u8; 5000]),
            "replayed as an ordinary put"
        );
        assert_eq!(
            engine.get("objects", b"ref").unwrap().as_deref(),
            Some(&b"at 4096"[..])
        );
        drop(engine);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_log_keeps_log_only_puts_while_the_release_hook_fails() {
        let options = Options {
            fjall_wal_bytes: 1 << 20,
            ..Options::default()
        };
        let (dir, engine) = fresh_store("log-only-hook-fails", &options);
        assert!(engine.on_log_release(Box::new(|| Err(std::io::Error::other("disk gone")))));
        // 1 MiB of ring holds about 120 of these frames; the checkpoints the ring needs
        // before then (early ones, then the one a full ring forces) all fail.
        let mut synced = Vec::new();
        let mut failure = None;
        for round in 0u32..400 {
            let mut batch = WriteBatch::new();
            batch.put_log_only(
                "deferred",
                round.to_be_bytes().to_vec(),
                vec![round as u8; 6000],
            );
            engine.write(batch).unwrap();
            match engine.sync() {
                Ok(()) => synced.push(round),
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let failure = failure.expect("a full ring must checkpoint, and the hook fails");
        assert!(failure.to_string().contains("disk gone"), "{failure}");
        assert!(
            synced.len() > 60,
            "only {} syncs before the ring filled",
            synced.len()
        );
        drop(engine);
        let engine = StoreEngine::new(FjallStore::open(&dir, &options).unwrap());
        for round in synced {
            assert_eq!(
                engine.get("deferred", &round.to_be_bytes()).unwrap(),
                Some(vec![round as u8; 6000]),
                "log-only put {round} was dropped from the log"
            );
        }
        drop(engine);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
