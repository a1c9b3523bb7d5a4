//! [`IoCtx`]: object operations on one pool, inside one namespace (like librados'
//! `IoCtx`). Every call is one compound op sent through [`Rados::submit`]; the simple calls
//! (`write`, `read`, `stat`, xattrs, omap, ...) are one-sub-op [`WriteOp`]s and [`ReadOp`]s.
//!
//! Names are checked before anything is sent: an empty object name, or one longer than
//! [`MAX_NAME_BYTES`], is [`RadosError::InvalidArgument`]; an op carrying more data than an
//! OSD accepts in one message is [`RadosError::TooLarge`].
//!
//! Writes go to the primary over its op link (one message each way, see `proto::link`):
//! small ones whole, large data as the frame's bulk segments, which neither end copies.
//! Only a write whose other parts exceed [`LINKED_OP_BYTES`] (many small sub-ops) is a
//! unary call. Reads use the link too, their large results coming back as bulk segments,
//! when the sub-ops bound the reply's message to [`LINKED_OP_BYTES`]; reads to the end of
//! an object, of attributes or of omap pages, which nothing bounds, are unary calls.

use std::collections::BTreeMap;

use bytes::Bytes;
use clustermap::placement::ObjectMapping;
use clustermap::PoolId;
use proto::common::PlacementGroupId;
use proto::osd::{ObjectName, OpReply, OpRequest, ReqId, SubOp};

use crate::error::RadosError;
use crate::list::ObjectLister;
use crate::op::{ObjectStat, OmapPage, OpResult, ReadOp, ReadOutcome, Version, WriteOp};
use crate::rados::{Answer, Rados, Target};

/// The longest object name accepted, in bytes (the OSDs refuse longer ones as well).
pub const MAX_NAME_BYTES: usize = 2048;

/// Room kept in a message for everything but the data (names, framing).
const MESSAGE_OVERHEAD: usize = 1 << 20;

/// The largest write (encoded request, less its bulk data), or read (data in the reply),
/// sent over the op link rather than as its own call.
const LINKED_OP_BYTES: usize = 64 << 10;

/// What an op sends and expects, for choosing how it travels.
enum OpKind {
    Write,
    /// A read, with [`ReadOp::reply_bound`] and [`ReadOp::reply_message_bound`].
    Read {
        reply_bound: Option<u64>,
        message_bound: Option<u64>,
    },
}

/// Operations on the objects of one pool and namespace; cheap to clone.
#[derive(Clone, Debug)]
pub struct IoCtx {
    rados: Rados,
    pool: PoolId,
    pool_name: String,
    namespace: String,
}

impl IoCtx {
    pub(crate) fn new(rados: Rados, pool: PoolId, pool_name: String) -> Self {
        IoCtx {
            rados,
            pool,
            pool_name,
            namespace: String::new(),
        }
    }

    /// The client.
    pub fn rados(&self) -> &Rados {
        &self.rados
    }

    /// The pool's id.
    pub fn pool_id(&self) -> PoolId {
        self.pool
    }

    /// The pool's name.
    pub fn pool_name(&self) -> &str {
        &self.pool_name
    }

    /// The namespace of the following ops ("" is the default namespace).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Switches to another namespace of the pool.
    pub fn set_namespace(&mut self, namespace: impl Into<String>) {
        self.namespace = namespace.into();
    }

    /// The object's name as errors print it: `namespace/name`, or the name alone.
    fn label(&self, object: &str) -> String {
        if self.namespace.is_empty() {
            object.to_owned()
        } else {
            format!("{}/{object}", self.namespace)
        }
    }

    fn check_name(object: &str) -> Result<(), RadosError> {
        if object.is_empty() {
            return Err(RadosError::InvalidArgument {
                reason: "the object name is empty".to_owned(),
            });
        }
        if object.len() > MAX_NAME_BYTES {
            return Err(RadosError::InvalidArgument {
                reason: format!(
                    "the object name is {} bytes long; the limit is {MAX_NAME_BYTES}",
                    object.len()
                ),
            });
        }
        Ok(())
    }

