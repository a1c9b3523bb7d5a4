//! The `Osd` gRPC service and the links' requests (client ops and replicated writes, see
//! [`proto::link`]): every rpc of osd.proto, each a thin layer that checks epochs
//! and placement, then hands over to the PG ([`crate::pg`]) or answers from the store.
//! Client-visible failures are built in one place ([`crate::wire::OpFailure`]); no input
//! from the network can make a handler panic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clustermap::{ClusterMap, Epoch, PgId};
use proto::link::{self as link, LinkKind};
use proto::osd::osd_server::Osd;
use proto::osd::{
    ListObjectsReply, ListObjectsRequest, OpErrorKind, OpReply, OpRequest, OsdStatusReply,
    OsdStatusRequest, PgQueryReply, PgQueryRequest, PgScanReply, PgScanRequest, PingReply,
    PingRequest, PullObjectReply, PullObjectRequest, PushObjectReply, PushObjectRequest,
    ReplicateReply, ReplicateRequest, ReplicateStatus, ScannedObject, TaggedOp, TaggedOpReply,
    TaggedReplicate, TaggedReplicateReply,
};
use tokio::net::TcpStream;
use tonic::{Request, Response, Status};

use crate::node::Node;
use crate::pg::{peering, Pg, Role};
use crate::store::{Eversion, ObjectId, StoreError};
use crate::wire::{self, OpFailure, ParsedOp};

/// The longest a request from a newer epoch waits for this OSD to catch up.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// The service over a running node.
pub struct OsdService {
    node: Arc<Node>,
}

impl OsdService {
    /// The service.
    pub fn new(node: Arc<Node>) -> Self {
        OsdService { node }
    }

    fn epoch32(epoch: u64) -> Epoch {
        u32::try_from(epoch).unwrap_or(u32::MAX)
    }

    /// Catches up to a sender's newer epoch and returns the map to judge its request by.
    async fn map_for(&self, sender_epoch: Epoch) -> Result<Arc<ClusterMap>, OpFailure> {
        let node = &self.node;
        if sender_epoch > node.epoch() || node.map().is_none() {
            let wait = CATCH_UP_WAIT.min(node.config.op_timeout());
            node.catch_up(sender_epoch.max(1), wait).await;
        }
        node.map()
            .ok_or_else(|| OpFailure::busy("this OSD has no map yet"))
    }

    /// The PG of `object` if this OSD is its acting primary; else the failure to send.
    async fn primary_pg(
        &self,
        client_epoch: Epoch,
        client_pg: Option<PgId>,
        object: &ObjectId,
    ) -> Result<Arc<Pg>, OpFailure> {
        let map = self.map_for(client_epoch).await?;
        let our_epoch = map.epoch();
        let misplaced = |what: String| {
            if client_epoch < our_epoch {
                OpFailure::new(
                    OpErrorKind::StaleEpoch,
                    format!("{what} at epoch {our_epoch} (the op is from epoch {client_epoch})"),
                )
            } else {
                OpFailure::new(OpErrorKind::Misdirected, what)
            }
        };
        let client_pg = client_pg.ok_or_else(|| OpFailure::invalid("the op names no pg"))?;
        let Some(pool) = map.pool(client_pg.pool) else {
            return Err(OpFailure::new(
                OpErrorKind::PoolNotFound,
                format!(
                    "pool {} does not exist at epoch {our_epoch}",
                    client_pg.pool
                ),
            ));
        };
        let pgid = PgId::new(
            pool.id,
            pool.raw_seed_to_ps(pool.hash_key(&object.name, &object.namespace)),
        );
        if pgid != client_pg {
            return Err(misplaced(format!(
                "object {object} is in pg {pgid}, not {client_pg}"
            )));
        }
        match self.node.pg(pgid) {
            Some(pg) if pg.view().role == Role::Primary => Ok(pg),
            _ => Err(misplaced(format!(
                "osd.{} is not the primary of pg {pgid}",
                self.node.id
            ))),
        }
    }

