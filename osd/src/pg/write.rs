//! Writes. The primary, for one client op: waits until the PG is active, takes the
//! object's place in the op order, answers a resent request (its reqid is in the PG log)
//! with the original version, else assigns the next version `(epoch, head + 1)` and applies
//! the op to its store under the PG's head lock (no fsync there), then in parallel syncs
//! locally and sends `Replicate` to every other acting OSD; it replies once all are
//! durable. A replica applies a `Replicate` at exactly the given version once its head
//! equals the given prior version (writes may arrive a little out of order; they wait for
//! their predecessor), then syncs and answers.
//!
//! When replication cannot finish (a replica died, the acting set changed, a replica
//! missed writes), the op waits for the next activation: peering copies the primary's
//! state (which includes the write) to every acting OSD, so if this OSD is still primary
//! and its log still holds the request, the write is acknowledged then.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use clustermap::ClusterMap;
use futures_util::future::join_all;
use proto::link::SentReplicate;
use proto::osd::{OpErrorKind, ReplicateReply, ReplicateRequest, ReplicateStatus, SubOp};

use super::{lock, Pg, Role};
use crate::node::Node;
use crate::store::{Eversion, ObjectId, ReqId, StoreError, Transaction, WriteOp};
use crate::wire::{self, OpFailure};

/// How long a replicated write waits for its predecessor before the replica answers
/// OUT_OF_ORDER (and the primary re-peers it).
const PREDECESSOR_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why a replicated write was not confirmed everywhere, least serious first (the `Ord`
/// that picks what the client hears when several parts failed).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum WriteFailure {
    /// A replica did not confirm it: the PG re-peers, after which the write may still count.
    Replica,
    /// This OSD could not make it durable: the store refuses writes from now on.
    LocalSync(String),
}

/// At most this many client writes under way at the primary (this one included) for a
/// write to go to its replicas before the primary applies it.
const SEND_FIRST_MAX_IN_FLIGHT: usize = 2;

/// What the primary's apply step hands back.
struct Applied {
    /// The version the write holds: the new one, or a resent request's original.
    committed: Eversion,
    /// False for a resent request (nothing was applied).
    fresh: bool,
    /// The write as the replicas get it.
    request: ReplicateRequest,
    /// The replicas it was already sent to, with the replies to come.
    sent: Vec<(i32, SentReplicate)>,
}

/// Sends `request` to each of `replicas` over its link now; those without a link (no map,
/// no address) are left to [`Pg::replicate_to`]'s retries.
fn send_now(
    node: &Node,
    replicas: &[i32],
    request: &ReplicateRequest,
) -> Vec<(i32, SentReplicate)> {
    let Some(map) = node.map() else {
        return Vec::new();
    };
    replicas
        .iter()
        .filter_map(|&peer| {
            let link = node.peers.link(&map, peer)?;
            link.send(request.clone()).ok().map(|sent| (peer, sent))
        })
        .collect()
}

/// Why one replica did not confirm a write.
enum ReplicaFailure {
    /// The interval changed (or a re-peer was forced) while replicating.
    Interval,
    /// The op's deadline passed.
    Deadline,
}

