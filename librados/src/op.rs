//! Compound operations on one object, like librados' `ObjectWriteOperation` and
//! `ObjectReadOperation`: [`WriteOp`] and [`ReadOp`] collect sub-ops that the primary applies
//! atomically (writes) or in order (reads), and convert to osd.proto's `SubOp`s at this
//! edge. Data is carried as [`Bytes`] so that a buffer handed to a write is not copied on its
//! way into the request.
//!
//! The read results come back as [`OpResult`]s, one per sub-op, converted from osd.proto's
//! `SubOpResult`.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use proto::osd::{self as wire, sub_op::Op as Wire};

/// An object's version (Ceph's `eversion_t`): the epoch in which the primary ordered the
/// last write, and the PG's write counter. Versions of one object only grow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Version {
    /// The epoch of the write.
    pub epoch: u32,
    /// The PG's write counter.
    pub version: u64,
}

impl Version {
    /// Converts osd.proto's `Eversion`.
    pub fn from_proto(version: &wire::Eversion) -> Self {
        Version {
            epoch: version.epoch,
            version: version.version,
        }
    }

    /// Converts to osd.proto's `Eversion`.
    pub fn to_proto(self) -> wire::Eversion {
        wire::Eversion {
            epoch: self.epoch,
            version: self.version,
        }
    }
}

impl fmt::Display for Version {
    /// Ceph's form, `epoch'version`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}'{}", self.epoch, self.version)
    }
}

/// An object's size, version and modification time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObjectStat {
    /// Bytes.
    pub size: u64,
    /// The last write's version.
    pub version: Version,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: u64,
}

impl ObjectStat {
    fn from_proto(stat: &wire::ObjectStat) -> Self {
        ObjectStat {
            size: stat.size,
            version: stat
                .version
                .as_ref()
                .map(Version::from_proto)
                .unwrap_or_default(),
            mtime_ns: stat.mtime_ns,
        }
    }
}

/// One page of omap entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OmapPage {
    /// Entries in key order (values empty when listing keys only).
    pub entries: Vec<(Bytes, Bytes)>,
    /// More entries follow the last one (list again from its key).
    pub more: bool,
}

/// The result of one sub-op of a [`ReadOp`] (or of a [`WriteOp`]: always [`OpResult::None`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// Guards and writes return nothing.
    None,
    /// The bytes a `read` returned.
    Data(Bytes),
    /// A `stat`.
    Stat(ObjectStat),
    /// A `get_xattr`.
    XattrValue(Bytes),
    /// A `get_xattrs`.
    Xattrs(BTreeMap<String, Bytes>),
    /// An `omap_list` or `omap_get` page.
    Omap(OmapPage),
}

impl OpResult {
    /// Converts osd.proto's `SubOpResult`.
    pub fn from_proto(result: wire::SubOpResult) -> Self {
        use wire::sub_op_result::Result as R;
        match result.result {
            None => OpResult::None,
            Some(R::Data(data)) => OpResult::Data(data),
            Some(R::Stat(stat)) => OpResult::Stat(ObjectStat::from_proto(&stat)),
            Some(R::XattrValue(value)) => OpResult::XattrValue(value),
            Some(R::Xattrs(xattrs)) => OpResult::Xattrs(xattrs.entries.into_iter().collect()),
            Some(R::Omap(page)) => OpResult::Omap(OmapPage {
                entries: page
                    .entries
                    .into_iter()
                    .map(|entry| (entry.key, entry.value))
                    .collect(),
                more: page.more,
            }),
        }
    }
}

/// What a [`ReadOp`] returned: the object's version and one result per sub-op, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The version read.
    pub version: Version,
    /// One result per sub-op.
    pub results: Vec<OpResult>,
}

/// Sub-ops that both kinds of op accept.
fn assert_version_op(version: Version) -> wire::SubOp {
    sub(Wire::AssertVersion(version.to_proto()))
}

fn sub(op: Wire) -> wire::SubOp {
    wire::SubOp { op: Some(op) }
}

/// A compound write on one object: guards and writes, applied atomically or not at all.
#[derive(Clone, Debug, Default)]
pub struct WriteOp {
    ops: Vec<wire::SubOp>,
    /// Bytes of data and values carried, for the client's message-size check.
    payload: usize,
}

impl WriteOp {
    /// An empty op.
    pub fn new() -> Self {
        WriteOp::default()
    }