    fn check_object(&self, object: &ObjectId) -> Result<(), OpFailure> {
        let limits = self.node.store.config();
        if object.name.is_empty() {
            return Err(OpFailure::invalid("the object name is empty"));
        }
        if object.name.len() > limits.max_object_name_len {
            return Err(OpFailure::invalid(format!(
                "the object name has {} bytes, over the limit of {}",
                object.name.len(),
                limits.max_object_name_len
            )));
        }
        if object.namespace.len() > limits.max_namespace_len {
            return Err(OpFailure::invalid(format!(
                "the namespace has {} bytes, over the limit of {}",
                object.namespace.len(),
                limits.max_namespace_len
            )));
        }
        Ok(())
    }

    /// Judges one replicated write (epochs, membership) and applies it as a replica.
    async fn replicate_one(&self, request: ReplicateRequest) -> ReplicateReply {
        let node = &self.node;
        let sender_epoch = Self::epoch32(request.epoch);
        let refuse = |status: ReplicateStatus, message: String| ReplicateReply {
            epoch: u64::from(node.epoch()),
            status: status as i32,
            message,
            last_update: None,
        };
        if let Err(failure) = self.map_for(sender_epoch).await {
            return refuse(ReplicateStatus::Failed, failure.message);
        }
        let Some(pgid) = wire::pg_from_wire(request.pg.as_ref()) else {
            return refuse(ReplicateStatus::Failed, "no pg".into());
        };
        let member = node
            .pg(pgid)
            .filter(|pg| pg.accepts_from(request.from_osd, node.id));
        let Some(pg) = member else {
            let status = if sender_epoch < node.epoch() {
                ReplicateStatus::SenderStale
            } else {
                ReplicateStatus::NotMember
            };
            return refuse(
                status,
                format!(
                    "at epoch {} osd.{} is not an acting replica of pg {pgid} under osd.{}",
                    node.epoch(),
                    node.id,
                    request.from_osd
                ),
            );
        };
        let deadline = Instant::now() + node.config.op_timeout();
        pg.replica_apply(node, request, deadline).await
    }

    async fn run_op(
        &self,
        request: OpRequest,
    ) -> Result<(Eversion, Vec<proto::osd::SubOpResult>), OpFailure> {
        let node = &self.node;
        let deadline = Instant::now() + node.config.op_timeout();
        let object = wire::object_from_wire(request.object.as_ref());
        self.check_object(&object)?;
        let parsed = wire::parse_ops(&request.ops, node.config.max_object_size)?;
        let reqid = wire::reqid_from_wire(request.reqid.as_ref());
        if matches!(parsed, ParsedOp::Write(_)) && reqid.is_none() {
            return Err(OpFailure::invalid(
                "a write needs a reqid with a non-zero client",
            ));
        }
        let client_epoch = Self::epoch32(request.epoch);
        let pg = self
            .primary_pg(
                client_epoch,
                wire::pg_from_wire(request.pg.as_ref()),
                &object,
            )
            .await?;
        let outcome = match parsed {
            ParsedOp::Write(ops) => {
                let reqid = reqid.ok_or_else(|| OpFailure::invalid("no reqid"))?;
                pg.primary_write(node, object, reqid, request.ops, ops, deadline)
                    .await
                    .map(|version| (version, Vec::new()))
            }
            ParsedOp::Read(steps) => pg.primary_read(node, object, steps, deadline).await,
        };
        outcome.map_err(|failure| {
            if failure.kind == OpErrorKind::Misdirected && client_epoch < node.epoch() {
                OpFailure::new(OpErrorKind::StaleEpoch, failure.message)
            } else {
                failure
            }
        })
    }

    /// Runs one client op and builds its reply, failures included.
    async fn answer_op(&self, request: OpRequest) -> OpReply {
        let sub_ops = request.ops.len();
        let outcome = self.run_op(request).await;
        let epoch = u64::from(self.node.epoch());
        match outcome {
            Ok((version, mut results)) => {
                // Writes (and guards) answer one empty result per sub-op.
                if results.is_empty() {
                    results = vec![Default::default(); sub_ops];
                }
                OpReply {
                    epoch,
                    error: None,
                    version: Some(wire::ev_to_wire(version)),
                    results,
                }
            }
            Err(failure) => {
                tracing::debug!(kind = ?failure.kind, message = failure.message, "op failed");
                OpReply {
                    epoch,
                    error: Some(failure.to_wire()),
                    version: failure.actual.map(wire::ev_to_wire),
                    results: Vec::new(),
                }
            }
        }
    }

