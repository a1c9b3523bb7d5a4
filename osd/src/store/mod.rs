//! The OSD's object store (DESIGN.md §5): objects of many PGs on one `kv` engine, with
//! chunked and checksummed data, xattrs, omap, the PG log and PG info, atomic compound
//! transactions and group-committed durability.
//!
//! # Layout
//! One keyspace per PG plus a superblock keyspace; see [`keys`] for every key. Object data
//! is stored in [`CHUNK_SIZE`] (64 KiB) chunks, lz4-compressed where that pays (see
//! [`chunk`]), each with an xxh3-64 checksum verified on every read (a mismatch is
//! [`StoreError::Corruption`], naming the object and chunk). When the store has a block
//! file ([`ObjectStore::open_with_blocks`], as the OSD opens it), chunks written whole whose
//! stored form is at least [`StoreConfig::block_min_bytes`] are written there instead, once,
//! with direct I/O, before the transaction is applied ([`ObjectStore::stage`]); the engine
//! keeps a checksummed reference and a block record (see `blocks`). Large incompressible
//! writes then cost one disk write per byte instead of two (the engine's journal, then its
//! blob files), and no page-cache copies.
//! Other chunks whose stored form is at least [`StoreConfig::deferred_min_bytes`] are
//! *deferred* (see `deferred`): written to the block file through the page cache, their
//! payload kept durable in the engine's log until its next checkpoint flushes the block
//! file, so small incompressible writes never reach the engine's tables either. The block
//! file is read with direct I/O, each run of adjacent chunks in one read.
//! Removing a PG deletes its keyspace's keys in bounded batches, object by object, reading
//! only metadata; the first step deletes the PG's info key, so a removal cut short by a
//! crash is finished by the next [`ObjectStore::open`].
//!
//! # Transactions and durability
//! [`ObjectStore::commit`] takes a [`Transaction`] (sub-ops on one object, with guards),
//! checks it, runs it against the object's stored state, and writes the object's changes,
//! the PG log entry and the PG info in ONE engine batch; a failing
//! sub-op writes nothing. It returns once the batch is durable: commits share syncs through
//! the engine's group commit, so N concurrent committers cost far fewer than N fdatasyncs.
//! A resent request (same [`ReqId`], still in the log: the PG's in-memory index of the
//! log's request ids says so) is not applied again; its commit returns the original
//! version, once that is durable.
//!
//! # Concurrency contract
//! - Every method takes `&self`; the store is `Send + Sync` and meant to be shared.
//! - Commits to one PG are serialized inside the store (each takes the PG's lock while it
//!   assigns the next version, plans and writes its batch; the sync happens after the lock
//!   is released, so a PG's committers still share syncs). Commits to different PGs run in
//!   parallel. No interleaving of calls can corrupt the store.
//! - The caller (the PG) must order the ops on one object itself: two concurrent commits to
//!   the same object are applied in the order they get the PG lock, which the caller does not
//!   control, and a guard like `assert_version` is only meaningful if the caller knows what
//!   ran before.
//! - Reads take no lock. A read sees every commit that returned before it started; it may
//!   also see a commit that is applied but not yet durable (not yet acknowledged), and a read
//!   racing a commit to the same object may see parts of both — the PG must not run a read
//!   of an object concurrently with a write to it if it needs more.
//!
//! # Memory
//! The store caches object metadata up to [`StoreConfig::meta_cache_bytes`]; data is never
//! cached here (the engine has its own block cache, `kv::Options::cache_bytes`). A commit
//! holds its transaction's data plus at most two chunks read for read-modify-write; a read
//! holds the bytes it returns.

mod blocks;
mod cache;
mod chunk;
mod codec;
mod config;
mod deferred;
mod error;
pub mod keys;
mod object;
mod pglog;
mod recovery;
mod stage;
mod superblock;
mod txn;
mod types;
mod upgrade;

use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::SystemTime;

use clustermap::{OsdId, PgId, Uuid};
use kv::{Engine, KeyRange, WriteBatch};

pub use chunk::Compression;
pub use config::StoreConfig;
pub use error::{Result, StoreError};
pub use keys::CHUNK_SIZE;
pub use object::{ObjectDigest, ObjectPage, OmapPage};
pub use recovery::ObjectState;
pub use stage::Staged;
pub use superblock::{Superblock, FORMAT_VERSION, OLDEST_UPGRADABLE_FORMAT};
pub use txn::{Transaction, WriteOp};
pub use types::{Eversion, LogEntry, LogOp, ObjectId, ObjectInfo, PgInfo, PgStats, ReqId};