    /// Sends one op and returns the primary's reply; writes carry a request id that stays
    /// the same across resends.
    async fn run(
        &self,
        object: &str,
        ops: Vec<SubOp>,
        kind: OpKind,
        what: &str,
    ) -> Result<OpReply, RadosError> {
        let write = matches!(kind, OpKind::Write);
        Self::check_name(object)?;
        if ops.is_empty() {
            return Err(RadosError::InvalidArgument {
                reason: format!("an op on `{}` without sub-ops", self.label(object)),
            });
        }
        let label = self.label(object);
        let tid = self.rados.next_tid();
        let base = OpRequest {
            epoch: 0,
            pg: None,
            object: Some(ObjectName {
                namespace: self.namespace.clone(),
                name: object.to_owned(),
            }),
            reqid: write.then(|| ReqId {
                client: self.rados.client_id(),
                tid,
            }),
            ops,
        };
        let expected = base.ops.len();
        let linked = match kind {
            OpKind::Write => proto::link::fits_link(&base, LINKED_OP_BYTES),
            OpKind::Read {
                reply_bound,
                message_bound,
            } => {
                reply_bound.is_some_and(|bound| bound <= proto::link::MAX_BULK_BYTES as u64)
                    && message_bound.is_some_and(|bound| bound <= LINKED_OP_BYTES as u64)
            }
        };
        let label_ref = label.as_str();
        let reply = self
            .rados
            .submit(
                label_ref,
                what,
                Target::Object {
                    pool: self.pool,
                    name: object,
                    namespace: &self.namespace,
                },
                |attempt| {
                    let mut request = base.clone();
                    request.epoch = attempt.epoch;
                    request.pg = Some(PlacementGroupId {
                        pool: attempt.pgid.pool,
                        seed: attempt.pgid.ps,
                    });
                    let link = linked.then(|| attempt.op_link());
                    let mut client = attempt.client;
                    async move {
                        let reply = match link {
                            Some(link) => link.call(request).await.map_err(|error| {
                                tonic::Status::unavailable(format!("op link: {error}"))
                            })?,
                            None => client.op(request).await?.into_inner(),
                        };
                        Ok(match &reply.error {
                            None => Answer::Done(reply),
                            Some(error) => {
                                Answer::from_error(attempt.osd, label_ref, reply.epoch, error)
                            }
                        })
                    }
                },
            )
            .await?;
        if !write && reply.results.len() != expected {
            return Err(RadosError::Transport {
                osd: -1,
                reason: format!(
                    "a read of `{label}` with {expected} sub-ops got {} results",
                    reply.results.len()
                ),
            });
        }
        Ok(reply)
    }

    /// Applies a compound write atomically; returns the object's new version.
    pub async fn operate(&self, object: &str, op: WriteOp) -> Result<Version, RadosError> {
        if op.payload_bytes() + MESSAGE_OVERHEAD > proto::MAX_MESSAGE_BYTES {
            return Err(RadosError::TooLarge {
                object: self.label(object),
                reason: format!(
                    "{} bytes in one op; at most {} fit in a message",
                    op.payload_bytes(),
                    proto::MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD
                ),
            });
        }
        let reply = self
            .run(object, op.into_proto(), OpKind::Write, "the write")
            .await?;
        Ok(reply
            .version
            .as_ref()
            .map(Version::from_proto)
            .unwrap_or_default())
    }

    /// Runs a compound read; returns the version read and one result per sub-op.
    pub async fn operate_read(&self, object: &str, op: ReadOp) -> Result<ReadOutcome, RadosError> {
        let kind = OpKind::Read {
            reply_bound: op.reply_bound(),
            message_bound: op.reply_message_bound(),
        };
        let reply = self.run(object, op.into_proto(), kind, "the read").await?;
        Ok(ReadOutcome {
            version: reply
                .version
                .as_ref()
                .map(Version::from_proto)
                .unwrap_or_default(),
            results: reply
                .results
                .into_iter()
                .map(OpResult::from_proto)
                .collect(),
        })
    }

