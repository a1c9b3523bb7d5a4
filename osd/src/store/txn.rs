//! [`Transaction`]: a list of sub-ops on one object (like librados' `ObjectWriteOperation`),
//! its input checks, and the planner that turns it into one engine write batch.
//!
//! Sub-ops run in order against a private view of the object: guards check it, writes
//! change it, and nothing reaches the engine until every sub-op succeeded. Then the view's
//! changes become batch operations (range deletes first, so later puts survive them), and
//! the store adds the log entry and the PG info to the same batch. A failing sub-op
//! therefore leaves no trace.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use clustermap::{Epoch, PgId};
use kv::{Engine, KeyRange, WriteBatch};

use super::blocks::{BlockFile, BlockReader, Extent};
use super::chunk;
use super::config::StoreConfig;
use super::deferred::Deferred;
use super::error::{Result, StoreError};
use super::keys::{self, BLOCK_TAG, CHUNK_SIZE, DATA_TAG, OMAP_TAG, XATTR_TAG};
use super::stage::Staged;
use super::types::{Eversion, ObjectId, ObjectInfo, ReqId};

/// One sub-op of a [`Transaction`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Fails with `ObjectNotFound` unless the object exists at this point.
    AssertExists,
    /// Fails unless the object exists and its version (as the transaction found it) is
    /// this one: `ObjectNotFound` or `VersionMismatch`.
    AssertVersion(Eversion),
    /// Creates the object (empty) if it does not exist; with `exclusive`, fails with
    /// `ObjectExists` if it does.
    Create {
        /// Fail if the object exists.
        exclusive: bool,
    },
    /// Writes `data` at `offset`, growing the object if needed (a gap reads as zeros).
    /// Creates the object.
    Write {
        /// Where the data goes.
        offset: u64,
        /// The bytes.
        data: Bytes,
    },
    /// Replaces the object's data (not its xattrs or omap) with `data`. Creates the object.
    WriteFull {
        /// The new content.
        data: Bytes,
    },
    /// Writes `data` at the object's current end. Creates the object.
    Append {
        /// The bytes.
        data: Bytes,
    },
    /// Sets the object's size: shrinking drops the data beyond, growing adds zeros.
    /// Creates the object.
    Truncate {
        /// The new size.
        size: u64,
    },
    /// Turns `[offset, offset + len)` into zeros (whole chunks become holes) without
    /// changing the size; the part past the end is ignored. Does nothing on a missing object.
    Zero {
        /// Start of the range.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// Removes the object with its data, xattrs and omap (`ObjectNotFound` if absent).
    /// Later sub-ops may create it anew.
    Remove,
    /// Sets an xattr. Creates the object.
    SetXattr {
        /// The attribute's name (non-empty).
        name: String,
        /// Its value.
        value: Vec<u8>,
    },
    /// Removes an xattr: `ObjectNotFound` or `XattrNotFound` if it is not there.
    RmXattr {
        /// The attribute's name.
        name: String,
    },
    /// Sets omap entries. Creates the object.
    OmapSet {
        /// Keys and values.
        entries: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Removes omap keys (absent keys are fine; the object must exist).
    OmapRm {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// Removes every omap entry (the object must exist).
    OmapClear,
}

impl WriteOp {
    /// The data bytes this op carries (writes, xattr values, omap values).
    pub fn payload_len(&self) -> u64 {
        let len = match self {
            WriteOp::Write { data, .. }
            | WriteOp::WriteFull { data }
            | WriteOp::Append { data } => data.len(),
            WriteOp::SetXattr { name, value } => name.len() + value.len(),
            WriteOp::OmapSet { entries } => entries.iter().map(|(k, v)| k.len() + v.len()).sum(),
            _ => 0,
        };
        len as u64
    }

    /// Whether the op adds data (new objects, bytes, xattrs, omap entries), so that a full
    /// OSD refuses it; removals, truncations (growing adds holes, not bytes) and zeroing
    /// are accepted on a full cluster, as they are how space is freed.
    pub fn needs_space(&self) -> bool {
        match self {
            WriteOp::Create { .. }
            | WriteOp::Write { .. }
            | WriteOp::WriteFull { .. }
            | WriteOp::Append { .. }
            | WriteOp::SetXattr { .. }
            | WriteOp::OmapSet { .. } => true,
            WriteOp::AssertExists
            | WriteOp::AssertVersion(_)
            | WriteOp::Truncate { .. }
            | WriteOp::Zero { .. }
            | WriteOp::Remove
            | WriteOp::RmXattr { .. }
            | WriteOp::OmapRm { .. }
            | WriteOp::OmapClear => false,
        }
    }

    /// Whether the op succeeds whatever state the object is in, so that every replica's
    /// outcome is known before the primary's own: no assertion, no exclusive create, no
    /// removal of something that must exist, no append (which may pass the size limit).
    pub fn is_unconditional(&self) -> bool {
        match self {
            WriteOp::Create { exclusive } => !exclusive,
            WriteOp::Write { .. }
            | WriteOp::WriteFull { .. }
            | WriteOp::Truncate { .. }
            | WriteOp::Zero { .. }
            | WriteOp::SetXattr { .. }
            | WriteOp::OmapSet { .. } => true,
            WriteOp::AssertExists
            | WriteOp::AssertVersion(_)
            | WriteOp::Append { .. }
            | WriteOp::Remove
            | WriteOp::RmXattr { .. }
            | WriteOp::OmapRm { .. }
            | WriteOp::OmapClear => false,
        }
    }

    /// The data bytes of a whole transaction's ops.
    pub fn payload_len_of(ops: &[WriteOp]) -> u64 {
        ops.iter().map(WriteOp::payload_len).sum()
    }
}

/// An atomic list of sub-ops on one object of one PG, with its request id and epoch.
/// Committed by [`super::ObjectStore::commit`] whole or not at all.
///
/// ```
/// # use osd::store::{ObjectId, ReqId, Transaction};
/// # use clustermap::PgId;
/// let mut txn = Transaction::new(PgId::new(1, 0), ObjectId::new("greeting"), 5);
/// txn.reqid(ReqId::new(4100, 1))
///     .create(true)
///     .write_full(b"hello".to_vec())
///     .set_xattr("lang", b"en".to_vec());
/// assert_eq!(txn.ops().len(), 3);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pg: PgId,
    object: ObjectId,
    epoch: Epoch,
    reqid: Option<ReqId>,
    version: Option<Eversion>,
    mtime: Option<SystemTime>,
    ops: Vec<WriteOp>,
}

impl Transaction {
    /// An empty transaction on `object` of `pg`, ordered in map epoch `epoch`.
    pub fn new(pg: PgId, object: ObjectId, epoch: Epoch) -> Self {
        Self {
            pg,
            object,
            epoch,
            reqid: None,
            version: None,
            mtime: None,
            ops: Vec::new(),
        }
    }

    /// The client request this transaction carries out: a second commit with the same id
    /// (a resend) is not applied again but returns the first one's version. Ids are
    /// remembered as long as their entry is in the PG log (`pg_log_max_entries`); only
    /// committed transactions are remembered, so a resend of one that failed runs again.
    pub fn reqid(&mut self, reqid: ReqId) -> &mut Self {
        self.reqid = Some(reqid);
        self
    }

    /// Commits at exactly this version instead of the PG's next one (a replica applying
    /// the primary's log entry). It must be newer than the PG's last update.
    pub fn at_version(&mut self, version: Eversion) -> &mut Self {
        self.version = Some(version);
        self
    }

    /// The modification time to record (default: the clock at commit).
    pub fn mtime(&mut self, mtime: SystemTime) -> &mut Self {
        self.mtime = Some(mtime);
        self
    }

    /// Adds a sub-op.
    pub fn push(&mut self, op: WriteOp) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Adds [`WriteOp::AssertExists`].
    pub fn assert_exists(&mut self) -> &mut Self {
        self.push(WriteOp::AssertExists)
    }

    /// Adds [`WriteOp::AssertVersion`].
    pub fn assert_version(&mut self, version: Eversion) -> &mut Self {
        self.push(WriteOp::AssertVersion(version))
    }

    /// Adds [`WriteOp::Create`].
    pub fn create(&mut self, exclusive: bool) -> &mut Self {
        self.push(WriteOp::Create { exclusive })
    }

    /// Adds [`WriteOp::Write`].
    pub fn write(&mut self, offset: u64, data: impl Into<Bytes>) -> &mut Self {
        self.push(WriteOp::Write {
            offset,
            data: data.into(),
        })
    }

    /// Adds [`WriteOp::WriteFull`].
    pub fn write_full(&mut self, data: impl Into<Bytes>) -> &mut Self {
        self.push(WriteOp::WriteFull { data: data.into() })
    }

    /// Adds [`WriteOp::Append`].
    pub fn append(&mut self, data: impl Into<Bytes>) -> &mut Self {
        self.push(WriteOp::Append { data: data.into() })
    }

    /// Adds [`WriteOp::Truncate`].
    pub fn truncate(&mut self, size: u64) -> &mut Self {
        self.push(WriteOp::Truncate { size })
    }

    /// Adds [`WriteOp::Zero`].
    pub fn zero(&mut self, offset: u64, len: u64) -> &mut Self {
        self.push(WriteOp::Zero { offset, len })
    }

    /// Adds [`WriteOp::Remove`].
    pub fn remove(&mut self) -> &mut Self {
        self.push(WriteOp::Remove)
    }

    /// Adds [`WriteOp::SetXattr`].
    pub fn set_xattr(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.push(WriteOp::SetXattr {
            name: name.into(),
            value: value.into(),
        })
    }

    /// Adds [`WriteOp::RmXattr`].
    pub fn rm_xattr(&mut self, name: impl Into<String>) -> &mut Self {
        self.push(WriteOp::RmXattr { name: name.into() })
    }

    /// Adds [`WriteOp::OmapSet`].
    pub fn omap_set<K: Into<Vec<u8>>, V: Into<Vec<u8>>>(
        &mut self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> &mut Self {
        let entries = entries
            .into_iter()
            .map(|(key, value)| (key.into(), value.into()))
            .collect();
        self.push(WriteOp::OmapSet { entries })
    }

    /// Adds [`WriteOp::OmapRm`].
    pub fn omap_rm<K: Into<Vec<u8>>>(&mut self, keys: impl IntoIterator<Item = K>) -> &mut Self {
        let keys = keys.into_iter().map(Into::into).collect();
        self.push(WriteOp::OmapRm { keys })
    }

    /// Adds [`WriteOp::OmapClear`].
    pub fn omap_clear(&mut self) -> &mut Self {
        self.push(WriteOp::OmapClear)
    }

    /// The PG.
    pub fn pg(&self) -> PgId {
        self.pg
    }

    /// The object.
    pub fn object(&self) -> &ObjectId {
        &self.object
    }

    /// The epoch the transaction was ordered in.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The request id, if any.
    pub fn request_id(&self) -> Option<ReqId> {
        self.reqid
    }

    /// The fixed version set by [`Transaction::at_version`], if any.
    pub fn fixed_version(&self) -> Option<Eversion> {
        self.version
    }

    /// The modification time set by [`Transaction::mtime`], if any.
    pub fn modification_time(&self) -> Option<SystemTime> {
        self.mtime
    }

    /// The sub-ops, in order.
    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// Checks everything that does not depend on stored state: names, sizes, offsets.
    pub(crate) fn validate(&self, config: &StoreConfig) -> Result<()> {
        validate_object(&self.object, config)?;
        if self.ops.is_empty() {
            return Err(StoreError::invalid("transaction", "it holds no sub-op"));
        }
        for op in &self.ops {
            match op {
                WriteOp::Write { offset, data } => {
                    self.check_extent(*offset, data.len() as u64, config)?;
                }
                WriteOp::WriteFull { data } | WriteOp::Append { data } => {
                    self.check_extent(0, data.len() as u64, config)?;
                }
                WriteOp::Truncate { size } => self.check_extent(*size, 0, config)?,
                WriteOp::Zero { offset, len } => {
                    offset.checked_add(*len).ok_or(StoreError::OffsetOverflow {
                        offset: *offset,
                        len: *len,
                    })?;
                }
                WriteOp::SetXattr { name, value } => {
                    validate_xattr_name(name, config)?;
                    if value.len() > config.max_xattr_value_len {
                        return Err(StoreError::invalid(
                            "xattr value",
                            format!(
                                "{} bytes exceed the limit of {}",
                                value.len(),
                                config.max_xattr_value_len
                            ),
                        ));
                    }
                }
                WriteOp::RmXattr { name } => validate_xattr_name(name, config)?,
                WriteOp::OmapSet { entries } => {
                    for (key, value) in entries {
                        validate_omap_key(key, config)?;
                        if value.len() > config.max_omap_value_len {
                            return Err(StoreError::invalid(
                                "omap value",
                                format!(
                                    "{} bytes exceed the limit of {}",
                                    value.len(),
                                    config.max_omap_value_len
                                ),
                            ));
                        }
                    }
                }
                WriteOp::OmapRm { keys } => {
                    for key in keys {
                        validate_omap_key(key, config)?;
                    }
                }
                WriteOp::AssertExists
                | WriteOp::AssertVersion(_)
                | WriteOp::Create { .. }
                | WriteOp::Remove
                | WriteOp::OmapClear => {}
            }
        }
        Ok(())
    }

    fn check_extent(&self, offset: u64, len: u64, config: &StoreConfig) -> Result<()> {
        let end = offset
            .checked_add(len)
            .ok_or(StoreError::OffsetOverflow { offset, len })?;
        if end > config.max_object_size {
            return Err(StoreError::ObjectTooLarge {
                object: self.object.clone(),
                size: end,
                max: config.max_object_size,
            });
        }
        Ok(())
    }
}

/// Checks an object's name and namespace against the configured limits.
pub(crate) fn validate_object(object: &ObjectId, config: &StoreConfig) -> Result<()> {
    let reason = if object.name.is_empty() {
        "the name is empty".to_owned()
    } else if object.name.len() > config.max_object_name_len {
        format!(
            "the name has {} bytes, over the limit of {}",
            object.name.len(),
            config.max_object_name_len
        )
    } else if object.namespace.len() > config.max_namespace_len {
        format!(
            "the namespace has {} bytes, over the limit of {}",
            object.namespace.len(),
            config.max_namespace_len
        )
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidObjectName { reason })
}

pub(crate) fn validate_xattr_name(name: &str, config: &StoreConfig) -> Result<()> {
    if name.is_empty() || name.len() > config.max_xattr_name_len {
        return Err(StoreError::invalid(
            "xattr name",
            format!(
                "{name:?} must have 1 to {} bytes",
                config.max_xattr_name_len
            ),
        ));
    }
    Ok(())
}

pub(crate) fn validate_omap_key(key: &[u8], config: &StoreConfig) -> Result<()> {
    if key.len() > config.max_omap_key_len {
        return Err(StoreError::invalid(
            "omap key",
            format!(
                "{} bytes exceed the limit of {}",
                key.len(),
                config.max_omap_key_len
            ),
        ));
    }
    Ok(())
}

/// Where the planner reads the object's stored state.
pub(crate) struct PlanContext<'a> {
    pub engine: &'a dyn Engine,
    pub keyspace: &'a str,
    pub pg: PgId,
    pub object: &'a ObjectId,
    /// The encoded object key.
    pub oid: &'a [u8],
    pub config: &'a StoreConfig,
    /// The store's block file, if it has one.
    pub blocks: Option<&'a BlockFile>,
    /// The block file, when chunks may be written to it deferred (see `deferred`).
    pub deferred: Option<&'a Arc<BlockFile>>,
}

impl PlanContext<'_> {
    fn not_found(&self) -> StoreError {
        StoreError::ObjectNotFound {
            pg: self.pg,
            object: self.object.clone(),
        }
    }

    /// The range a block record of this object names.
    fn block_record(&self, key: &[u8], value: &[u8]) -> Result<Extent> {
        keys::decode_extent(value).ok_or_else(|| {
            StoreError::corrupt_record(
                format!(
                    "block record {key:02x?} of object {} in pg {}",
                    self.object, self.pg
                ),
                "it is not an aligned range",
            )
        })
    }

    /// Reads and verifies one stored chunk (empty if absent).
    pub fn load_chunk(&self, chunk: u32) -> Result<Vec<u8>> {
        let key = keys::data_key(self.oid, chunk);
        match self.engine.get(self.keyspace, &key)? {
            None => Ok(Vec::new()),
            Some(value) => chunk::load(
                &value,
                self.blocks
                    .map(|blocks| BlockReader::new(blocks, Vec::new()))
                    .as_mut(),
            )
            .map(std::borrow::Cow::into_owned)
            .map_err(|detail| StoreError::Corruption {
                pg: self.pg,
                object: self.object.clone(),
                chunk,
                detail,
            }),
        }
    }
}

