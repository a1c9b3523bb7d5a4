//! The PG log on disk: appending an entry (with its request-id index key), trimming the
//! oldest entries to keep the log bounded, reading entries after a version (log-based
//! recovery), and looking a request id up (dup detection).
//!
//! Every function here only adds operations to the caller's batch or reads: the caller
//! (the store's commit, under the PG's lock) writes the batch together with the object's
//! changes and the updated PG info, so log, index and info always agree.

use std::ops::Bound;

use clustermap::PgId;
use kv::{Engine, KeyRange, WriteBatch};

use super::codec::{Decoder, Encoder};
use super::error::{Result, StoreError};
use super::keys;
use super::types::{Eversion, LogEntry, PgInfo, ReqId};

const REQID_RECORD: u8 = 1;

/// Adds `entry` and its request-id index key to `batch`, and counts it in `info`.
pub(crate) fn append(batch: &mut WriteBatch, keyspace: &str, entry: &LogEntry, info: &mut PgInfo) {
    batch.put(keyspace, keys::log_key(entry.version), entry.encode());
    if let Some(reqid) = entry.reqid {
        let mut value = Encoder::new(REQID_RECORD);
        entry.version.encode(&mut value);
        batch.put(keyspace, keys::reqid_key(reqid), value.finish());
    }
    info.last_update = entry.version;
    info.log_len += 1;
}

/// When the log holds more than `max_entries`, adds to `batch` the removal of the oldest
/// entries — `trim_batch` of them, or more if needed to get back to `max_entries` — and of
/// their request ids, and moves `info.log_tail`. Entries at or after `keep_from` stay.
pub(crate) fn trim(
    engine: &dyn Engine,
    keyspace: &str,
    batch: &mut WriteBatch,
    info: &mut PgInfo,
    max_entries: u64,
    trim_batch: u64,
    keep_from: Eversion,
) -> Result<()> {
    if info.log_len <= max_entries {
        return Ok(());
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
            if let Some(reqid) = entry.reqid {
                batch.delete(keyspace, keys::reqid_key(reqid));
            }
        }
        info.log_tail = version;
        trimmed += 1;
    }
    info.log_len -= trimmed;
    Ok(())
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

/// The version a request was committed at, if the log still remembers it.
pub(crate) fn lookup_reqid(
    engine: &dyn Engine,
    keyspace: &str,
    pg: PgId,
    reqid: ReqId,
) -> Result<Option<Eversion>> {
    let Some(value) = engine.get(keyspace, &keys::reqid_key(reqid))? else {
        return Ok(None);
    };
    let decoded = Decoder::new(&value, REQID_RECORD).and_then(|mut decoder| {
        let version = Eversion::decode(&mut decoder)?;
        decoder.finish()?;
        Ok(version)
    });
    decoded
        .map(Some)
        .map_err(|reason| StoreError::corrupt_record(format!("request {reqid} in pg {pg}"), reason))
}
