//! The edge between osd.proto and the OSD's own types: versions, names and PG ids both
//! ways, client sub-ops parsed into store writes or read steps (with every check that does
//! not need stored state), and [`OpFailure`], the one place where store errors become the
//! proto's `OpError` kinds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clustermap::PgId;
use proto::osd::{self as wire, sub_op::Op, OpErrorKind};

use crate::store::{Eversion, LogEntry, LogOp, ObjectId, ReqId, StoreError, WriteOp};

/// A version on the wire.
pub fn ev_to_wire(version: Eversion) -> wire::Eversion {
    wire::Eversion {
        epoch: version.epoch,
        version: version.version,
    }
}

/// A version from the wire (absent: zero).
pub fn ev_from_wire(version: Option<&wire::Eversion>) -> Eversion {
    version.map_or(Eversion::ZERO, |v| Eversion::new(v.epoch, v.version))
}

/// An object name from the wire.
pub fn object_from_wire(name: Option<&wire::ObjectName>) -> ObjectId {
    name.map_or_else(ObjectId::default, |n| {
        ObjectId::in_namespace(n.namespace.clone(), n.name.clone())
    })
}

/// An object name on the wire.
pub fn object_to_wire(object: &ObjectId) -> wire::ObjectName {
    wire::ObjectName {
        namespace: object.namespace.clone(),
        name: object.name.clone(),
    }
}

/// A PG id from the wire.
pub fn pg_from_wire(pg: Option<&proto::common::PlacementGroupId>) -> Option<PgId> {
    pg.map(|pg| PgId::new(pg.pool, pg.seed))
}

/// A PG id on the wire.
pub fn pg_to_wire(pg: PgId) -> proto::common::PlacementGroupId {
    proto::common::PlacementGroupId {
        pool: pg.pool,
        seed: pg.ps,
    }
}

/// A request id from the wire (absent or zero client: none).
pub fn reqid_from_wire(reqid: Option<&wire::ReqId>) -> Option<ReqId> {
    reqid
        .filter(|r| r.client != 0)
        .map(|r| ReqId::new(r.client, r.tid))
}

/// Nanoseconds since the Unix epoch.
pub fn time_to_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

/// A time from nanoseconds since the Unix epoch.
pub fn nanos_to_time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// A PG log entry on the wire.
pub fn log_entry_to_wire(entry: &LogEntry) -> wire::LogEntry {
    wire::LogEntry {
        version: Some(ev_to_wire(entry.version)),
        object: Some(object_to_wire(&entry.object)),
        delete: entry.op == LogOp::Delete,
        reqid: entry.reqid.map(|r| wire::ReqId {
            client: r.client,
            tid: r.tid,
        }),
    }
}

/// A PG log entry from the wire (the fields the wire does not carry are neutral).
pub fn log_entry_from_wire(entry: &wire::LogEntry) -> LogEntry {
    LogEntry {
        version: ev_from_wire(entry.version.as_ref()),
        prior_version: Eversion::ZERO,
        op: if entry.delete {
            LogOp::Delete
        } else {
            LogOp::Modify
        },
        object: object_from_wire(entry.object.as_ref()),
        reqid: reqid_from_wire(entry.reqid.as_ref()),
        mtime: SystemTime::now(),
    }
}

/// Why an op failed, as the client will see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpFailure {
    /// The proto's kind.
    pub kind: OpErrorKind,
    /// What went wrong, naming the problem.
    pub message: String,
    /// For VERSION_MISMATCH: the object's version.
    pub actual: Option<Eversion>,
}

impl OpFailure {
    /// A failure of `kind`.
    pub fn new(kind: OpErrorKind, message: impl Into<String>) -> Self {
        OpFailure {
            kind,
            message: message.into(),
            actual: None,
        }
    }

    /// INVALID_ARGUMENT.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(OpErrorKind::InvalidArgument, message)
    }

    /// BUSY.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(OpErrorKind::Busy, message)
    }

    /// The proto's `OpError`.
    pub fn to_wire(&self) -> wire::OpError {
        wire::OpError {
            kind: self.kind as i32,
            message: self.message.clone(),
            actual_version: self.actual.map(ev_to_wire),
        }
    }
}

impl From<StoreError> for OpFailure {
    fn from(error: StoreError) -> Self {
        let kind = match &error {
            StoreError::ObjectNotFound { .. } | StoreError::XattrNotFound { .. } => {
                OpErrorKind::NotFound
            }
            StoreError::ObjectExists { .. } => OpErrorKind::Exists,
            StoreError::VersionMismatch { actual, .. } => {
                return OpFailure {
                    kind: OpErrorKind::VersionMismatch,
                    message: error.to_string(),
                    actual: Some(*actual),
                }
            }
            StoreError::InvalidObjectName { .. }
            | StoreError::OffsetOverflow { .. }
            | StoreError::InvalidArgument { .. } => OpErrorKind::InvalidArgument,
            StoreError::ObjectTooLarge { .. } => OpErrorKind::TooLarge,
            StoreError::Corruption { .. } => OpErrorKind::Corruption,
            _ => OpErrorKind::Internal,
        };
        if kind == OpErrorKind::Internal || kind == OpErrorKind::Corruption {
            tracing::error!(%error, "op failed in the store");
        }
        OpFailure::new(kind, error.to_string())
    }
}