/// The key range of `tag oid`-prefixed keys, starting at `tag oid start_suffix`.
pub(crate) fn object_section(tag: u8, oid: &[u8], start_suffix: &[u8]) -> KeyRange {
    let prefix = keys::tagged(tag, &[oid]);
    let end = match kv::keys::prefix_successor(&prefix) {
        Some(successor) => Bound::Excluded(successor),
        None => Bound::Unbounded,
    };
    let mut start = prefix;
    start.extend_from_slice(start_suffix);
    KeyRange::new(Bound::Included(start), end)
}

/// The result of planning: the batch of object changes, and the object before and after.
pub(crate) struct Plan {
    pub batch: WriteBatch,
    pub after: Option<ObjectInfo>,
    /// Block file ranges the batch stops referencing: free once it is durable.
    pub freed: Vec<Extent>,
    /// Block file ranges deferred chunks were written to: the batch references them.
    pub deferred: Deferred,
}

/// A chunk's new content in the view.
enum Content<'o> {
    /// Bytes to store in the engine (empty: a hole, the stored chunk is deleted).
    Bytes(Cow<'o, [u8]>),
    /// Written whole by sub-op `op` from `data`, already staged in the block file.
    Staged { op: usize, data: &'o [u8] },
}

impl Content<'_> {
    fn to_mut(&mut self) -> &mut Vec<u8> {
        if let Content::Staged { data, .. } = *self {
            *self = Content::Bytes(Cow::Owned(data.to_vec()));
        }
        match self {
            Content::Bytes(bytes) => bytes.to_mut(),
            Content::Staged { .. } => unreachable!("replaced above"),
        }
    }
}