use blocks::{BlockFile, Extent};
use cache::MetaCache;
use keys::{BLOCK_TAG, DATA_TAG, INFO_KEY, OBJECT_TAG, OMAP_TAG, XATTR_TAG};
use pglog::ReqIdIndex;
use txn::{object_section, Plan, PlanContext};

/// Objects removed per batch when a PG is deleted (each may take up to a few thousand keys).
const PURGE_OBJECTS_PER_BATCH: usize = 64;
/// Other keys (log, request ids) removed per batch when a PG is deleted.
const PURGE_KEYS_PER_BATCH: usize = 1024;

/// The object store of one OSD. See the module documentation for its guarantees.
#[derive(Debug)]
pub struct ObjectStore {
    engine: Arc<dyn Engine>,
    config: StoreConfig,
    superblock: Mutex<Superblock>,
    pgs: RwLock<PgTable>,
    cache: MetaCache,
    /// Where large chunks go; without one, every chunk stays in the engine.
    blocks: Option<Arc<BlockFile>>,
    /// The block file, when the engine keeps deferred writes' data in its log.
    deferred: Option<Arc<BlockFile>>,
}

#[derive(Debug, Default)]
struct PgTable {
    live: HashMap<PgId, Arc<PgHandle>>,
    /// PGs whose removal has started but not finished: they cannot be created again yet.
    removing: HashSet<PgId>,
}

#[derive(Debug)]
struct PgHandle {
    keyspace: String,
    state: Mutex<PgState>,
}

#[derive(Debug)]
struct PgState {
    /// Equal to the stored info key after every commit.
    info: PgInfo,
    /// Set when the PG was removed while a caller still held its handle.
    removed: bool,
    /// The request ids of the log's entries, matching the stored log after every commit.
    reqids: ReqIdIndex,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section in this module leaves its data consistent before anything that
    // can panic, so a poisoned lock still guards valid state.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ObjectStore {
    /// Makes a new object store on an empty engine, for the OSD with `osd_uuid`, and opens it.
    /// Fails with [`StoreError::AlreadyFormatted`] if the engine holds any data.
    pub fn mkfs(engine: Arc<dyn Engine>, osd_uuid: Uuid, config: StoreConfig) -> Result<Self> {
        Self::mkfs_with_blocks(engine, osd_uuid, config, None)
    }

    /// [`ObjectStore::mkfs`] for a store whose large chunks go to the block file at
    /// `block_file` (created if missing).
    pub fn mkfs_with_blocks(
        engine: Arc<dyn Engine>,
        osd_uuid: Uuid,
        config: StoreConfig,
        block_file: Option<&Path>,
    ) -> Result<Self> {
        config.validate()?;
        if osd_uuid.is_nil() {
            return Err(StoreError::invalid("osd uuid", "it must not be nil"));
        }
        if !engine.keyspaces()?.is_empty() {
            return Err(StoreError::AlreadyFormatted);
        }
        let mut batch = WriteBatch::new();
        batch.put(
            keys::SUPER_KEYSPACE,
            keys::SUPERBLOCK_KEY,
            Superblock::new(osd_uuid).encode(),
        );
        engine.write_sync(batch)?;
        Self::open_with_blocks(engine, config, block_file)
    }

    /// Opens the object store on `engine`: checks the superblock, loads every PG's info and
    /// finishes PG removals that a crash cut short.
    pub fn open(engine: Arc<dyn Engine>, config: StoreConfig) -> Result<Self> {
        Self::open_with_blocks(engine, config, None)
    }