    /// Serves one link connection ([`proto::link`]) of `kind` from `peer`.
    pub async fn serve_link(node: Arc<Node>, stream: TcpStream, kind: LinkKind, peer: SocketAddr) {
        let peer = peer.to_string();
        match kind {
            LinkKind::Ops => {
                let epoch_of = Arc::clone(&node);
                link::serve::<TaggedOp, TaggedOpReply, _, _>(
                    stream,
                    peer,
                    |request| {
                        let service = OsdService::new(Arc::clone(&node));
                        async move { service.answer_op(request).await }
                    },
                    || OpReply {
                        epoch: u64::from(epoch_of.epoch()),
                        error: Some(OpFailure::invalid("a tagged op without a request").to_wire()),
                        version: None,
                        results: Vec::new(),
                    },
                )
                .await;
            }
            LinkKind::Replicate => {
                let epoch_of = Arc::clone(&node);
                link::serve::<TaggedReplicate, TaggedReplicateReply, _, _>(
                    stream,
                    peer,
                    |request| {
                        let service = OsdService::new(Arc::clone(&node));
                        async move { service.replicate_one(request).await }
                    },
                    || ReplicateReply {
                        epoch: u64::from(epoch_of.epoch()),
                        status: ReplicateStatus::Failed as i32,
                        message: "a tagged write without a request".into(),
                        last_update: None,
                    },
                )
                .await;
            }
        }
    }
}

#[tonic::async_trait]
impl Osd for OsdService {
    async fn op(&self, request: Request<OpRequest>) -> Result<Response<OpReply>, Status> {
        Ok(Response::new(self.answer_op(request.into_inner()).await))
    }

    async fn list_objects(
        &self,
        request: Request<ListObjectsRequest>,
    ) -> Result<Response<ListObjectsReply>, Status> {
        let request = request.into_inner();
        let deadline = Instant::now() + self.node.config.op_timeout();
        let client_epoch = Self::epoch32(request.epoch);
        let outcome = async {
            let map = self.map_for(client_epoch).await?;
            let pgid = wire::pg_from_wire(request.pg.as_ref())
                .ok_or_else(|| OpFailure::invalid("the request names no pg"))?;
            if map.pool(pgid.pool).is_none() {
                return Err(OpFailure::new(
                    OpErrorKind::PoolNotFound,
                    format!("pool {} does not exist", pgid.pool),
                ));
            }
            let pg = match self.node.pg(pgid) {
                Some(pg) if pg.view().role == Role::Primary => pg,
                _ => {
                    let kind = if client_epoch < map.epoch() {
                        OpErrorKind::StaleEpoch
                    } else {
                        OpErrorKind::Misdirected
                    };
                    return Err(OpFailure::new(
                        kind,
                        format!("osd.{} is not the primary of pg {pgid}", self.node.id),
                    ));
                }
            };
            let namespace = (!request.all_namespaces).then(|| request.namespace.clone());
            let after = request
                .start_after
                .as_ref()
                .map(|name| wire::object_from_wire(Some(name)));
            pg.list(&self.node, namespace, after, request.max as usize, deadline)
                .await
        }
        .await;
        let epoch = u64::from(self.node.epoch());
        Ok(Response::new(match outcome {
            Ok((objects, more)) => ListObjectsReply {
                epoch,
                error: None,
                objects: objects.iter().map(wire::object_to_wire).collect(),
                more,
            },
            Err(failure) => ListObjectsReply {
                epoch,
                error: Some(failure.to_wire()),
                objects: Vec::new(),
                more: false,
            },
        }))
    }

    async fn replicate(
        &self,
        request: Request<ReplicateRequest>,
    ) -> Result<Response<ReplicateReply>, Status> {
        Ok(Response::new(
            self.replicate_one(request.into_inner()).await,
        ))
    }