impl Pg {
    /// Runs a client write as primary; returns the version it was committed at.
    pub async fn primary_write(
        self: &Arc<Self>,
        node: &Arc<Node>,
        object: ObjectId,
        reqid: ReqId,
        wire_ops: Vec<SubOp>,
        ops: Vec<WriteOp>,
        deadline: Instant,
    ) -> Result<Eversion, OpFailure> {
        self.wait_active(deadline).await?;
        let _order = self.lock_object(&object).await;
        let view = self.wait_active(deadline).await?;
        if ops.iter().any(WriteOp::needs_space) {
            let map = node.map();
            let full = crate::space::refusal(
                map.as_deref(),
                &view.acting,
                node.id,
                node.space.last(),
                node.config.failsafe_full_ratio,
            );
            if let Some(reason) = full {
                // A resend of a write applied before the OSD filled up gets its answer.
                if let Some(version) = node.store.lookup_reqid(self.id, reqid)? {
                    return Ok(version);
                }
                tracing::debug!(pg = %self.id, %reason, "refusing a write that needs space");
                return Err(OpFailure::new(OpErrorKind::NoSpace, reason));
            }
        }
        // A resent request is caught by the apply below: the store finds its reqid in the
        // log and answers the original version without applying anything (the object's op
        // order guarantees the original has finished by now).
        let interval = view.interval;
        let epoch = node.epoch().max(view.epoch);
        let mtime = SystemTime::now();
        let replicas: Vec<i32> = view
            .acting
            .iter()
            .copied()
            .filter(|osd| *osd != node.id)
            .collect();
        let inline = super::runs_inline(WriteOp::payload_len_of(&ops));
        let _counted = node.primary_writes.enter();
        // A small write whose outcome cannot depend on the object's state goes to the
        // replicas before it is applied here, so that their apply overlaps ours: on every
        // member it succeeds (or fails its static checks, which run first) alike. Only when
        // few writes are under way: that is when latency is the time of one write, while
        // under load the overlap saves nothing and the extra request-id lookup costs
        // throughput (measured at 16 in flight: 3-7 % fewer writes per second).
        let send_first = inline
            && node.primary_writes.count() <= SEND_FIRST_MAX_IN_FLIGHT
            && ops.iter().all(WriteOp::is_unconditional);
        let mut request = ReplicateRequest {
            epoch: u64::from(epoch),
            from_osd: node.id,
            pg: Some(wire::pg_to_wire(self.id)),
            object: Some(wire::object_to_wire(&object)),
            reqid: Some(proto::osd::ReqId {
                client: reqid.client,
                tid: reqid.tid,
            }),
            version: None,
            mtime_ns: wire::time_to_nanos(mtime),
            ops: wire_ops,
            prior_version: None,
        };
        let linked = proto::link::fits_link(&request, proto::link::MAX_FRAME_BYTES);
        // Apply under the head lock (ordered, not synced), off the async threads.
        let pg = Arc::clone(self);
        let sender = Arc::clone(node);
        let members = replicas.clone();
        let pgid = self.id;
        self.inflight(1);
        let applied = super::store_work(inline, move || {
            let store = &sender.store;
            // Large chunks go to the block file first, outside the head lock.
            let staged = store.stage(&ops)?;
            let mut head = lock(&pg.head);
            let version = Eversion::new(epoch.max(head.epoch), head.version + 1);
            let mut txn = Transaction::new(pgid, object, version.epoch);
            txn.at_version(version).reqid(reqid).mtime(mtime);
            for op in ops {
                txn.push(op);
            }
            let prior = *head;
            request.version = Some(wire::ev_to_wire(version));
            request.prior_version = Some(wire::ev_to_wire(prior));
            let mut sent = Vec::new();
            // A resent request is answered below without being applied, so it is not sent.
            if send_first && store.lookup_reqid(pgid, reqid)?.is_none() {
                store.check(&txn)?;
                sent = send_now(&sender, &members, &request);
            }
            let committed = store.apply_staged(txn, staged)?;
            // The store answers a request it already holds with the original version
            // and applies nothing.
            let fresh = committed == version;
            if fresh {
                *head = version;
                pg.head_watch.send_replace(version);
            }
            Ok::<_, StoreError>(Applied {
                committed,
                fresh,
                request,
                sent,
            })
        })
        .await;
        let (version, request, mut sent) = match applied {
            Ok(Ok(Applied {
                committed,
                fresh: false,
                ..
            })) => {
                self.inflight(-1);
                tracing::debug!(pg = %self.id, %reqid, version = %committed, "resent write; answering the original version");
                return Ok(committed);
            }
            Ok(Ok(Applied {
                committed,
                request,
                sent,
                ..
            })) => (committed, request, sent),
            Ok(Err(error)) => {
                self.inflight(-1);
                return Err(error.into());
            }
            Err(failure) => {
                self.inflight(-1);
                return Err(failure);
            }
        };
        // Joined in this task rather than spawned: each replica's frame leaves from here at
        // the first poll (unless it left already), before the local sync, with no task hops.
        let replicas: Vec<_> = replicas
            .into_iter()
            .map(|peer| {
                let request = request.clone();
                let first = sent
                    .iter()
                    .position(|(to, _)| *to == peer)
                    .map(|at| sent.swap_remove(at).1);
                async move {
                    self.replicate_to(node, peer, request, linked, interval, deadline, first)
                        .await
                        .map_err(|_| WriteFailure::Replica)
                }
            })
            .collect();
        let local = async { node.syncer.sync().await.map_err(WriteFailure::LocalSync) };
        let (replicated, synced) = tokio::join!(join_all(replicas), local);
        let failure = replicated
            .into_iter()
            .chain(std::iter::once(synced))
            .filter_map(Result::err)
            .max();
        self.inflight(-1);
        match failure {
            None => Ok(version),
            Some(WriteFailure::LocalSync(error)) => Err(OpFailure::new(
                OpErrorKind::Internal,
                format!("local sync failed: {error}"),
            )),
            Some(WriteFailure::Replica) => {
                self.settle_after_repeer(node, reqid, version, deadline)
                    .await
            }
        }
    }