/// The object as the sub-ops so far have left it.
struct View<'a, 'o> {
    ctx: &'a PlanContext<'a>,
    /// The object's metadata when the transaction started.
    before: Option<ObjectInfo>,
    exists: bool,
    size: u64,
    /// Stored chunks with an index at or above this are gone (truncate, remove).
    stored_dropped_from: Option<u32>,
    /// New chunk contents. A chunk written whole borrows the op's data, so the bytes are
    /// copied once, into the batch (or not at all, when it was staged).
    chunks: BTreeMap<u32, Content<'o>>,
    staged: &'a mut Staged,
    /// The index of the sub-op being applied.
    op: usize,
    xattrs_cleared: bool,
    xattrs: BTreeMap<String, Option<Vec<u8>>>,
    omap_cleared: bool,
    omap: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

fn chunk_of(offset: u64) -> u32 {
    // The config caps objects at u32::MAX chunks and extents are checked against it first.
    u32::try_from(offset / CHUNK_SIZE as u64).unwrap_or(u32::MAX)
}

fn chunk_start(chunk: u32) -> u64 {
    u64::from(chunk) * CHUNK_SIZE as u64
}

impl<'a, 'o> View<'a, 'o> {
    fn new(ctx: &'a PlanContext<'a>, before: Option<ObjectInfo>, staged: &'a mut Staged) -> Self {
        Self {
            ctx,
            before,
            exists: before.is_some(),
            size: before.map_or(0, |info| info.size),
            stored_dropped_from: None,
            chunks: BTreeMap::new(),
            staged,
            op: 0,
            xattrs_cleared: false,
            xattrs: BTreeMap::new(),
            omap_cleared: false,
            omap: BTreeMap::new(),
        }
    }