    /// [`ObjectStore::open`] for a store whose large chunks go to the block file at
    /// `block_file`. A store whose records reference a block file must be opened with it.
    pub fn open_with_blocks(
        engine: Arc<dyn Engine>,
        config: StoreConfig,
        block_file: Option<&Path>,
    ) -> Result<Self> {
        config.validate()?;
        let superblock = match engine.get(keys::SUPER_KEYSPACE, keys::SUPERBLOCK_KEY)? {
            Some(bytes) => Superblock::decode(&bytes)?,
            None => return Err(StoreError::NotFormatted),
        };
        let superblock = upgrade::upgrade(engine.as_ref(), superblock)?;
        let mut store = Self {
            cache: MetaCache::new(config.meta_cache_bytes),
            engine,
            config,
            superblock: Mutex::new(superblock),
            pgs: RwLock::new(PgTable::default()),
            blocks: None,
            deferred: None,
        };
        let mut live = HashMap::new();
        for keyspace in store.engine.keyspaces()? {
            let Some(pg) = keys::pg_of_keyspace(&keyspace) else {
                continue;
            };
            match store.engine.get(&keyspace, INFO_KEY)? {
                Some(bytes) => {
                    let info = PgInfo::decode(&bytes).map_err(|reason| {
                        StoreError::corrupt_record(format!("info of pg {pg}"), reason)
                    })?;
                    if info.pgid != pg {
                        return Err(StoreError::corrupt_record(
                            format!("info of pg {pg}"),
                            "it names another pg",
                        ));
                    }
                    let (info, reqids) = pglog::open(store.engine.as_ref(), &keyspace, info)?;
                    live.insert(pg, Arc::new(PgHandle::new(keyspace, info, reqids)));
                }
                // No info: a removal was cut short. Finish it.
                None => store.purge_keyspace(&keyspace)?,
            }
        }
        store.engine.sync()?;
        let mut used = Vec::new();
        for handle in live.values() {
            used.extend(store.block_records(&handle.keyspace)?);
        }
        store.blocks = match block_file {
            Some(path) => Some(Arc::new(BlockFile::open(path, used)?)),
            None if used.is_empty() => None,
            None => {
                return Err(StoreError::Incompatible {
                    reason: format!(
                        "{} chunks are held in a block file, and none was given",
                        used.len()
                    ),
                })
            }
        };
        if let Some(blocks) = &store.blocks {
            deferred::replay(store.engine.as_ref(), blocks)?;
            let flushed = Arc::clone(blocks);
            if store
                .engine
                .on_log_release(Box::new(move || flushed.flush()))
            {
                store.deferred = Some(Arc::clone(blocks));
            }
        }
        store.write_table().live = live;
        Ok(store)
    }

    /// Every block file range a PG's records reference.
    fn block_records(&self, keyspace: &str) -> Result<Vec<Extent>> {
        let mut extents = Vec::new();
        for item in self.engine.scan(keyspace, KeyRange::prefix(&[BLOCK_TAG]))? {
            let (key, value) = item?;
            let extent = keys::decode_extent(&value).ok_or_else(|| {
                StoreError::corrupt_record(
                    format!("block record {key:02x?} in {keyspace}"),
                    "it is not an aligned range",
                )
            })?;
            extents.push(extent);
        }
        Ok(extents)
    }

    /// Bytes of the block file referenced, and its length (`None` without one).
    pub fn block_usage(&self) -> Option<(u64, u64)> {
        self.blocks.as_ref().map(|blocks| blocks.usage())
    }

