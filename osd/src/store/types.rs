//! The values the object store speaks in: versions ([`Eversion`]), request ids ([`ReqId`]),
//! object names ([`ObjectId`]), object metadata ([`ObjectInfo`]), PG info and statistics,
//! and PG log entries — plus their on-disk encodings.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clustermap::{Epoch, PgId};

use super::codec::{DecodeResult, Decoder, Encoder};

/// A PG-wide version, as Ceph's `eversion_t`: the map epoch in which the write was ordered,
/// and a counter that grows by one with every write to the PG. Ordered by epoch, then
/// counter; [`Eversion::ZERO`] means "nothing yet".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Eversion {
    /// The epoch of the cluster map the primary had when it ordered the write.
    pub epoch: Epoch,
    /// The PG's write counter.
    pub version: u64,
}

impl Eversion {
    /// The version before any write.
    pub const ZERO: Eversion = Eversion {
        epoch: 0,
        version: 0,
    };

    /// A version from its parts.
    pub fn new(epoch: Epoch, version: u64) -> Self {
        Self { epoch, version }
    }

    pub(crate) fn encode(&self, encoder: &mut Encoder) {
        encoder.u32(self.epoch).u64(self.version);
    }

    pub(crate) fn decode(decoder: &mut Decoder<'_>) -> DecodeResult<Self> {
        Ok(Self {
            epoch: decoder.u32()?,
            version: decoder.u64()?,
        })
    }

    /// 12 bytes that sort like the version (the PG log's key suffix).
    pub(crate) fn sort_key(&self) -> [u8; 12] {
        let mut key = [0; 12];
        key[..4].copy_from_slice(&self.epoch.to_be_bytes());
        key[4..].copy_from_slice(&self.version.to_be_bytes());
        key
    }
}

impl fmt::Display for Eversion {
    /// Ceph's notation, `epoch'version`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}'{}", self.epoch, self.version)
    }
}

/// Identifies one client request, so a resent write is recognised and applied once: the
/// client's id (its global id from the monitors) and the client's transaction counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReqId {
    /// The client's id.
    pub client: u64,
    /// The client's per-request counter.
    pub tid: u64,
}

impl ReqId {
    /// A request id from its parts.
    pub fn new(client: u64, tid: u64) -> Self {
        Self { client, tid }
    }
}

impl fmt::Display for ReqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client.{}:{}", self.client, self.tid)
    }
}

/// An object's name inside its pool: a namespace (empty for the default one) and a name.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    /// The namespace; `""` is the pool's default namespace.
    pub namespace: String,
    /// The object's name (1 byte to `StoreConfig::max_object_name_len` bytes).
    pub name: String,
}

impl ObjectId {
    /// An object in the default namespace.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            namespace: String::new(),
            name: name.into(),
        }
    }

    /// An object in a namespace.
    pub fn in_namespace(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectId {
    /// `name`, or `namespace/name` outside the default namespace.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{:?}", self.name)
        } else {
            write!(f, "{:?}/{:?}", self.namespace, self.name)
        }
    }
}

/// An object's metadata, as `stat` returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Logical size in bytes (holes count; reads past it are short).
    pub size: u64,
    /// The PG version of the last write to the object.
    pub version: Eversion,
    /// Modification time of the last write.
    pub mtime: SystemTime,
}

const OBJECT_INFO_RECORD: u8 = 1;

impl ObjectInfo {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut encoder = Encoder::new(OBJECT_INFO_RECORD);
        encoder.u64(self.size);
        self.version.encode(&mut encoder);
        encoder.u64(time_to_nanos(self.mtime));
        encoder.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let mut decoder = Decoder::new(bytes, OBJECT_INFO_RECORD)?;
        let info = Self {
            size: decoder.u64()?,
            version: Eversion::decode(&mut decoder)?,
            mtime: nanos_to_time(decoder.u64()?),
        };
        decoder.finish()?;
        Ok(info)
    }
}

/// Nanoseconds since the Unix epoch; times before it are stored as 0 (good until 2554).
pub(crate) fn time_to_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn nanos_to_time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