    fn require_exists(&self) -> Result<()> {
        if self.exists {
            Ok(())
        } else {
            Err(self.ctx.not_found())
        }
    }

    fn ensure_exists(&mut self) {
        if !self.exists {
            self.exists = true;
            self.size = 0;
        }
    }

    fn check_size(&self, size: u64) -> Result<()> {
        if size > self.ctx.config.max_object_size {
            return Err(StoreError::ObjectTooLarge {
                object: self.ctx.object.clone(),
                size,
                max: self.ctx.config.max_object_size,
            });
        }
        Ok(())
    }

    /// The chunk's current content, loaded (and verified) on first use.
    fn chunk_mut(&mut self, chunk: u32) -> Result<&mut Vec<u8>> {
        if !self.chunks.contains_key(&chunk) {
            let dropped = self.stored_dropped_from.is_some_and(|from| chunk >= from);
            let content = if dropped {
                Vec::new()
            } else {
                self.ctx.load_chunk(chunk)?
            };
            self.chunks
                .insert(chunk, Content::Bytes(Cow::Owned(content)));
        }
        Ok(self
            .chunks
            .get_mut(&chunk)
            .expect("inserted above")
            .to_mut())
    }

    /// Forgets stored and pending chunks from `first` on.
    fn drop_chunks_from(&mut self, first: u32) {
        self.stored_dropped_from = Some(self.stored_dropped_from.map_or(first, |d| d.min(first)));
        self.chunks.retain(|&chunk, _| chunk < first);
    }