    /// Held while a read resolves block references and reads them, so the ranges are not
    /// reused under it.
    fn block_read_guard(&self) -> Option<std::sync::RwLockReadGuard<'_, ()>> {
        self.blocks.as_ref().map(|blocks| blocks.read_guard())
    }

    /// The superblock (format, identity).
    pub fn superblock(&self) -> Superblock {
        *lock(&self.superblock)
    }

    /// Records the id the monitors gave this OSD (durably).
    pub fn set_osd_id(&self, osd_id: OsdId) -> Result<()> {
        let mut superblock = lock(&self.superblock);
        let mut updated = *superblock;
        updated.osd_id = Some(osd_id);
        let mut batch = WriteBatch::new();
        batch.put(keys::SUPER_KEYSPACE, keys::SUPERBLOCK_KEY, updated.encode());
        self.engine.write_sync(batch)?;
        *superblock = updated;
        Ok(())
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The engine underneath (for statistics such as `syncs_performed`).
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    fn read_table(&self) -> std::sync::RwLockReadGuard<'_, PgTable> {
        self.pgs.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_table(&self) -> std::sync::RwLockWriteGuard<'_, PgTable> {
        self.pgs.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn handle(&self, pg: PgId) -> Result<Arc<PgHandle>> {
        self.read_table()
            .live
            .get(&pg)
            .cloned()
            .ok_or(StoreError::PgNotFound { pg })
    }

    /// The PGs in the store, sorted.
    pub fn pgs(&self) -> Vec<PgId> {
        let mut pgs: Vec<PgId> = self.read_table().live.keys().copied().collect();
        pgs.sort();
        pgs
    }

    /// A PG's info (log bounds, statistics).
    pub fn pg_info(&self, pg: PgId) -> Result<PgInfo> {
        let handle = self.handle(pg)?;
        let state = lock(&handle.state);
        if state.removed {
            return Err(StoreError::PgNotFound { pg });
        }
        Ok(state.info)
    }

    /// Creates an empty PG (durably). Fails with [`StoreError::PgExists`] if it exists or
    /// its removal has not finished.
    pub fn create_pg(&self, pg: PgId) -> Result<()> {
        let mut table = self.write_table();
        if table.live.contains_key(&pg) || table.removing.contains(&pg) {
            return Err(StoreError::PgExists { pg });
        }
        let keyspace = keys::pg_keyspace(pg);
        let info = PgInfo::new(pg);
        let mut batch = WriteBatch::new();
        batch.put(&keyspace, INFO_KEY, info.encode());
        self.engine.write_sync(batch)?;
        // Readers of an earlier PG with this id may have cached its objects.
        self.cache.clear();
        table.live.insert(
            pg,
            Arc::new(PgHandle::new(keyspace, info, ReqIdIndex::default())),
        );
        Ok(())
    }

    /// Removes a PG with all its objects, log and info; returns once that is durable.
    /// Commits still running on the PG finish first; later ones fail with `PgNotFound`.
    pub fn remove_pg(&self, pg: PgId) -> Result<()> {
        let handle = {
            let mut table = self.write_table();
            let handle = table
                .live
                .remove(&pg)
                .ok_or(StoreError::PgNotFound { pg })?;
            table.removing.insert(pg);
            handle
        };
        let freed = self.block_records(&handle.keyspace)?;
        {
            let mut state = lock(&handle.state);
            state.removed = true;
            let mut batch = WriteBatch::new();
            batch.delete(&handle.keyspace, INFO_KEY);
            // From here on a crash leaves a keyspace without info, which open() purges.
            self.engine.write(batch)?;
        }
        self.purge_keyspace(&handle.keyspace)?;
        if let Some(blocks) = &self.blocks {
            blocks.free_after_sync(freed);
        }
        self.sync()?;
        self.cache.clear();
        // Only a finished removal lets the PG be created again; after a failure the engine
        // is poisoned anyway and the next open finishes the job.
        self.write_table().removing.remove(&pg);
        Ok(())
    }

    /// Deletes every key of a PG keyspace in bounded batches (not synced).
    fn purge_keyspace(&self, keyspace: &str) -> Result<()> {
        let objects = KeyRange::prefix(&[OBJECT_TAG]);
        let objects_end = objects.end().map(<[u8]>::to_vec);
        let mut start = objects.start().map(<[u8]>::to_vec);
        loop {
            // Metadata keys only name the objects; their data is deleted by key range, so
            // the 64 KiB chunks are never read.
            let range = KeyRange::new(start.clone(), objects_end.clone());
            let metas = first_keys(
                self.engine.as_ref(),
                keyspace,
                range,
                PURGE_OBJECTS_PER_BATCH,
            )?;
            let Some(last) = metas.last().cloned() else {
                break;
            };
            let mut batch = WriteBatch::new();
            for meta in metas {
                let oid = &meta[1..];
                for tag in [DATA_TAG, BLOCK_TAG, XATTR_TAG, OMAP_TAG] {
                    batch.delete_range(keyspace, object_section(tag, oid, b""));
                }
                batch.delete(keyspace, meta);
            }
            self.engine.write(batch)?;
            start = Bound::Excluded(last);
        }
        let mut start = Bound::Unbounded;
        loop {
            let range = KeyRange::new(start.clone(), Bound::Unbounded);
            let rest = first_keys(self.engine.as_ref(), keyspace, range, PURGE_KEYS_PER_BATCH)?;
            let Some(last) = rest.last().cloned() else {
                break;
            };
            let mut batch = WriteBatch::new();
            for key in rest {
                batch.delete(keyspace, key);
            }
            self.engine.write(batch)?;
            start = Bound::Excluded(last);
        }
        Ok(())
    }

    /// Applies `txn` atomically and durably; returns the version it was committed at (or,
    /// for a resent request still in the log, the version of the first commit).
    ///
    /// On any error nothing was written: guards ([`StoreError::ObjectNotFound`],
    /// [`StoreError::ObjectExists`], [`StoreError::VersionMismatch`], ...), bad input,
    /// [`StoreError::Corruption`] of a chunk that a partial write had to read. An engine
    /// failure during the sync leaves the batch applied but maybe not durable, and poisons
    /// the engine (see `kv::Error::Poisoned`).
    pub fn commit(&self, txn: Transaction) -> Result<Eversion> {
        let version = self.apply(txn)?;
        // Outside the PG lock, so the PG's next committers can write while this one syncs
        // and share the following sync. A duplicate's original is covered too: its write
        // returned before it released the lock we took.
        self.sync()?;
        Ok(version)
    }

    /// Checks what of `txn` does not depend on stored state (names, sizes, offsets): the
    /// errors [`ObjectStore::apply`] would give before it looks at the object.
    pub fn check(&self, txn: &Transaction) -> Result<()> {
        txn.validate(&self.config)
    }

    /// [`ObjectStore::commit`] without the final sync: the transaction is applied (visible
    /// to reads, ordered after every earlier apply to the PG) but not yet durable. The
    /// caller must call [`ObjectStore::sync`] before it acknowledges the write. The OSD uses
    /// this to order writes under its own PG lock and sync outside it (group commit).
    pub fn apply(&self, txn: Transaction) -> Result<Eversion> {
        // Checked before staging, so a transaction that will be refused writes no blocks.
        txn.validate(&self.config)?;
        let staged = self.stage(txn.ops())?;
        self.apply_valid(txn, staged)
    }

    /// Writes the chunks that `ops` write whole and that are large enough to the block file,
    /// durably, before the transaction is applied: the slow part of a large write, done
    /// outside the PG's lock. Nothing is staged without a block file.
    pub fn stage(&self, ops: &[WriteOp]) -> Result<Staged> {
        match &self.blocks {
            Some(blocks) => stage::stage(blocks, ops, &self.config),
            None => Ok(Staged::default()),
        }
    }

    /// [`ObjectStore::apply`] with chunks [`ObjectStore::stage`]d from the same sub-ops.
    pub fn apply_staged(&self, txn: Transaction, staged: Staged) -> Result<Eversion> {
        txn.validate(&self.config)?;
        self.apply_valid(txn, staged)
    }

    /// [`ObjectStore::apply_staged`] for a transaction that passed its static checks.
    fn apply_valid(&self, txn: Transaction, mut staged: Staged) -> Result<Eversion> {
        let handle = self.handle(txn.pg())?;
        let oid = keys::object_key(txn.object());
        let version = {
            let mut state = lock(&handle.state);
            if state.removed {
                return Err(StoreError::PgNotFound { pg: txn.pg() });
            }
            self.apply_locked(&handle, &mut state, &txn, &oid, &mut staged)?
        };
        Ok(version)
    }

    /// Makes everything applied so far durable (shared with concurrent callers).
    pub fn sync(&self) -> Result<()> {
        let ticket = self.blocks.as_ref().map(|blocks| blocks.sync_ticket());
        self.engine.sync()?;
        if let (Some(blocks), Some(ticket)) = (&self.blocks, ticket) {
            blocks.synced(ticket);
        }
        Ok(())
    }

    /// Writes a planned batch; the block ranges it stops referencing become free once it
    /// is durable.
    fn write_plan(
        &self,
        batch: WriteBatch,
        freed: Vec<Extent>,
        deferred: deferred::Deferred,
    ) -> Result<()> {
        self.engine.write(batch)?;
        deferred.keep();
        if let Some(blocks) = &self.blocks {
            blocks.free_after_sync(freed);
        }
        Ok(())
    }

    fn plan_context<'a>(
        &'a self,
        keyspace: &'a str,
        pg: PgId,
        object: &'a ObjectId,
        oid: &'a [u8],
    ) -> PlanContext<'a> {
        PlanContext {
            engine: self.engine.as_ref(),
            keyspace,
            pg,
            object,
            oid,
            config: &self.config,
            blocks: self.blocks.as_deref(),
            deferred: self.deferred.as_ref(),
        }
    }

    fn apply_locked(
        &self,
        handle: &PgHandle,
        state: &mut PgState,
        txn: &Transaction,
        oid: &[u8],
        staged: &mut Staged,
    ) -> Result<Eversion> {
        let pg = txn.pg();
        let keyspace = handle.keyspace.as_str();
        let engine = self.engine.as_ref();
        if let Some(version) = txn.request_id().and_then(|reqid| state.reqids.get(reqid)) {
            return Ok(version);
        }
        let last_update = state.info.last_update;
        let version = match txn.fixed_version() {
            Some(version) if version <= last_update => {
                return Err(StoreError::VersionNotNewer {
                    pg,
                    version,
                    last_update,
                })
            }
            Some(version) => version,
            None if txn.epoch() < last_update.epoch => {
                return Err(StoreError::StaleEpoch {
                    pg,
                    epoch: txn.epoch(),
                    last_update,
                })
            }
            None => {
                let next = last_update.version.checked_add(1).ok_or_else(|| {
                    StoreError::invalid("version", "the PG's version counter is exhausted")
                })?;
                Eversion::new(txn.epoch(), next)
            }
        };
        let mtime = txn.modification_time().unwrap_or_else(SystemTime::now);
        let before = self.load_meta(pg, keyspace, oid, txn.object())?;
        let ctx = self.plan_context(keyspace, pg, txn.object(), oid);
        let Plan {
            mut batch,
            after,
            freed,
            deferred,
        } = txn::plan(&ctx, before, txn.ops(), version, mtime, staged)?;

        let mut info = state.info;
        let size = |meta: Option<ObjectInfo>| meta.map_or(0, |meta| meta.size);
        info.stats.objects = (info.stats.objects + u64::from(after.is_some()))
            .saturating_sub(u64::from(before.is_some()));
        info.stats.bytes = (info.stats.bytes + size(after)).saturating_sub(size(before));
        let entry = LogEntry {
            version,
            prior_version: before.map_or(Eversion::ZERO, |meta| meta.version),
            op: if after.is_some() {
                LogOp::Modify
            } else {
                LogOp::Delete
            },
            object: txn.object().clone(),
            reqid: txn.request_id(),
            mtime,
        };
        pglog::append(&mut batch, keyspace, &entry, &mut info);
        let trimmed = pglog::trim(
            engine,
            keyspace,
            &mut batch,
            &mut info,
            self.config.pg_log_max_entries,
            self.config.pg_log_trim_batch,
            version,
        )?;
        // The entry carries the rest of the info's change (`pglog::open`).
        if info.log_tail != state.info.log_tail {
            batch.put(keyspace, INFO_KEY, info.encode());
        }
        self.write_plan(batch, freed, deferred)?;
        state.info = info;
        state.reqids.committed([&entry], &trimmed);
        self.cache.update(pg, oid, after);
        Ok(version)
    }

    /// The version a request was committed at, if the PG log still remembers it.
    pub fn lookup_reqid(&self, pg: PgId, reqid: ReqId) -> Result<Option<Eversion>> {
        let handle = self.handle(pg)?;
        let state = lock(&handle.state);
        if state.removed {
            return Err(StoreError::PgNotFound { pg });
        }
        Ok(state.reqids.get(reqid))
    }

    /// Up to `max` log entries newer than `after`, oldest first (for log-based recovery).
    /// Fails with [`StoreError::LogTrimmed`] if the log no longer reaches back to `after`.
    pub fn read_log(&self, pg: PgId, after: Eversion, max: usize) -> Result<Vec<LogEntry>> {
        let handle = self.handle(pg)?;
        // Under the PG lock, so no trim runs between the tail check and the scan.
        let state = lock(&handle.state);
        if state.removed {
            return Err(StoreError::PgNotFound { pg });
        }
        pglog::read_after(
            self.engine.as_ref(),
            &handle.keyspace,
            &state.info,
            after,
            max,
        )
    }

    /// An object's metadata through the cache.
    fn load_meta(
        &self,
        pg: PgId,
        keyspace: &str,
        oid: &[u8],
        object: &ObjectId,
    ) -> Result<Option<ObjectInfo>> {
        if let Some(cached) = self.cache.get(pg, oid) {
            return Ok(cached);
        }
        let generation = self.cache.generation();
        let meta = match self.engine.get(keyspace, &keys::meta_key(oid))? {
            None => None,
            Some(bytes) => Some(ObjectInfo::decode(&bytes).map_err(|reason| {
                StoreError::corrupt_record(
                    format!("metadata of object {object} in pg {pg}"),
                    reason,
                )
            })?),
        };
        self.cache.insert_if_unchanged(pg, oid, meta, generation);
        Ok(meta)
    }
}

impl PgHandle {
    fn new(keyspace: String, info: PgInfo, reqids: ReqIdIndex) -> Self {
        Self {
            keyspace,
            state: Mutex::new(PgState {
                info,
                removed: false,
                reqids,
            }),
        }
    }
}

/// The first `max` keys of a range.
fn first_keys(
    engine: &dyn Engine,
    keyspace: &str,
    range: KeyRange,
    max: usize,
) -> Result<Vec<Vec<u8>>> {
    engine
        .scan(keyspace, range)?
        .take(max)
        .map(|item| item.map(|(key, _)| key).map_err(StoreError::from))
        .collect()
}