    /// Number of sub-ops.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when no sub-op was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes of data, keys and values the op carries.
    pub fn payload_bytes(&self) -> usize {
        self.payload
    }

    /// Fails the whole op with `NotFound` unless the object exists.
    pub fn assert_exists(mut self) -> Self {
        self.ops.push(sub(Wire::AssertExists(wire::Empty {})));
        self
    }

    /// Fails the whole op with `VersionMismatch` unless the object is at `version`.
    pub fn assert_version(mut self, version: Version) -> Self {
        self.ops.push(assert_version_op(version));
        self
    }

    /// Creates the object; with `exclusive`, fails with `Exists` when it exists.
    pub fn create(mut self, exclusive: bool) -> Self {
        self.ops
            .push(sub(Wire::Create(wire::CreateOp { exclusive })));
        self
    }

    /// Writes `data` at `offset` (extending the object as needed).
    pub fn write(mut self, offset: u64, data: impl Into<Bytes>) -> Self {
        let data = data.into();
        self.payload += data.len();
        self.ops
            .push(sub(Wire::Write(wire::WriteOp { offset, data })));
        self
    }

    /// Replaces the object's data with `data`.
    pub fn write_full(mut self, data: impl Into<Bytes>) -> Self {
        let data = data.into();
        self.payload += data.len();
        self.ops
            .push(sub(Wire::WriteFull(wire::WriteFullOp { data })));
        self
    }

    /// Appends `data` at the object's end.
    pub fn append(mut self, data: impl Into<Bytes>) -> Self {
        let data = data.into();
        self.payload += data.len();
        self.ops.push(sub(Wire::Append(wire::AppendOp { data })));
        self
    }

    /// Sets the object's size (cutting or extending with zeros).
    pub fn truncate(mut self, size: u64) -> Self {
        self.ops
            .push(sub(Wire::Truncate(wire::TruncateOp { size })));
        self
    }

    /// Zeroes `length` bytes at `offset`.
    pub fn zero(mut self, offset: u64, length: u64) -> Self {
        self.ops
            .push(sub(Wire::Zero(wire::ZeroOp { offset, length })));
        self
    }

    /// Removes the object.
    pub fn remove(mut self) -> Self {
        self.ops.push(sub(Wire::Remove(wire::Empty {})));
        self
    }

    /// Sets an extended attribute.
    pub fn set_xattr(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        let name = name.into();
        let value = value.into();
        self.payload += name.len() + value.len();
        self.ops
            .push(sub(Wire::SetXattr(wire::SetXattrOp { name, value })));
        self
    }

    /// Removes an extended attribute.
    pub fn rm_xattr(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.payload += name.len();
        self.ops.push(sub(Wire::RmXattr(name)));
        self
    }

    /// Sets omap entries.
    pub fn omap_set<K, V>(mut self, entries: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<Bytes>,
        V: Into<Bytes>,
    {
        let entries: Vec<wire::OmapEntry> = entries
            .into_iter()
            .map(|(key, value)| wire::OmapEntry {
                key: key.into(),
                value: value.into(),
            })
            .collect();
        self.payload += entries
            .iter()
            .map(|entry| entry.key.len() + entry.value.len())
            .sum::<usize>();
        self.ops
            .push(sub(Wire::OmapSet(wire::OmapSetOp { entries })));
        self
    }

    /// Removes omap keys.
    pub fn omap_rm<K: Into<Bytes>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        let keys: Vec<Bytes> = keys.into_iter().map(Into::into).collect();
        self.payload += keys.iter().map(Bytes::len).sum::<usize>();
        self.ops.push(sub(Wire::OmapRm(wire::OmapRmOp { keys })));
        self
    }

    /// Removes every omap entry.
    pub fn omap_clear(mut self) -> Self {
        self.ops.push(sub(Wire::OmapClear(wire::Empty {})));
        self
    }

    /// The sub-ops, for the request.
    pub(crate) fn into_proto(self) -> Vec<wire::SubOp> {
        self.ops
    }
}

/// A compound read on one object: guards and reads, answered together at one version.
#[derive(Clone, Debug, Default)]
pub struct ReadOp {
    ops: Vec<wire::SubOp>,
}

impl ReadOp {
    /// An empty op.
    pub fn new() -> Self {
        ReadOp::default()
    }