    fn store_lookup(&self, node: &Node, reqid: ReqId) -> Result<Option<Eversion>, OpFailure> {
        node.store
            .lookup_reqid(self.id, reqid)
            .map_err(OpFailure::from)
    }

    /// After replication failed: waits for the PG to be active again; the write counts
    /// if this OSD is still the primary and its log holds the request.
    async fn settle_after_repeer(
        &self,
        node: &Arc<Node>,
        reqid: ReqId,
        version: Eversion,
        deadline: Instant,
    ) -> Result<Eversion, OpFailure> {
        tracing::info!(pg = %self.id, %reqid, %version, "replication incomplete; waiting for re-peering");
        self.wait_active(deadline).await?;
        match self.store_lookup(node, reqid)? {
            Some(found) => Ok(found),
            None => Err(OpFailure::busy(format!(
                "pg {} changed while the write was replicated; resend it",
                self.id
            ))),
        }
    }

    /// Sends one write to one replica until it is durable there, the interval changes
    /// or the deadline passes. A `linked` write goes over the peer's replication link (its
    /// large data as bulk segments, see `proto::link`); one with too much else to fit a
    /// frame (many small sub-ops) as its own gRPC request.
    #[allow(clippy::too_many_arguments)]
    async fn replicate_to(
        self: &Arc<Self>,
        node: &Arc<Node>,
        peer: i32,
        mut request: ReplicateRequest,
        linked: bool,
        interval: u64,
        deadline: Instant,
        mut first: Option<SentReplicate>,
    ) -> Result<(), ReplicaFailure> {
        let mut attempt = 0u32;
        loop {
            if self.interval() != interval {
                return Err(ReplicaFailure::Interval);
            }
            if Instant::now() >= deadline {
                super::peering::repeer(
                    node,
                    self,
                    &format!("osd.{peer} did not confirm a write in time"),
                );
                return Err(ReplicaFailure::Deadline);
            }
            attempt += 1;
            let reply = match (first.take(), node.map()) {
                (Some(sent), _) => sent
                    .reply_until(deadline)
                    .await
                    .inspect_err(|error| {
                        tracing::debug!(pg = %self.id, peer, %error, attempt, "replicate failed");
                    })
                    .ok(),
                (None, Some(map)) => {
                    self.replicate_once(node, &map, peer, &request, linked, deadline, attempt)
                        .await
                }
                (None, None) => None,
            };
            let Some(reply) = reply else {
                // The peer is unreachable: retry until heartbeats get it marked down
                // (which changes the interval) or the deadline.
                let pause = std::time::Duration::from_millis(20 * u64::from(attempt.min(10)));
                let interval_changed =
                    self.wait_until(Instant::now() + pause, |view| view.interval != interval);
                interval_changed.await;
                continue;
            };
            match ReplicateStatus::try_from(reply.status) {
                Ok(ReplicateStatus::Replicated) => return Ok(()),
                Ok(ReplicateStatus::SenderStale) | Ok(ReplicateStatus::NotMember) => {
                    let epoch = u32::try_from(reply.epoch).unwrap_or(u32::MAX);
                    node.catch_up(epoch, node.config.op_timeout()).await;
                    request.epoch = u64::from(node.epoch());
                }
                Ok(ReplicateStatus::OutOfOrder) | Ok(ReplicateStatus::Failed) | Err(_) => {
                    tracing::warn!(
                        pg = %self.id,
                        peer,
                        status = reply.status,
                        message = reply.message,
                        "replica refused a write"
                    );
                    super::peering::repeer(
                        node,
                        self,
                        &format!("osd.{peer} refused a write: {}", reply.message),
                    );
                    return Err(ReplicaFailure::Interval);
                }
            }
        }
    }