    fn write(&mut self, offset: u64, data: &'o [u8]) -> Result<()> {
        let len = data.len() as u64;
        let end = offset
            .checked_add(len)
            .ok_or(StoreError::OffsetOverflow { offset, len })?;
        self.check_size(end)?;
        self.ensure_exists();
        if data.is_empty() {
            // As Ceph: an empty write creates the object but does not move its end.
            return Ok(());
        }
        let mut position = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let chunk = chunk_of(position);
            let in_chunk = (position - chunk_start(chunk)) as usize;
            let piece_len = rest.len().min(CHUNK_SIZE - in_chunk);
            let (piece, tail) = rest.split_at(piece_len);
            if piece_len == CHUNK_SIZE {
                // The whole chunk is replaced: no need to read the old one.
                let content = if self.staged.chunk(self.op, chunk, data).is_some() {
                    Content::Staged {
                        op: self.op,
                        data: piece,
                    }
                } else {
                    Content::Bytes(Cow::Borrowed(piece))
                };
                self.chunks.insert(chunk, content);
            } else {
                let content = self.chunk_mut(chunk)?;
                if content.len() < in_chunk + piece_len {
                    content.resize(in_chunk + piece_len, 0);
                }
                content[in_chunk..in_chunk + piece_len].copy_from_slice(piece);
            }
            position += piece_len as u64;
            rest = tail;
        }
        self.size = self.size.max(end);
        Ok(())
    }

