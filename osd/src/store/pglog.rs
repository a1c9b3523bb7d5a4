//! The PG log on disk: appending an entry, trimming the oldest entries to keep the log
//! bounded, reading entries after a version (log-based recovery), and the index of the
//! log's request ids (dup detection).
//!
//! Every function here only adds operations to the caller's batch or reads: the caller
//! (the store's commit, under the PG's lock) writes the batch together with the object's
//! changes (and the PG info, when it must be stored), so log and info always agree, and
//! then brings the [`ReqIdIndex`] in line with what it committed.
//!
//! The PG info is stored only when the log's tail moves (a trim, an adopted log, recovery);
//! every other commit leaves its effect on the info in its own log entry, and [`open`]
//! brings the stored info forward from the entries newer than it.
//!
//! The request-id index lives in memory, rebuilt from the log when the store opens, as
//! Ceph's is (`caller_ops`): the log entries already carry their request ids, and keeping
//! a second on-disk copy cost every write one more key to insert, and one more to delete
//! at trim, in a memtable whose comparisons were the OSD's largest CPU cost under 4 KiB
//! writes.

use std::collections::HashMap;
use std::ops::Bound;

use kv::{Engine, KeyRange, WriteBatch};

use super::error::{Result, StoreError};
use super::keys;
use super::types::{Eversion, LogEntry, PgInfo, ReqId};

/// The versions of the requests the log remembers, by request id.
#[derive(Debug, Default)]
pub(crate) struct ReqIdIndex {
    versions: HashMap<ReqId, Eversion>,
}

impl ReqIdIndex {
    /// The version `reqid` was committed at, if the log still holds it.
    pub fn get(&self, reqid: ReqId) -> Option<Eversion> {
        self.versions.get(&reqid).copied()
    }

    /// Takes in a commit that appended `appended` and trimmed `trimmed`.
    pub fn committed<'e>(
        &mut self,
        appended: impl IntoIterator<Item = &'e LogEntry>,
        trimmed: &[(ReqId, Eversion)],
    ) {
        // Appended first: one commit may trim entries it appended (adopting a long log).
        for entry in appended {
            if let Some(reqid) = entry.reqid {
                self.versions.insert(reqid, entry.version);
            }
        }
        for &(reqid, version) in trimmed {
            // Only the entry trimmed: the same request id at a later version stays.
            if self.versions.get(&reqid) == Some(&version) {
                self.versions.remove(&reqid);
            }
        }
    }
}

/// Reads the log stored in `keyspace` when the store opens: returns the PG's info, which is
/// `stored` (the info key) brought forward by the entries committed after it was written,
/// and the request-id index. A commit writes the info key only when it moves the log's
/// tail; the others leave their effect on the info in their own entry (its version, one
/// more entry, and the statistics after it), which saves every write one key.
///
/// A damaged entry still counts by its key, but its request id is forgotten (as trimming it
/// would) and the statistics come from the newest entry that tells them, so a damaged
/// entry cannot keep the store from opening.
pub(crate) fn open(
    engine: &dyn Engine,
    keyspace: &str,
    stored: PgInfo,
) -> Result<(PgInfo, ReqIdIndex)> {
    let mut info = stored;
    let mut index = ReqIdIndex::default();
    for item in engine.scan(keyspace, KeyRange::prefix(&[keys::LOG_TAG]))? {
        let (key, value) = item?;
        let Some(version) = keys::version_of_log_key(&key) else {
            return Err(StoreError::corrupt_record(
                format!("log key {key:02x?} in {keyspace}"),
                "not a log key",
            ));
        };
        let decoded = LogEntry::decode_with_stats(&value);
        if let Err(reason) = &decoded {
            tracing::warn!(
                keyspace,
                %version,
                reason,
                "a damaged PG log entry: its request id is not remembered"
            );
        }
        if version > info.last_update {
            info.last_update = version;
            info.log_len += 1;
            if let Ok((_, Some(stats))) = &decoded {
                info.stats = *stats;
            }
        }
        if let Ok((entry, _)) = decoded {
            index.committed([&entry], &[]);
        }
    }
    Ok((info, index))
}

/// Adds `entry` to `batch`, and counts it in `info`, whose statistics must already be the
/// PG's after the entry (they are stored with it).
pub(crate) fn append(batch: &mut WriteBatch, keyspace: &str, entry: &LogEntry, info: &mut PgInfo) {
    batch.put(
        keyspace,
        keys::log_key(entry.version),
        entry.encode(info.stats),
    );
    info.last_update = entry.version;
    info.log_len += 1;
}

/// When the log holds more than `max_entries`, adds to `batch` the removal of the oldest
/// entries — `trim_batch` of them, or more if needed to get back to `max_entries` — and
/// moves `info.log_tail`. Entries at or after `keep_from` stay. Returns the request ids
/// trimmed, with their versions, for the [`ReqIdIndex`].
pub(crate) fn trim(
    engine: &dyn Engine,
    keyspace: &str,
    batch: &mut WriteBatch,
    info: &mut PgInfo,
    max_entries: u64,
    trim_batch: u64,
    keep_from: Eversion,
) -> Result<Vec<(ReqId, Eversion)>> {
    let mut trimmed_reqids = Vec::new();
    if info.log_len <= max_entries {
        return Ok(trimmed_reqids);
    }
    let count = (info.log_len - max_entries).max(trim_batch);
    // Start after the tail: keys before it are tombstones an LSM scan would have to skip.
    let range = KeyRange::new(
        Bound::Excluded(keys::log_key(info.log_tail)),
        Bound::Excluded(keys::log_key(keep_from)),
    );
    let mut trimmed = 0;
    for item in engine.scan(keyspace, range)? {
        if trimmed == count {
            break;
        }
        let (key, value) = item?;
        let Some(version) = keys::version_of_log_key(&key) else {
            return Err(StoreError::corrupt_record(
                format!("log key {key:02x?} in {keyspace}"),
                "not a log key",
            ));
        };
        batch.delete(keyspace, key);
        // A damaged entry is trimmed all the same (refusing would block every later write);
        // only its request id, which it no longer tells, stays behind in the index.
        if let Ok(entry) = LogEntry::decode(&value) {
            trimmed_reqids.extend(entry.reqid.map(|reqid| (reqid, entry.version)));
        }
        info.log_tail = version;
        trimmed += 1;
    }
    info.log_len -= trimmed;
    Ok(trimmed_reqids)
}

/// Up to `max` entries newer than `after`, oldest first. Fails with `LogTrimmed` when the
/// log no longer reaches back to `after`.
pub(crate) fn read_after(
    engine: &dyn Engine,
    keyspace: &str,
    info: &PgInfo,
    after: Eversion,
    max: usize,
) -> Result<Vec<LogEntry>> {
    if after < info.log_tail {
        return Err(StoreError::LogTrimmed {
            pg: info.pgid,
            after,
            tail: info.log_tail,
        });
    }
    let range = KeyRange::new(
        Bound::Excluded(keys::log_key(after)),
        KeyRange::prefix(&[keys::LOG_TAG]).end().map(<[u8]>::to_vec),
    );
    engine
        .scan(keyspace, range)?
        .take(max)
        .map(|item| {
            let (key, value) = item?;
            LogEntry::decode(&value).map_err(|reason| {
                StoreError::corrupt_record(
                    format!("log entry {key:02x?} of pg {}", info.pgid),
                    reason,
                )
            })
        })
        .collect()
}
