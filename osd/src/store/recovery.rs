//! Recovery support: reading an object's whole state ([`ObjectState`]), installing a whole
//! state (or an absence) at the version the authoritative copy has, and adopting the
//! authoritative PG log's entries and head. Peering uses these to resync a PG copy that
//! missed writes; ordinary writes go through [`super::Transaction`]s.
//!
//! An install writes no log entry (the object's history is the authoritative copy's) and
//! does not move the PG's last update; [`ObjectStore::adopt_log`] does that once every
//! object was installed, so a copy whose resync was cut short still looks behind and is
//! resynced again. Neither call syncs: the caller calls [`ObjectStore::sync`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use clustermap::PgId;

use super::error::{Result, StoreError};
use super::txn::{plan, validate_object, WriteOp};
use super::types::{Eversion, LogEntry, ObjectId, ObjectInfo};
use super::{keys, lock, pglog, ObjectStore, INFO_KEY};

/// Omap entries read per page when an object's whole state is read.
const OMAP_PAGE: usize = 1024;

/// The whole state of one object: what recovery copies between replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectState {
    /// The object's version (of its last write).
    pub version: Eversion,
    /// Its modification time.
    pub mtime: SystemTime,
    /// Its content.
    pub data: Vec<u8>,
    /// Its xattrs.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// Its omap, in key order.
    pub omap: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ObjectStore {
    /// The whole state of an object, or `None` when it does not exist.
    pub fn object_state(&self, pg: PgId, object: &ObjectId) -> Result<Option<ObjectState>> {
        let info = match self.stat(pg, object) {
            Ok(info) => info,
            Err(StoreError::ObjectNotFound { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        let data = self.read(pg, object, 0, info.size)?;
        let xattrs = self.xattrs(pg, object)?;
        let mut omap = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.omap_list(pg, object, after.as_deref(), OMAP_PAGE)?;
            after = page.entries.last().map(|(key, _)| key.clone());
            omap.extend(page.entries);
            if !page.more || after.is_none() {
                break;
            }
        }
        Ok(Some(ObjectState {
            version: info.version,
            mtime: info.mtime,
            data,
            xattrs,
            omap,
        }))
    }

    /// Replaces the object's whole state with `state` (or removes it, for `None`), keeping
    /// the version and mtime `state` carries. Writes no log entry. Not synced.
    pub fn install_object(
        &self,
        pg: PgId,
        object: &ObjectId,
        state: Option<&ObjectState>,
    ) -> Result<()> {
        validate_object(object, &self.config)?;
        let handle = self.handle(pg)?;
        let oid = keys::object_key(object);
        // Removes whatever is there first (a no-op plan when nothing is).
        let mut ops = vec![WriteOp::Create { exclusive: false }, WriteOp::Remove];
        let (version, mtime) = match state {
            Some(state) => {
                ops.push(WriteOp::WriteFull {
                    data: bytes::Bytes::copy_from_slice(&state.data),
                });
                for (name, value) in &state.xattrs {
                    ops.push(WriteOp::SetXattr {
                        name: name.clone(),
                        value: value.clone(),
                    });
                }
                if !state.omap.is_empty() {
                    ops.push(WriteOp::OmapSet {
                        entries: state.omap.clone(),
                    });
                }
                (state.version, state.mtime)
            }
            None => (Eversion::ZERO, SystemTime::now()),
        };
        // The new content's large chunks are written before the PG's lock is taken.
        let mut staged = self.stage(&ops)?;
        let mut pg_state = lock(&handle.state);
        if pg_state.removed {
            return Err(StoreError::PgNotFound { pg });
        }
        let keyspace = handle.keyspace.as_str();
        let before = self.load_meta(pg, keyspace, &oid, object)?;
        if before.is_none() && state.is_none() {
            return Ok(());
        }
        let ctx = self.plan_context(keyspace, pg, object, &oid);
        let planned = plan(&ctx, before, &ops, version, mtime, &mut staged)?;
        let mut batch = planned.batch;
        let after = planned.after;
        let mut info = pg_state.info;
        let size = |meta: Option<ObjectInfo>| meta.map_or(0, |meta| meta.size);
        info.stats.objects = (info.stats.objects + u64::from(after.is_some()))
            .saturating_sub(u64::from(before.is_some()));
        info.stats.bytes = (info.stats.bytes + size(after)).saturating_sub(size(before));
        batch.put(keyspace, INFO_KEY, info.encode());
        self.write_plan(batch, planned.freed, planned.deferred)?;
        pg_state.info = info;
        self.cache.update(pg, &oid, after);
        Ok(())
    }

    /// Adopts the authoritative copy's log: appends the `entries` newer than this copy's
    /// last update (so their request ids are remembered for dedup) and sets the last update
    /// to `last_update`. Not synced.
    pub fn adopt_log(&self, pg: PgId, entries: &[LogEntry], last_update: Eversion) -> Result<()> {
        let handle = self.handle(pg)?;
        let mut pg_state = lock(&handle.state);
        if pg_state.removed {
            return Err(StoreError::PgNotFound { pg });
        }
        let keyspace = handle.keyspace.as_str();
        let mut info = pg_state.info;
        let mut batch = kv::WriteBatch::new();
        let mut sorted: Vec<&LogEntry> = entries
            .iter()
            .filter(|entry| entry.version > info.last_update && entry.version <= last_update)
            .collect();
        sorted.sort_by_key(|entry| entry.version);
        sorted.dedup_by_key(|entry| entry.version);
        for &entry in &sorted {
            pglog::append(&mut batch, keyspace, entry, &mut info);
        }
        info.last_update = last_update;
        if info.log_tail > last_update {
            info.log_tail = last_update;
        }
        let trimmed = pglog::trim(
            self.engine.as_ref(),
            keyspace,
            &mut batch,
            &mut info,
            self.config.pg_log_max_entries,
            self.config.pg_log_trim_batch,
            last_update,
        )?;
        batch.put(keyspace, INFO_KEY, info.encode());
        self.engine.write(batch)?;
        pg_state.info = info;
        pg_state.reqids.committed(sorted, &trimmed);
        Ok(())
    }
}