    fn truncate(&mut self, size: u64) -> Result<()> {
        self.check_size(size)?;
        self.ensure_exists();
        if size < self.size {
            let kept_chunks = u32::try_from(size.div_ceil(CHUNK_SIZE as u64)).unwrap_or(u32::MAX);
            self.drop_chunks_from(kept_chunks);
            let in_chunk = (size % CHUNK_SIZE as u64) as usize;
            if in_chunk != 0 {
                self.chunk_mut(chunk_of(size))?.truncate(in_chunk);
            }
        }
        self.size = size;
        Ok(())
    }

    fn zero(&mut self, offset: u64, len: u64) -> Result<()> {
        if !self.exists {
            return Ok(());
        }
        let end = offset
            .checked_add(len)
            .ok_or(StoreError::OffsetOverflow { offset, len })?
            .min(self.size);
        let mut position = offset;
        while position < end {
            let chunk = chunk_of(position);
            let in_chunk = (position - chunk_start(chunk)) as usize;
            let piece_end = (end - chunk_start(chunk)).min(CHUNK_SIZE as u64) as usize;
            if in_chunk == 0 && piece_end == CHUNK_SIZE {
                self.chunks
                    .insert(chunk, Content::Bytes(Cow::Owned(Vec::new())));
            } else {
                let content = self.chunk_mut(chunk)?;
                if content.len() > in_chunk {
                    if piece_end >= content.len() {
                        content.truncate(in_chunk);
                    } else {
                        content[in_chunk..piece_end].fill(0);
                    }
                }
            }
            position = chunk_start(chunk) + piece_end as u64;
        }
        Ok(())
    }