    async fn ping(&self, request: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        let request = request.into_inner();
        let sender_epoch = Self::epoch32(request.epoch);
        if sender_epoch > self.node.epoch() {
            let node = Arc::clone(&self.node);
            tokio::spawn(async move {
                node.catch_up(sender_epoch, CATCH_UP_WAIT).await;
            });
        }
        Ok(Response::new(PingReply {
            osd: self.node.id,
            epoch: u64::from(self.node.epoch()),
            sent_ns: request.sent_ns,
        }))
    }

    async fn pg_query(
        &self,
        request: Request<PgQueryRequest>,
    ) -> Result<Response<PgQueryReply>, Status> {
        let request = request.into_inner();
        let _ = self.map_for(Self::epoch32(request.epoch)).await;
        let epoch = u64::from(self.node.epoch());
        let pgid = wire::pg_from_wire(request.pg.as_ref())
            .ok_or_else(|| Status::invalid_argument("pg: missing"))?;
        let store = Arc::clone(&self.node.store);
        let log_after = request.log_after.map(|v| wire::ev_from_wire(Some(&v)));
        let max = request.max_log_entries as usize;
        let answer = tokio::task::spawn_blocking(move || {
            let info = match store.pg_info(pgid) {
                Ok(info) => info,
                Err(StoreError::PgNotFound { .. }) => return Ok(None),
                Err(error) => return Err(error),
            };
            let log = match log_after {
                Some(after) => match store.read_log(pgid, after, max.max(1)) {
                    Ok(log) => log,
                    Err(StoreError::LogTrimmed { .. }) => Vec::new(),
                    Err(error) => return Err(error),
                },
                None => Vec::new(),
            };
            Ok(Some((info, log)))
        })
        .await
        .map_err(|join| Status::internal(join.to_string()))?
        .map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(match answer {
            None => PgQueryReply {
                epoch,
                exists: false,
                ..PgQueryReply::default()
            },
            Some((info, log)) => PgQueryReply {
                epoch,
                exists: true,
                last_update: Some(wire::ev_to_wire(info.last_update)),
                log_tail: Some(wire::ev_to_wire(info.log_tail)),
                num_objects: info.stats.objects,
                num_bytes: info.stats.bytes,
                log: log.iter().map(wire::log_entry_to_wire).collect(),
                last_epoch_started: 0,
            },
        }))
    }

    async fn pg_scan(
        &self,
        request: Request<PgScanRequest>,
    ) -> Result<Response<PgScanReply>, Status> {
        let request = request.into_inner();
        let epoch = u64::from(self.node.epoch());
        let pgid = wire::pg_from_wire(request.pg.as_ref())
            .ok_or_else(|| Status::invalid_argument("pg: missing"))?;
        let store = Arc::clone(&self.node.store);
        let after = request
            .start_after
            .as_ref()
            .map(|name| wire::object_from_wire(Some(name)));
        let max = if request.max == 0 {
            1000
        } else {
            request.max as usize
        };
        let with_digest = request.with_digest;
        let answer = tokio::task::spawn_blocking(move || {
            let page = match store.list_objects(pgid, None, after.as_ref(), max) {
                Ok(page) => page,
                Err(StoreError::PgNotFound { .. }) => return Ok(None),
                Err(error) => return Err(error),
            };
            let mut objects = Vec::with_capacity(page.objects.len());
            for (object, info) in &page.objects {
                let digest = if with_digest {
                    let d = store.object_digest(pgid, object)?;
                    let mut bytes = [0u8; 24];
                    bytes[..8].copy_from_slice(&d.data_digest.to_le_bytes());
                    bytes[8..16].copy_from_slice(&d.xattr_digest.to_le_bytes());
                    bytes[16..].copy_from_slice(&d.omap_digest.to_le_bytes());
                    xxhash_rust::xxh3::xxh3_64(&bytes)
                } else {
                    0
                };
                objects.push(ScannedObject {
                    object: Some(wire::object_to_wire(object)),
                    version: Some(wire::ev_to_wire(info.version)),
                    size: info.size,
                    digest,
                });
            }
            Ok(Some((objects, page.next.is_some())))
        })
        .await
        .map_err(|join| Status::internal(join.to_string()))?
        .map_err(|error: StoreError| Status::internal(error.to_string()))?;
        Ok(Response::new(match answer {
            None => PgScanReply {
                epoch,
                exists: false,
                objects: Vec::new(),
                more: false,
            },
            Some((objects, more)) => PgScanReply {
                epoch,
                exists: true,
                objects,
                more,
            },
        }))
    }

    async fn pull_object(
        &self,
        request: Request<PullObjectRequest>,
    ) -> Result<Response<PullObjectReply>, Status> {
        let request = request.into_inner();
        let pgid = wire::pg_from_wire(request.pg.as_ref())
            .ok_or_else(|| Status::invalid_argument("pg: missing"))?;
        let object = wire::object_from_wire(request.object.as_ref());
        let store = Arc::clone(&self.node.store);
        let target = object.clone();
        let state = tokio::task::spawn_blocking(move || store.object_state(pgid, &target))
            .await
            .map_err(|join| Status::internal(join.to_string()))?
            .map_err(|error| Status::internal(error.to_string()))?;
        Ok(Response::new(PullObjectReply {
            epoch: u64::from(self.node.epoch()),
            state: Some(peering::state_to_wire(&object, state)),
        }))
    }

    async fn push_object(
        &self,
        request: Request<PushObjectRequest>,
    ) -> Result<Response<PushObjectReply>, Status> {
        let request = request.into_inner();
        let node = &self.node;
        let sender_epoch = Self::epoch32(request.epoch);
        let _ = self.map_for(sender_epoch).await;
        let refuse = |message: String| {
            Response::new(PushObjectReply {
                epoch: u64::from(node.epoch()),
                ok: false,
                message,
            })
        };
        let Some(pgid) = wire::pg_from_wire(request.pg.as_ref()) else {
            return Ok(refuse("no pg".into()));
        };
        let pg = match node.ensure_pg(pgid) {
            Ok(pg) => pg,
            Err(error) => return Ok(refuse(error.to_string())),
        };
        if !pg.accepts_from(request.from_osd, node.id) {
            return Ok(refuse(format!(
                "at epoch {} osd.{} is not an acting replica of pg {pgid} under osd.{}",
                node.epoch(),
                node.id,
                request.from_osd
            )));
        }
        let state = request.state.as_ref().map(peering::state_from_wire);
        let ending = request.last_update.map(|v| {
            (
                wire::ev_from_wire(Some(&v)),
                request
                    .log
                    .iter()
                    .map(wire::log_entry_from_wire)
                    .collect::<Vec<_>>(),
            )
        });
        let store = Arc::clone(&node.store);
        let worker_pg = Arc::clone(&pg);
        let done = tokio::task::spawn_blocking(move || {
            worker_pg.with_head(|head| {
                if let Some((object, state)) = &state {
                    store.install_object(pgid, object, state.as_ref())?;
                }
                if let Some((last_update, log)) = &ending {
                    store.adopt_log(pgid, log, *last_update)?;
                    store.sync()?;
                    *head = *last_update;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await;
        Ok(Response::new(match done {
            Ok(Ok(())) => PushObjectReply {
                epoch: u64::from(node.epoch()),
                ok: true,
                message: String::new(),
            },
            Ok(Err(error)) => {
                tracing::error!(pg = %pgid, %error, "cannot install a pushed object");
                PushObjectReply {
                    epoch: u64::from(node.epoch()),
                    ok: false,
                    message: error.to_string(),
                }
            }
            Err(join) => PushObjectReply {
                epoch: u64::from(node.epoch()),
                ok: false,
                message: join.to_string(),
            },
        }))
    }

    async fn osd_status(
        &self,
        _request: Request<OsdStatusRequest>,
    ) -> Result<Response<OsdStatusReply>, Status> {
        let node = Arc::clone(&self.node);
        let reply = tokio::task::spawn_blocking(move || crate::status::osd_status(&node))
            .await
            .map_err(|join| Status::internal(join.to_string()))?;
        Ok(Response::new(reply))
    }
}