    /// The single result of a one-sub-op read.
    async fn read_one(&self, object: &str, op: ReadOp) -> Result<OpResult, RadosError> {
        let mut outcome = self.operate_read(object, op).await?;
        Ok(outcome.results.pop().unwrap_or(OpResult::None))
    }

    fn unexpected(&self, object: &str, wanted: &str, got: &OpResult) -> RadosError {
        RadosError::Transport {
            osd: -1,
            reason: format!(
                "expected {wanted} for `{}`, got {got:?}",
                self.label(object)
            ),
        }
    }

    /// Writes `data` at `offset`, creating the object if needed.
    pub async fn write(
        &self,
        object: &str,
        offset: u64,
        data: impl Into<Bytes>,
    ) -> Result<Version, RadosError> {
        self.operate(object, WriteOp::new().write(offset, data))
            .await
    }

    /// Replaces the object's data.
    pub async fn write_full(
        &self,
        object: &str,
        data: impl Into<Bytes>,
    ) -> Result<Version, RadosError> {
        self.operate(object, WriteOp::new().write_full(data)).await
    }

    /// Appends to the object.
    pub async fn append(
        &self,
        object: &str,
        data: impl Into<Bytes>,
    ) -> Result<Version, RadosError> {
        self.operate(object, WriteOp::new().append(data)).await
    }

    /// Creates the object; `exclusive` fails with [`RadosError::Exists`] if it exists.
    pub async fn create(&self, object: &str, exclusive: bool) -> Result<Version, RadosError> {
        self.operate(object, WriteOp::new().create(exclusive)).await
    }

    /// Sets the object's size.
    pub async fn truncate(&self, object: &str, size: u64) -> Result<Version, RadosError> {
        self.operate(object, WriteOp::new().truncate(size)).await
    }

    /// Removes the object ([`RadosError::NotFound`] if it does not exist).
    pub async fn remove(&self, object: &str) -> Result<(), RadosError> {
        self.operate(object, WriteOp::new().remove())
            .await
            .map(|_| ())
    }

    /// Reads `length` bytes at `offset` (0: to the end); short or empty past the end.
    pub async fn read(&self, object: &str, offset: u64, length: u64) -> Result<Bytes, RadosError> {
        match self
            .read_one(object, ReadOp::new().read(offset, length))
            .await?
        {
            OpResult::Data(data) => Ok(data),
            OpResult::None => Ok(Bytes::new()),
            other => Err(self.unexpected(object, "data", &other)),
        }
    }

    /// The object's size, version and mtime.
    pub async fn stat(&self, object: &str) -> Result<ObjectStat, RadosError> {
        match self.read_one(object, ReadOp::new().stat()).await? {
            OpResult::Stat(stat) => Ok(stat),
            other => Err(self.unexpected(object, "a stat", &other)),
        }
    }

    /// Fails with [`RadosError::VersionMismatch`] unless the object is at `version`.
    pub async fn assert_version(&self, object: &str, version: Version) -> Result<(), RadosError> {
        self.operate_read(object, ReadOp::new().assert_version(version))
            .await
            .map(|_| ())
    }