    fn remove(&mut self) -> Result<()> {
        self.require_exists()?;
        self.exists = false;
        self.size = 0;
        self.drop_chunks_from(0);
        self.xattrs_cleared = true;
        self.xattrs.clear();
        self.omap_cleared = true;
        self.omap.clear();
        Ok(())
    }

    fn has_xattr(&self, name: &str) -> Result<bool> {
        if let Some(pending) = self.xattrs.get(name) {
            return Ok(pending.is_some());
        }
        if self.xattrs_cleared {
            return Ok(false);
        }
        let key = keys::xattr_key(self.ctx.oid, name);
        Ok(self.ctx.engine.get(self.ctx.keyspace, &key)?.is_some())
    }

    fn apply(&mut self, op: &'o WriteOp) -> Result<()> {
        match op {
            WriteOp::AssertExists => self.require_exists(),
            WriteOp::AssertVersion(expected) => {
                self.require_exists()?;
                let actual = self.before.map_or(Eversion::ZERO, |info| info.version);
                if actual != *expected {
                    return Err(StoreError::VersionMismatch {
                        pg: self.ctx.pg,
                        object: self.ctx.object.clone(),
                        expected: *expected,
                        actual,
                    });
                }
                Ok(())
            }
            WriteOp::Create { exclusive } => {
                if self.exists && *exclusive {
                    return Err(StoreError::ObjectExists {
                        pg: self.ctx.pg,
                        object: self.ctx.object.clone(),
                    });
                }
                self.ensure_exists();
                Ok(())
            }
            WriteOp::Write { offset, data } => self.write(*offset, data),
            WriteOp::WriteFull { data } => {
                self.check_size(data.len() as u64)?;
                self.ensure_exists();
                self.drop_chunks_from(0);
                self.size = 0;
                self.write(0, data)
            }
            WriteOp::Append { data } => self.write(self.size, data),
            WriteOp::Truncate { size } => self.truncate(*size),
            WriteOp::Zero { offset, len } => self.zero(*offset, *len),
            WriteOp::Remove => self.remove(),
            WriteOp::SetXattr { name, value } => {
                self.ensure_exists();
                self.xattrs.insert(name.clone(), Some(value.clone()));
                Ok(())
            }
            WriteOp::RmXattr { name } => {
                self.require_exists()?;
                if !self.has_xattr(name)? {
                    return Err(StoreError::XattrNotFound {
                        pg: self.ctx.pg,
                        object: self.ctx.object.clone(),
                        name: name.clone(),
                    });
                }
                self.xattrs.insert(name.clone(), None);
                Ok(())
            }
            WriteOp::OmapSet { entries } => {
                self.ensure_exists();
                for (key, value) in entries {
                    self.omap.insert(key.clone(), Some(value.clone()));
                }
                Ok(())
            }
            WriteOp::OmapRm { keys } => {
                self.require_exists()?;
                for key in keys {
                    self.omap.insert(key.clone(), None);
                }
                Ok(())
            }
            WriteOp::OmapClear => {
                self.require_exists()?;
                self.omap_cleared = true;
                self.omap.clear();
                Ok(())
            }
        }
    }