/// Object and byte counts of a PG (for `pg stat`, the monitors' PG statistics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PgStats {
    /// Objects in the PG.
    pub objects: u64,
    /// Sum of the objects' logical sizes.
    pub bytes: u64,
}

/// What the store persists about a PG besides its objects: the log bounds and statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PgInfo {
    /// The PG.
    pub pgid: PgId,
    /// The version of the newest write applied (the head of the log).
    pub last_update: Eversion,
    /// The version just before the oldest entry still in the log (Ceph's `log_tail`):
    /// entries `(log_tail, last_update]` are in the log.
    pub log_tail: Eversion,
    /// Entries in the log.
    pub log_len: u64,
    /// Object and byte counts.
    pub stats: PgStats,
}

const PG_INFO_RECORD: u8 = 1;

impl PgInfo {
    /// The info of a PG with no writes.
    pub fn new(pgid: PgId) -> Self {
        Self {
            pgid,
            last_update: Eversion::ZERO,
            log_tail: Eversion::ZERO,
            log_len: 0,
            stats: PgStats::default(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut encoder = Encoder::new(PG_INFO_RECORD);
        encoder.i64(self.pgid.pool).u32(self.pgid.ps);
        self.last_update.encode(&mut encoder);
        self.log_tail.encode(&mut encoder);
        encoder
            .u64(self.log_len)
            .u64(self.stats.objects)
            .u64(self.stats.bytes);
        encoder.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        let mut decoder = Decoder::new(bytes, PG_INFO_RECORD)?;
        let info = Self {
            pgid: PgId::new(decoder.i64()?, decoder.u32()?),
            last_update: Eversion::decode(&mut decoder)?,
            log_tail: Eversion::decode(&mut decoder)?,
            log_len: decoder.u64()?,
            stats: PgStats {
                objects: decoder.u64()?,
                bytes: decoder.u64()?,
            },
        };
        decoder.finish()?;
        Ok(info)
    }
}

/// What a logged write left behind, which is what log-based recovery needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogOp {
    /// The object exists after the write: recovery copies it.
    Modify,
    /// The object does not exist after the write: recovery removes it.
    Delete,
}

/// One PG log entry: one committed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The version the transaction was committed at.
    pub version: Eversion,
    /// The object's version before it ([`Eversion::ZERO`] if the object did not exist).
    pub prior_version: Eversion,
    /// Whether the object exists after it.
    pub op: LogOp,
    /// The object written.
    pub object: ObjectId,
    /// The client request, if the write came from a client.
    pub reqid: Option<ReqId>,
    /// The transaction's modification time.
    pub mtime: SystemTime,
}

/// Format 3's log entry, written while every commit also rewrote the PG info.
const LOG_ENTRY_RECORD: u8 = 1;
/// Format 4's: the entry closes with the PG's statistics after its commit, so that the PG
/// info need not be rewritten by every commit (see [`super::pglog::open`]).
const LOG_ENTRY_WITH_STATS_RECORD: u8 = 2;