    /// Number of sub-ops (each gets one [`OpResult`]).
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when no sub-op was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Fails with `NotFound` unless the object exists.
    pub fn assert_exists(mut self) -> Self {
        self.ops.push(sub(Wire::AssertExists(wire::Empty {})));
        self
    }

    /// Fails with `VersionMismatch` unless the object is at `version`.
    pub fn assert_version(mut self, version: Version) -> Self {
        self.ops.push(assert_version_op(version));
        self
    }

    /// Reads `length` bytes at `offset` (0: to the end); short at the end of the object.
    pub fn read(mut self, offset: u64, length: u64) -> Self {
        self.ops
            .push(sub(Wire::Read(wire::ReadOp { offset, length })));
        self
    }

    /// The object's size, version and mtime.
    pub fn stat(mut self) -> Self {
        self.ops.push(sub(Wire::Stat(wire::Empty {})));
        self
    }

    /// One extended attribute.
    pub fn get_xattr(mut self, name: impl Into<String>) -> Self {
        self.ops.push(sub(Wire::GetXattr(name.into())));
        self
    }

    /// Every extended attribute.
    pub fn get_xattrs(mut self) -> Self {
        self.ops.push(sub(Wire::GetXattrs(wire::Empty {})));
        self
    }

    /// A page of omap entries with keys after `start_after` and starting with `prefix`
    /// (both may be empty), at most `max` (0: the OSD's page size), with or without values.
    pub fn omap_list(
        mut self,
        start_after: impl Into<Bytes>,
        prefix: impl Into<Bytes>,
        max: u32,
        with_values: bool,
    ) -> Self {
        self.ops.push(sub(Wire::OmapList(wire::OmapListOp {
            start_after: start_after.into(),
            prefix: prefix.into(),
            max,
            with_values,
        })));
        self
    }

    /// The values of these omap keys (missing keys are left out of the page).
    pub fn omap_get<K: Into<Bytes>>(mut self, keys: impl IntoIterator<Item = K>) -> Self {
        let keys = keys.into_iter().map(Into::into).collect();
        self.ops.push(sub(Wire::OmapGet(wire::OmapGetOp { keys })));
        self
    }

    /// The sub-ops, for the request.
    pub(crate) fn into_proto(self) -> Vec<wire::SubOp> {
        self.ops
    }

    /// An upper bound of the data the reply carries, when the sub-ops fix one: reads of a
    /// given length, stats and assertions. Attributes, omap pages and reads to the end of
    /// the object are bounded only by the object, so they have none.
    pub(crate) fn reply_bound(&self) -> Option<u64> {
        self.bound_with(|length| length)
    }

    /// The same bound for the reply's message alone when it travels over a link: read data
    /// of at least `proto::link::BULK_MIN_BYTES` goes as bulk segments, outside it.
    pub(crate) fn reply_message_bound(&self) -> Option<u64> {
        let inline_max = proto::link::BULK_MIN_BYTES as u64 - 1;
        self.bound_with(|length| length.min(inline_max))
    }