    /// The batch that makes the stored object look like the view, and the staged chunks
    /// it references.
    fn into_plan(self, version: Eversion, mtime: SystemTime) -> Result<Plan> {
        let ctx = self.ctx;
        let keyspace = ctx.keyspace;
        let mut batch = WriteBatch::new();
        // An object absent when the transaction started has no stored chunks: skipping the
        // range delete spares the engine a range scan on every new object's write_full.
        let stored = self.before.is_some();
        let mut freed = Vec::new();
        if let Some(first) = self.stored_dropped_from.filter(|_| stored) {
            let from = first.to_be_bytes();
            if ctx.blocks.is_some() {
                let records = object_section(BLOCK_TAG, ctx.oid, &from);
                for item in ctx.engine.scan(keyspace, records.clone())? {
                    let (key, value) = item?;
                    freed.push(ctx.block_record(&key, &value)?);
                }
                batch.delete_range(keyspace, records);
            }
            batch.delete_range(keyspace, object_section(DATA_TAG, ctx.oid, &from));
        }
        // The blocks of stored chunks being replaced (the range above covered the dropped
        // ones). Looked up before any staged chunk is taken, so a failure here leaves every
        // staged block to be given back.
        if stored && ctx.blocks.is_some() {
            for chunk in self.chunks.keys() {
                if self
                    .stored_dropped_from
                    .is_some_and(|first| *chunk >= first)
                {
                    continue;
                }
                let record = keys::block_key(ctx.oid, *chunk);
                if let Some(value) = ctx.engine.get(keyspace, &record)? {
                    freed.push(ctx.block_record(&record, &value)?);
                    batch.delete(keyspace, record);
                }
            }
        }
        let mut deferred = Deferred::default();
        for (chunk, content) in &self.chunks {
            let key = keys::data_key(ctx.oid, *chunk);
            match content {
                Content::Bytes(bytes) if bytes.is_empty() => {
                    batch.delete(keyspace, key);
                }
                Content::Bytes(bytes) => {
                    let payload = chunk::payload(bytes, ctx.config.compression);
                    match ctx
                        .deferred
                        .filter(|_| payload.bytes.len() >= ctx.config.deferred_min_bytes)
                    {
                        Some(blocks) => deferred.write(
                            blocks,
                            &mut batch,
                            keyspace,
                            key,
                            keys::block_key(ctx.oid, *chunk),
                            &payload,
                        )?,
                        None => {
                            batch.put(keyspace, key, chunk::stored_payload(&payload));
                        }
                    }
                }
                Content::Staged { op, .. } => {
                    let (value, extent) = self
                        .staged
                        .take(*op, *chunk)
                        .expect("a staged chunk stays staged");
                    batch.put(keyspace, key, value);
                    if let Some(extent) = extent {
                        let record = keys::block_key(ctx.oid, *chunk);
                        batch.put(keyspace, record, keys::encode_extent(extent).to_vec());
                    }
                }
            }
        }
        // Likewise an object absent before has no stored xattrs or omap to clear.
        if self.xattrs_cleared && stored {
            batch.delete_range(keyspace, object_section(XATTR_TAG, ctx.oid, b""));
        }
        for (name, value) in self.xattrs {
            let key = keys::xattr_key(ctx.oid, &name);
            match value {
                Some(value) => batch.put(keyspace, key, value),
                None => batch.delete(keyspace, key),
            };
        }
        if self.omap_cleared && stored {
            batch.delete_range(keyspace, object_section(OMAP_TAG, ctx.oid, b""));
        }
        for (omap_key, value) in self.omap {
            let key = keys::omap_key(ctx.oid, &omap_key);
            match value {
                Some(value) => batch.put(keyspace, key, value),
                None => batch.delete(keyspace, key),
            };
        }
        let meta_key = keys::meta_key(ctx.oid);
        let after = self.exists.then_some(ObjectInfo {
            size: self.size,
            version,
            mtime,
        });
        match after {
            Some(info) => batch.put(keyspace, meta_key, info.encode()),
            None => batch.delete(keyspace, meta_key),
        };
        Ok(Plan {
            batch,
            after,
            freed,
            deferred,
        })
    }
}

/// Runs the sub-ops against the object's stored state (`before`) and, if all succeed,
/// returns the batch that applies them at `version`. Nothing is written here.
pub(crate) fn plan(
    ctx: &PlanContext<'_>,
    before: Option<ObjectInfo>,
    ops: &[WriteOp],
    version: Eversion,
    mtime: SystemTime,
    staged: &mut Staged,
) -> Result<Plan> {
    let mut view = View::new(ctx, before, staged);
    for (index, op) in ops.iter().enumerate() {
        view.op = index;
        view.apply(op)?;
    }
    view.into_plan(version, mtime)
}