    /// One attempt to send `request` to `peer` (over its link when `linked`); `None`
    /// when no reply came.
    #[allow(clippy::too_many_arguments)]
    async fn replicate_once(
        &self,
        node: &Node,
        map: &ClusterMap,
        peer: i32,
        request: &ReplicateRequest,
        linked: bool,
        deadline: Instant,
        attempt: u32,
    ) -> Option<ReplicateReply> {
        let outcome = if linked {
            let link = node.peers.link(map, peer)?;
            link.call_until(request.clone(), deadline)
                .await
                .map_err(|error| error.to_string())
        } else {
            let mut client = node.peers.client(map, peer)?;
            match tokio::time::timeout_at(deadline.into(), client.replicate(request.clone())).await
            {
                Ok(Ok(reply)) => Ok(reply.into_inner()),
                Ok(Err(status)) => Err(status.to_string()),
                Err(_) => Err("no reply before the deadline".to_owned()),
            }
        };
        outcome
            .inspect_err(|error| {
                tracing::debug!(pg = %self.id, peer, %error, attempt, "replicate failed");
            })
            .ok()
    }

    /// Applies a primary's write as a replica (the caller checked epochs and membership).
    pub async fn replica_apply(
        self: &Arc<Self>,
        node: &Arc<Node>,
        request: ReplicateRequest,
        deadline: Instant,
    ) -> ReplicateReply {
        let epoch = u64::from(node.epoch());
        let reply = |status: ReplicateStatus, message: String, head: Eversion| ReplicateReply {
            epoch,
            status: status as i32,
            message,
            last_update: Some(wire::ev_to_wire(head)),
        };
        let version = wire::ev_from_wire(request.version.as_ref());
        let prior = wire::ev_from_wire(request.prior_version.as_ref());
        let Some(reqid) = wire::reqid_from_wire(request.reqid.as_ref()) else {
            return reply(ReplicateStatus::Failed, "no reqid".into(), self.head());
        };
        let ops = match wire::parse_ops(&request.ops, node.config.max_object_size) {
            Ok(wire::ParsedOp::Write(ops)) => ops,
            Ok(wire::ParsedOp::Read(_)) => {
                return reply(
                    ReplicateStatus::Failed,
                    "reads cannot be replicated".into(),
                    self.head(),
                )
            }
            Err(failure) => return reply(ReplicateStatus::Failed, failure.message, self.head()),
        };
        // A write may overtake its predecessor on the way: wait for it (bounded).
        let mut heads = self.head_watch.subscribe();
        let wait = deadline.min(Instant::now() + PREDECESSOR_WAIT);
        let _ = tokio::time::timeout_at(wait.into(), heads.wait_for(|head| *head >= prior)).await;
        let object = wire::object_from_wire(request.object.as_ref());
        let mtime = wire::nanos_to_time(request.mtime_ns);
        let pg = Arc::clone(self);
        let store = Arc::clone(&node.store);
        let pgid = self.id;
        let inline = super::runs_inline(WriteOp::payload_len_of(&ops));
        let applied = super::store_work(inline, move || {
            let staged = store.stage(&ops)?;
            let mut head = lock(&pg.head);
            if *head != prior {
                // Already applied (a resend), or writes are missing.
                return match store.lookup_reqid(pgid, reqid) {
                    Ok(Some(found)) => Ok(Ok(found)),
                    Ok(None) => Ok(Err(*head)),
                    Err(error) => Err(error),
                };
            }
            let mut txn = Transaction::new(pgid, object, version.epoch);
            txn.at_version(version).reqid(reqid).mtime(mtime);
            for op in ops {
                txn.push(op);
            }
            let committed = store.apply_staged(txn, staged)?;
            if committed == version {
                *head = version;
                pg.head_watch.send_replace(version);
            }
            Ok(Ok(committed))
        })
        .await;
        match applied {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(head))) => {
                return reply(
                    ReplicateStatus::OutOfOrder,
                    format!("log head is {head}, the write follows {prior}"),
                    head,
                )
            }
            Ok(Err(error)) => {
                tracing::error!(pg = %self.id, %version, %error, "replicated write failed");
                return reply(ReplicateStatus::Failed, error.to_string(), self.head());
            }
            Err(failure) => return reply(ReplicateStatus::Failed, failure.message, self.head()),
        }
        match node.syncer.sync().await {
            Ok(()) => reply(ReplicateStatus::Replicated, String::new(), self.head()),
            Err(error) => reply(ReplicateStatus::Failed, error, self.head()),
        }
    }

    /// Whether `from` is our PG's primary and we are an acting member in our view.
    pub fn accepts_from(&self, from: i32, me: i32) -> bool {
        let view = self.view();
        view.primary == from && view.acting.contains(&me) && view.role == Role::Replica
    }
}