    /// The sum of `read_bytes` of each read's length, if every sub-op bounds its reply.
    fn bound_with(&self, read_bytes: impl Fn(u64) -> u64) -> Option<u64> {
        self.ops.iter().try_fold(0u64, |bound, op| {
            let bytes = match op.op.as_ref()? {
                Wire::Read(read) if read.length > 0 => read_bytes(read.length),
                Wire::Stat(_) | Wire::AssertExists(_) | Wire::AssertVersion(_) => 0,
                _ => return None,
            };
            bound.checked_add(bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_of_known_length_bound_their_reply() {
        let bounded = ReadOp::new()
            .assert_exists()
            .stat()
            .read(10, 4096)
            .read(0, 100);
        assert_eq!(bounded.reply_bound(), Some(4196));
        assert_eq!(bounded.reply_message_bound(), Some(4196));
        let large = ReadOp::new().read(0, 4 << 20).read(0, 10);
        assert_eq!(large.reply_bound(), Some((4 << 20) + 10));
        // The 4 MiB travels outside the message; at most the bulk bound less one stays in.
        assert_eq!(
            large.reply_message_bound(),
            Some(proto::link::BULK_MIN_BYTES as u64 - 1 + 10)
        );
        assert_eq!(ReadOp::new().read(0, 0).reply_bound(), None, "to the end");
        assert_eq!(ReadOp::new().stat().get_xattr("a").reply_bound(), None);
        assert_eq!(ReadOp::new().omap_get([&b"k"[..]]).reply_bound(), None);
        assert_eq!(
            ReadOp::new().read(0, u64::MAX).read(0, 1).reply_bound(),
            None
        );
    }

    #[test]
    fn write_ops_convert_in_order_and_count_payload() {
        let op = WriteOp::new()
            .create(true)
            .assert_version(Version {
                epoch: 3,
                version: 9,
            })
            .write(4096, &b"abcd"[..])
            .append(vec![1u8, 2])
            .set_xattr("user.a", &b"xyz"[..])
            .omap_set([(&b"k1"[..], &b"v1"[..])])
            .omap_rm([&b"k0"[..]])
            .truncate(10)
            .remove();
        assert_eq!(op.len(), 9);
        assert_eq!(op.payload_bytes(), 4 + 2 + 6 + 3 + 4 + 2);
        let ops = op.into_proto();
        assert_eq!(
            ops[0].op,
            Some(Wire::Create(wire::CreateOp { exclusive: true }))
        );
        assert_eq!(
            ops[1].op,
            Some(Wire::AssertVersion(wire::Eversion {
                epoch: 3,
                version: 9
            }))
        );
        assert_eq!(
            ops[2].op,
            Some(Wire::Write(wire::WriteOp {
                offset: 4096,
                data: Bytes::from_static(b"abcd")
            }))
        );
        assert!(matches!(ops[3].op, Some(Wire::Append(ref a)) if a.data.as_ref() == [1, 2]));
        assert!(
            matches!(ops[4].op, Some(Wire::SetXattr(ref x)) if x.name == "user.a" && x.value.as_ref() == b"xyz")
        );
        assert!(
            matches!(ops[5].op, Some(Wire::OmapSet(ref s)) if s.entries.len() == 1 && s.entries[0].key.as_ref() == b"k1")
        );
        assert!(matches!(ops[6].op, Some(Wire::OmapRm(ref r)) if r.keys.len() == 1));
        assert_eq!(
            ops[7].op,
            Some(Wire::Truncate(wire::TruncateOp { size: 10 }))
        );
        assert_eq!(ops[8].op, Some(Wire::Remove(wire::Empty {})));
    }

    #[test]
    fn write_data_is_shared_not_copied() {
        let data = Bytes::from(vec![7u8; 1 << 20]);
        let pointer = data.as_ptr();
        let ops = WriteOp::new().write_full(data).into_proto();
        match &ops[0].op {
            Some(Wire::WriteFull(full)) => assert_eq!(full.data.as_ptr(), pointer),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn read_ops_and_results_convert() {
        let ops = ReadOp::new()
            .stat()
            .read(0, 0)
            .get_xattr("a")
            .get_xattrs()
            .omap_list(&b""[..], &b"p"[..], 10, false)
            .omap_get([&b"k"[..]])
            .into_proto();
        assert_eq!(ops.len(), 6);
        assert!(
            matches!(ops[4].op, Some(Wire::OmapList(ref l)) if l.prefix.as_ref() == b"p" && l.max == 10 && !l.with_values)
        );

        use wire::sub_op_result::Result as R;
        let stat = OpResult::from_proto(wire::SubOpResult {
            result: Some(R::Stat(wire::ObjectStat {
                size: 5,
                version: Some(wire::Eversion {
                    epoch: 2,
                    version: 7,
                }),
                mtime_ns: 11,
            })),
        });
        assert_eq!(
            stat,
            OpResult::Stat(ObjectStat {
                size: 5,
                version: Version {
                    epoch: 2,
                    version: 7
                },
                mtime_ns: 11
            })
        );
        let omap = OpResult::from_proto(wire::SubOpResult {
            result: Some(R::Omap(wire::OmapPage {
                entries: vec![wire::OmapEntry {
                    key: Bytes::from_static(b"a"),
                    value: Bytes::from_static(b"1"),
                }],
                more: true,
            })),
        });
        assert_eq!(
            omap,
            OpResult::Omap(OmapPage {
                entries: vec![(Bytes::from_static(b"a"), Bytes::from_static(b"1"))],
                more: true
            })
        );
        assert_eq!(
            OpResult::from_proto(wire::SubOpResult { result: None }),
            OpResult::None
        );
        assert_eq!(
            Version {
                epoch: 4,
                version: 12
            }
            .to_string(),
            "4'12"
        );
    }
}