/// One step of a read op.
#[derive(Clone, Debug)]
pub enum ReadStep {
    /// Guard: the object exists.
    AssertExists,
    /// Guard: the object is at this version.
    AssertVersion(Eversion),
    /// Data.
    Read {
        /// Offset.
        offset: u64,
        /// Length (0: to the end).
        length: u64,
    },
    /// Size, version, mtime.
    Stat,
    /// One xattr.
    GetXattr(String),
    /// Every xattr.
    GetXattrs,
    /// A page of the omap.
    OmapList {
        /// Keys strictly after this one.
        start_after: Bytes,
        /// Only keys with this prefix.
        prefix: Bytes,
        /// Page size (0: 1000).
        max: u32,
        /// Whether values are returned.
        with_values: bool,
    },
    /// Chosen omap keys.
    OmapGet(Vec<Vec<u8>>),
}

impl ReadStep {
    /// The data bytes the step reads, when bounded: `None` for a read to the end of the
    /// object (its size is not known here); metadata steps count as 0.
    pub fn data_len(&self) -> Option<u64> {
        match self {
            ReadStep::Read { length: 0, .. } => None,
            ReadStep::Read { length, .. } => Some(*length),
            _ => Some(0),
        }
    }
}

/// A client op, parsed.
#[derive(Debug)]
pub enum ParsedOp {
    /// Guards and writes, for the store.
    Write(Vec<WriteOp>),
    /// Guards and reads.
    Read(Vec<ReadStep>),
}

/// Parses the sub-ops of a client op (or a replicated write), refusing empty ops, mixed
/// reads and writes, unset sub-ops and data larger than `max_object_size`.
pub fn parse_ops(ops: &[wire::SubOp], max_object_size: u64) -> Result<ParsedOp, OpFailure> {
    if ops.is_empty() {
        return Err(OpFailure::invalid("the op has no sub-op"));
    }
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    let too_large = |len: usize| {
        OpFailure::new(
            OpErrorKind::TooLarge,
            format!("{len} bytes of data exceed the maximum object size {max_object_size}"),
        )
    };
    let check_len = |data: &Bytes| {
        if data.len() as u64 > max_object_size {
            Err(too_large(data.len()))
        } else {
            Ok(())
        }
    };
    for (index, sub) in ops.iter().enumerate() {
        let Some(op) = &sub.op else {
            return Err(OpFailure::invalid(format!("sub-op {index} is empty")));
        };
        match op {
            Op::AssertExists(_) => {
                writes.push(WriteOp::AssertExists);
                reads.push(ReadStep::AssertExists);
                continue;
            }
            Op::AssertVersion(version) => {
                let version = ev_from_wire(Some(version));
                writes.push(WriteOp::AssertVersion(version));
                reads.push(ReadStep::AssertVersion(version));
                continue;
            }
            _ => {}
        }
        let write = match op {
            Op::Create(create) => Some(WriteOp::Create {
                exclusive: create.exclusive,
            }),
            Op::Write(write) => {
                check_len(&write.data)?;
                Some(WriteOp::Write {
                    offset: write.offset,
                    data: write.data.clone(),
                })
            }
            Op::WriteFull(write) => {
                check_len(&write.data)?;
                Some(WriteOp::WriteFull {
                    data: write.data.clone(),
                })
            }
            Op::Append(append) => {
                check_len(&append.data)?;
                Some(WriteOp::Append {
                    data: append.data.clone(),
                })
            }
            Op::Truncate(truncate) => Some(WriteOp::Truncate {
                size: truncate.size,
            }),
            Op::Zero(zero) => Some(WriteOp::Zero {
                offset: zero.offset,
                len: zero.length,
            }),
            Op::Remove(_) => Some(WriteOp::Remove),
            Op::SetXattr(set) => Some(WriteOp::SetXattr {
                name: set.name.clone(),
                value: set.value.to_vec(),
            }),
            Op::RmXattr(name) => Some(WriteOp::RmXattr { name: name.clone() }),
            Op::OmapSet(set) => Some(WriteOp::OmapSet {
                entries: set
                    .entries
                    .iter()
                    .map(|e| (e.key.to_vec(), e.value.to_vec()))
                    .collect(),
            }),
            Op::OmapRm(rm) => Some(WriteOp::OmapRm {
                keys: rm.keys.iter().map(|k| k.to_vec()).collect(),
            }),
            Op::OmapClear(_) => Some(WriteOp::OmapClear),
            _ => None,
        };
        if let Some(write) = write {
            writes.push(write);
            continue;
        }
        let read = match op {
            Op::Read(read) => ReadStep::Read {
                offset: read.offset,
                length: read.length,
            },
            Op::Stat(_) => ReadStep::Stat,
            Op::GetXattr(name) => ReadStep::GetXattr(name.clone()),
            Op::GetXattrs(_) => ReadStep::GetXattrs,
            Op::OmapList(list) => ReadStep::OmapList {
                start_after: list.start_after.clone(),
                prefix: list.prefix.clone(),
                max: list.max,
                with_values: list.with_values,
            },
            Op::OmapGet(get) => ReadStep::OmapGet(get.keys.iter().map(|k| k.to_vec()).collect()),
            _ => return Err(OpFailure::invalid(format!("sub-op {index} is unknown"))),
        };
        reads.push(read);
    }
    let guards = ops
        .iter()
        .filter(|s| matches!(s.op, Some(Op::AssertExists(_)) | Some(Op::AssertVersion(_))))
        .count();
    let write_count = writes.len() - guards;
    let read_count = reads.len() - guards;
    match (write_count, read_count) {
        // Guards alone are a read that only checks (librados' `assert_version`, Ceph's
        // read op with nothing but an assert): it changes nothing, so it is not logged.
        (0, _) => Ok(ParsedOp::Read(reads)),
        (_, 0) => Ok(ParsedOp::Write(writes)),
        _ => Err(OpFailure::invalid("the op mixes reads and writes")),
    }
}
