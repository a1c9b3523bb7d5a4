//! [`StoreError`]: every way an object-store call can fail. Outcomes a client sees as a
//! result code (not found, exists, version mismatch, ...) are kept apart from bad input,
//! from damage found on disk, and from failures of the engine underneath.

use clustermap::PgId;

use super::types::{Eversion, ObjectId};

/// Result alias for object-store calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything an object-store call can fail with. No call panics on bad input; each
/// failure of a transaction leaves the store unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object does not exist (Ceph's ENOENT).
    #[error("object {object} not found in pg {pg}")]
    ObjectNotFound {
        /// The PG.
        pg: PgId,
        /// The object.
        object: ObjectId,
    },
    /// An exclusive create found the object already there (EEXIST).
    #[error("object {object} already exists in pg {pg}")]
    ObjectExists {
        /// The PG.
        pg: PgId,
        /// The object.
        object: ObjectId,
    },
    /// An `assert_version` guard failed (ERANGE/EOVERFLOW in Ceph).
    #[error("object {object} in pg {pg} is at version {actual}, expected {expected}")]
    VersionMismatch {
        /// The PG.
        pg: PgId,
        /// The object.
        object: ObjectId,
        /// The version the transaction asserted.
        expected: Eversion,
        /// The object's version.
        actual: Eversion,
    },
    /// A named extended attribute is absent (ENODATA).
    #[error("object {object} in pg {pg} has no xattr {name:?}")]
    XattrNotFound {
        /// The PG.
        pg: PgId,
        /// The object.
        object: ObjectId,
        /// The attribute's name.
        name: String,
    },
    /// A data chunk failed its checksum (or is malformed): the stored bytes are damaged.
    /// Deep scrub reports it; repair rewrites the object from a good replica.
    #[error("corrupt chunk {chunk} of object {object} in pg {pg}: {detail}")]
    Corruption {
        /// The PG.
        pg: PgId,
        /// The object.
        object: ObjectId,
        /// The chunk's index (its offset divided by the chunk size).
        chunk: u32,
        /// What was wrong (for a checksum, both values).
        detail: String,
    },
    /// A metadata record (object info, PG info, log entry, superblock) could not be decoded.
    #[error("corrupt {what}: {reason}")]
    CorruptRecord {
        /// Which record.
        what: String,
        /// Why decoding failed.
        reason: &'static str,
    },
    /// An object name or namespace broke a limit.
    #[error("invalid object name: {reason}")]
    InvalidObjectName {
        /// Which rule it broke.
        reason: String,
    },
    /// A write would make an object larger than `StoreConfig::max_object_size` (EFBIG).
    #[error("object {object} would grow to {size} bytes, over the limit of {max}")]
    ObjectTooLarge {
        /// The object.
        object: ObjectId,
        /// The size it would reach.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An offset plus a length does not fit in 64 bits.
    #[error("offset {offset} + length {len} overflows")]
    OffsetOverflow {
        /// The offset.
        offset: u64,
        /// The length.
        len: u64,
    },
    /// Some other argument (an xattr name, an omap key, a transaction) broke a rule.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The PG is not in this store.
    #[error("pg {pg} does not exist on this OSD")]
    PgNotFound {
        /// The PG.
        pg: PgId,
    },
    /// `create_pg` for a PG that exists (or is still being removed).
    #[error("pg {pg} already exists on this OSD")]
    PgExists {
        /// The PG.
        pg: PgId,
    },
    /// A transaction came with an epoch older than the PG's last update.
    #[error("pg {pg}: epoch {epoch} is older than the last update {last_update}")]
    StaleEpoch {
        /// The PG.
        pg: PgId,
        /// The transaction's epoch.
        epoch: u32,
        /// The PG's newest version.
        last_update: Eversion,
    },
    /// A transaction with a fixed version (a replica applying the primary's entry) was not
    /// newer than the PG's last update.
    #[error("pg {pg}: version {version} is not newer than the last update {last_update}")]
    VersionNotNewer {
        /// The PG.
        pg: PgId,
        /// The version the transaction carried.
        version: Eversion,
        /// The PG's newest version.
        last_update: Eversion,
    },
    /// Log entries after `after` were asked for, but the log was trimmed past it: the peer
    /// needs backfill, not log recovery.
    #[error("pg {pg}: log entries after {after} are gone (log tail {tail})")]
    LogTrimmed {
        /// The PG.
        pg: PgId,
        /// The version asked for.
        after: Eversion,
        /// The log's tail.
        tail: Eversion,
    },
    /// The engine holds no object store (`open` on a store that was never made).
    #[error("the engine holds no object store (no superblock); run mkfs first")]
    NotFormatted,
    /// `mkfs` on an engine that already holds data.
    #[error("the engine already holds data; refusing to format it")]
    AlreadyFormatted,
    /// The store was written by a newer format or with other fixed parameters.
    #[error("incompatible object store: {reason}")]
    Incompatible {
        /// What differs.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid object store config {field}: {reason}")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// The key-value engine failed (I/O, a poisoned engine after an earlier failure).
    #[error("storage engine: {0}")]
    Engine(#[from] kv::Error),
    /// The block file (large chunks) failed: I/O, or records that contradict it.
    #[error("block file: {0}")]
    BlockFile(#[from] std::io::Error),
}

impl StoreError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        StoreError::InvalidArgument {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt_record(what: impl Into<String>, reason: &'static str) -> Self {
        StoreError::CorruptRecord {
            what: what.into(),
            reason,
        }
    }
}