    /// One extended attribute: [`RadosError::NoSuchXattr`] when the object exists without
    /// it, [`RadosError::NotFound`] when the object does not exist.
    pub async fn get_xattr(&self, object: &str, name: &str) -> Result<Bytes, RadosError> {
        match self.read_one(object, ReadOp::new().get_xattr(name)).await {
            Ok(OpResult::XattrValue(value)) => Ok(value),
            Ok(other) => Err(self.unexpected(object, "an xattr value", &other)),
            // The OSD says NOT_FOUND for a missing object and a missing attribute alike:
            // a stat tells them apart (only on this error path).
            Err(RadosError::NotFound { object: label }) => match self.stat(object).await {
                Ok(_) => Err(RadosError::NoSuchXattr {
                    object: label,
                    name: name.to_owned(),
                }),
                Err(error) => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// Every extended attribute.
    pub async fn get_xattrs(&self, object: &str) -> Result<BTreeMap<String, Bytes>, RadosError> {
        match self.read_one(object, ReadOp::new().get_xattrs()).await? {
            OpResult::Xattrs(xattrs) => Ok(xattrs),
            other => Err(self.unexpected(object, "xattrs", &other)),
        }
    }

    /// Sets an extended attribute (creating the object if needed).
    pub async fn set_xattr(
        &self,
        object: &str,
        name: &str,
        value: impl Into<Bytes>,
    ) -> Result<Version, RadosError> {
        self.operate(object, WriteOp::new().set_xattr(name, value))
            .await
    }

    /// Removes an extended attribute.
    pub async fn rm_xattr(&self, object: &str, name: &str) -> Result<Version, RadosError> {
        self.operate(object, WriteOp::new().rm_xattr(name)).await
    }

    /// Sets omap entries.
    pub async fn omap_set<K, V>(
        &self,
        object: &str,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Version, RadosError>
    where
        K: Into<Bytes>,
        V: Into<Bytes>,
    {
        self.operate(object, WriteOp::new().omap_set(entries)).await
    }

    /// Removes omap keys.
    pub async fn omap_rm<K: Into<Bytes>>(
        &self,
        object: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<Version, RadosError> {
        self.operate(object, WriteOp::new().omap_rm(keys)).await
    }

    /// Removes every omap entry.
    pub async fn omap_clear(&self, object: &str) -> Result<Version, RadosError> {
        self.operate(object, WriteOp::new().omap_clear()).await
    }

    /// The values of these omap keys (keys without a value are absent from the result).
    pub async fn omap_get<K: Into<Bytes>>(
        &self,
        object: &str,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<BTreeMap<Bytes, Bytes>, RadosError> {
        match self.read_one(object, ReadOp::new().omap_get(keys)).await? {
            OpResult::Omap(page) => Ok(page.entries.into_iter().collect()),
            other => Err(self.unexpected(object, "omap entries", &other)),
        }
    }

    /// One page of omap entries after `start_after` with `prefix` (see [`ReadOp::omap_list`]).
    pub async fn omap_list(
        &self,
        object: &str,
        start_after: impl Into<Bytes>,
        prefix: impl Into<Bytes>,
        max: u32,
        with_values: bool,
    ) -> Result<OmapPage, RadosError> {
        let op = ReadOp::new().omap_list(start_after, prefix, max, with_values);
        match self.read_one(object, op).await? {
            OpResult::Omap(page) => Ok(page),
            other => Err(self.unexpected(object, "omap entries", &other)),
        }
    }

    /// Every omap entry with `prefix` (values empty unless `with_values`), page by page.
    pub async fn omap_list_all(
        &self,
        object: &str,
        prefix: impl Into<Bytes>,
        with_values: bool,
    ) -> Result<Vec<(Bytes, Bytes)>, RadosError> {
        let prefix = prefix.into();
        let mut entries: Vec<(Bytes, Bytes)> = Vec::new();
        let mut after = Bytes::new();
        loop {
            let page = self
                .omap_list(object, after.clone(), prefix.clone(), 0, with_values)
                .await?;
            let last = page.entries.last().map(|(key, _)| key.clone());
            entries.extend(page.entries);
            match last {
                Some(key) if page.more => after = key,
                _ => return Ok(entries),
            }
        }
    }

    /// Lists the objects of this namespace, PG by PG (see [`ObjectLister`]).
    pub fn list_objects(&self) -> ObjectLister {
        ObjectLister::new(self.clone())
    }

    /// Where an object is placed in the cached map (like `shoal osd map`).
    pub fn osd_map(&self, object: &str) -> Result<ObjectMapping, RadosError> {
        Self::check_name(object)?;
        self.rados
            .map()
            .osd_map(&self.pool_name, object, &self.namespace)
            .map_err(|_| RadosError::PoolNotFound {
                pool: self.pool_name.clone(),
            })
    }
}