impl LogEntry {
    /// The entry as stored by a commit after which the PG held `stats`.
    pub(crate) fn encode(&self, stats: PgStats) -> Vec<u8> {
        let mut encoder = Encoder::new(LOG_ENTRY_WITH_STATS_RECORD);
        self.version.encode(&mut encoder);
        self.prior_version.encode(&mut encoder);
        encoder.u8(match self.op {
            LogOp::Modify => 1,
            LogOp::Delete => 2,
        });
        match self.reqid {
            Some(reqid) => encoder.u8(1).u64(reqid.client).u64(reqid.tid),
            None => encoder.u8(0),
        };
        encoder
            .u64(time_to_nanos(self.mtime))
            .bytes(self.object.namespace.as_bytes())
            .bytes(self.object.name.as_bytes())
            .u64(stats.objects)
            .u64(stats.bytes);
        encoder.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> DecodeResult<Self> {
        Self::decode_with_stats(bytes).map(|(entry, _)| entry)
    }

    /// The entry and, for entries written since format 4, the PG's statistics after it.
    pub(crate) fn decode_with_stats(bytes: &[u8]) -> DecodeResult<(Self, Option<PgStats>)> {
        let (mut decoder, record) =
            Decoder::any_of(bytes, LOG_ENTRY_RECORD..=LOG_ENTRY_WITH_STATS_RECORD)?;
        let version = Eversion::decode(&mut decoder)?;
        let prior_version = Eversion::decode(&mut decoder)?;
        let op = match decoder.u8()? {
            1 => LogOp::Modify,
            2 => LogOp::Delete,
            _ => return Err("unknown log op"),
        };
        let reqid = match decoder.u8()? {
            0 => None,
            1 => Some(ReqId::new(decoder.u64()?, decoder.u64()?)),
            _ => return Err("bad request id flag"),
        };
        let mtime = nanos_to_time(decoder.u64()?);
        let object = ObjectId::in_namespace(decoder.string()?, decoder.string()?);
        let stats = match record {
            LOG_ENTRY_WITH_STATS_RECORD => Some(PgStats {
                objects: decoder.u64()?,
                bytes: decoder.u64()?,
            }),
            _ => None,
        };
        decoder.finish()?;
        let entry = Self {
            version,
            prior_version,
            op,
            object,
            reqid,
            mtime,
        };
        Ok((entry, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let info = ObjectInfo {
            size: 12345,
            version: Eversion::new(3, 99),
            mtime: nanos_to_time(1_700_000_000_123_456_789),
        };
        assert_eq!(ObjectInfo::decode(&info.encode()).unwrap(), info);

        let pg = PgInfo {
            pgid: PgId::new(-2, 0x2f),
            last_update: Eversion::new(7, 40),
            log_tail: Eversion::new(5, 10),
            log_len: 30,
            stats: PgStats {
                objects: 4,
                bytes: 1 << 40,
            },
        };
        assert_eq!(PgInfo::decode(&pg.encode()).unwrap(), pg);

        for reqid in [None, Some(ReqId::new(u64::MAX, 7))] {
            let entry = LogEntry {
                version: Eversion::new(2, 3),
                prior_version: Eversion::new(1, 1),
                op: LogOp::Delete,
                object: ObjectId::in_namespace("ns", "obj\0with nul"),
                reqid,
                mtime: nanos_to_time(42),
            };
            let stats = PgStats {
                objects: 9,
                bytes: u64::MAX,
            };
            let stored = entry.encode(stats);
            assert_eq!(
                LogEntry::decode_with_stats(&stored).unwrap(),
                (entry.clone(), Some(stats))
            );
            // Format 3's record is the same entry without the statistics.
            let mut format_3 = stored[..stored.len() - 16].to_vec();
            format_3[0] = LOG_ENTRY_RECORD;
            assert_eq!(
                LogEntry::decode_with_stats(&format_3).unwrap(),
                (entry, None)
            );
        }
    }

    #[test]
    fn eversion_sort_key_orders_like_eversion() {
        let versions = [
            Eversion::new(0, 0),
            Eversion::new(0, u64::MAX),
            Eversion::new(1, 0),
            Eversion::new(1, 1 << 40),
            Eversion::new(u32::MAX, 2),
        ];
        for pair in versions.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].sort_key() < pair[1].sort_key());
        }
        assert_eq!(Eversion::new(5, 42).to_string(), "5'42");
    }

    #[test]
    fn garbage_records_are_refused() {
        assert!(ObjectInfo::decode(&[]).is_err());
        assert!(ObjectInfo::decode(&[1, 2, 3]).is_err());
        assert!(PgInfo::decode(&[9; 60]).is_err());
        let mut entry = LogEntry {
            version: Eversion::new(1, 1),
            prior_version: Eversion::ZERO,
            op: LogOp::Modify,
            object: ObjectId::new("x"),
            reqid: None,
            mtime: UNIX_EPOCH,
        }
        .encode(PgStats::default());
        entry.push(0);
        assert!(LogEntry::decode(&entry).is_err());
    }
}
