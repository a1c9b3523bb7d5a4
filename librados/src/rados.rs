//! [`Rados`]: a connected client. It owns the map cache, the client's identity and the
//! resend engine every object op and listing goes through.
//!
//! * **Map cache.** The map fetched at connect time is kept in a `tokio::sync::watch`; a
//!   background task follows the monitors with [`MapWatch`] and installs every newer epoch.
//!   An op that learns of a newer epoch from an OSD waits for the watch to bring it, and
//!   polls the monitors itself when the watch is slow.
//! * **Identity.** A random non-zero client id and a counter give every op a request id
//!   (`reqid` = (client, tid)). A write keeps its reqid across every resend, so the PG log
//!   on the OSDs applies it once however many times it arrives.
//! * **Resends** ([`Rados::submit`]), until the op timeout (`[client] op_timeout_ms`):
//!   `STALE_EPOCH` / `MISDIRECTED` → wait for at least the epoch the OSD named, recompute
//!   the placement and resend to the (new) primary; a transport error or a PG without an up
//!   primary → wait a little for a newer map (the monitors mark a dead OSD down) and resend;
//!   `BUSY` → back off and resend; a map that moves the PG's primary while a reply is
//!   outstanding → resend to the new primary at once. Only a reply without error from the
//!   primary the client addressed counts as success; everything else ends in an error
//!   ([`RadosError::Timeout`] names the object and what was awaited).

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clustermap::{ClusterMap, OsdId, PgId, PoolId};
use proto::link::OpLink;
use proto::osd::osd_client::OsdClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Code;

use crate::config::ClientConfig;
use crate::error::{ClientError, RadosError};
use crate::ioctx::IoCtx;
use crate::mon_client::MonClient;
use crate::osd_conn::OsdConns;

/// The first pause after a BUSY answer or a transport error; it doubles up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between two resends.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// How long an op waits for the map watch to bring an epoch before asking a monitor itself.
const WATCH_GRACE: Duration = Duration::from_millis(100);

/// Where an op goes: the PG of an object (recomputed from each map, since `pg_num` may
/// change), or one PG (listings).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'a> {
    /// An object of a pool.
    Object {
        /// The pool.
        pool: PoolId,
        /// The object's name.
        name: &'a str,
        /// Its namespace.
        namespace: &'a str,
    },
    /// One PG.
    Pg(PgId),
}

/// How one attempt at the primary ended, as the resend engine needs to know it.
pub(crate) enum Answer<T> {
    /// Acknowledged by the primary.
    Done(T),
    /// `STALE_EPOCH`: the OSD is at `osd_epoch`.
    Stale {
        /// The OSD's epoch.
        osd_epoch: u64,
        /// Its explanation.
        message: String,
    },
    /// `MISDIRECTED`: not the primary at `osd_epoch`.
    Misdirected {
        /// The OSD's epoch.
        osd_epoch: u64,
        /// Its explanation.
        message: String,
    },
    /// `BUSY`: the PG cannot serve the op now.
    Busy(String),
    /// A final answer.
    Fail(RadosError),
}

impl<T> Answer<T> {
    /// Sorts an OSD reply's error: retryable kinds become their [`Answer`] variants, the
    /// rest are final errors for `object`.
    pub(crate) fn from_error(
        osd: OsdId,
        object: &str,
        osd_epoch: u64,
        error: &proto::osd::OpError,
    ) -> Answer<T> {
        use proto::osd::OpErrorKind as Kind;
        let message = error.message.clone();
        match Kind::try_from(error.kind) {
            Ok(Kind::StaleEpoch) => Answer::Stale { osd_epoch, message },
            Ok(Kind::Misdirected) => Answer::Misdirected { osd_epoch, message },
            Ok(Kind::Busy) => Answer::Busy(message),
            _ => Answer::Fail(RadosError::from_op_error(osd, object, error)),
        }
    }
}

/// One attempt's context: the map it was computed from and where it goes.
pub(crate) struct Attempt {
    /// The OSD client of the primary.
    pub(crate) client: OsdClient<Channel>,
    /// The primary's address, and the connections to open its op link from.
    addr: String,
    conns: Arc<OsdConns>,
    /// The map's epoch.
    pub(crate) epoch: u64,
    /// The PG.
    pub(crate) pgid: PgId,
    /// The primary.
    pub(crate) osd: OsdId,
}

impl Attempt {
    /// The op link to the primary (opened on first use).
    pub(crate) fn op_link(&self) -> Arc<OpLink> {
        self.conns.op_link(self.osd, &self.addr)
    }
}

struct Inner {
    mon: MonClient,
    config: ClientConfig,
    client_id: u64,
    next_tid: AtomicU64,
    maps: watch::Sender<Arc<ClusterMap>>,
    conns: Arc<OsdConns>,
    follower: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The map follower holds no reference to the client; stop it with the last handle.
        self.follower.abort();
    }
}

/// A connected client; cheap to clone (clones share the map cache and connections).
#[derive(Clone)]
pub struct Rados {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Rados {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rados")
            .field("client_id", &self.inner.client_id)
            .field("epoch", &self.map().epoch())
            .finish_non_exhaustive()
    }
}

/// A random non-zero client id (per process and per client instance).
fn random_client_id() -> u64 {
    // `RandomState` is seeded from the OS's randomness; mixing in the time and pid keeps
    // ids apart even where the seeds repeat.
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish().max(1)
}

/// Installs `map` when it is newer than the cached one.
fn install(maps: &watch::Sender<Arc<ClusterMap>>, map: Arc<ClusterMap>) -> bool {
    maps.send_if_modified(|current| {
        if map.epoch() > current.epoch() {
            tracing::debug!(
                from = current.epoch(),
                to = map.epoch(),
                "client map updated"
            );
            *current = map;
            true
        } else {
            false
        }
    })
}

/// Follows the monitors' map stream forever, installing each epoch.
async fn follow_maps(mon: MonClient, maps: watch::Sender<Arc<ClusterMap>>) {
    loop {
        let start = maps.borrow().clone();
        let mut watch = mon.watch_from(start);
        loop {
            match watch.next().await {
                Ok(event) => {
                    install(&maps, event.map);
                }
                Err(error) => {
                    tracing::warn!(%error, "map watch failed; starting it again");
                    tokio::time::sleep(MAX_BACKOFF).await;
                    break;
                }
            }
        }
    }
}

/// Whether a gRPC status from an OSD is final (resending cannot help) and what it means.
fn final_status(osd: OsdId, object: &str, status: &tonic::Status) -> Option<RadosError> {
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange => Some(RadosError::InvalidArgument {
            reason: format!("object `{object}`: osd.{osd}: {}", status.message()),
        }),
        Code::ResourceExhausted => Some(RadosError::TooLarge {
            object: object.to_owned(),
            reason: format!("osd.{osd}: {}", status.message()),
        }),
        Code::Unimplemented | Code::PermissionDenied | Code::Unauthenticated => {
            Some(RadosError::Transport {
                osd,
                reason: format!("{:?}: {}", status.code(), status.message()),
            })
        }
        _ => None,
    }
}

impl Rados {
    /// Connects to the monitors, fetches the map and starts following it.
    pub async fn connect(config: ClientConfig) -> Result<Rados, RadosError> {
        let mon = MonClient::new(config)?;
        Self::with_mon_client(mon).await
    }

    /// A client over an existing monitor client (its config gives the timeouts).
    pub async fn with_mon_client(mon: MonClient) -> Result<Rados, RadosError> {
        let map = mon.get_map().await?;
        let (maps, _) = watch::channel(map);
        let follower = tokio::spawn(follow_maps(mon.clone(), maps.clone()));
        let config = mon.config().clone();
        let client_id = random_client_id();
        tracing::debug!(
            client_id,
            epoch = maps.borrow().epoch(),
            "rados client connected"
        );
        Ok(Rados {
            inner: Arc::new(Inner {
                conns: Arc::new(OsdConns::new(config.connect_timeout)),
                mon,
                config,
                client_id,
                next_tid: AtomicU64::new(1),
                maps,
                follower,
            }),
        })
    }

    /// The monitor client.
    pub fn mon(&self) -> &MonClient {
        &self.inner.mon
    }

    /// The client's id (the first half of every request id).
    pub fn client_id(&self) -> u64 {
        self.inner.client_id
    }

    /// The longest one op may take.
    pub fn op_timeout(&self) -> Duration {
        self.inner.config.op_timeout
    }

    /// The cached map.
    pub fn map(&self) -> Arc<ClusterMap> {
        self.inner.maps.borrow().clone()
    }

    /// The next request id's tid.
    pub(crate) fn next_tid(&self) -> u64 {
        self.inner.next_tid.fetch_add(1, Ordering::Relaxed)
    }

    /// A context for the pool named `pool`. A pool the cached map does not know is looked
    /// up again in the leader's latest map before [`RadosError::PoolNotFound`].
    pub async fn ioctx(&self, pool: &str) -> Result<IoCtx, RadosError> {
        if let Some(found) = self.map().pool_by_name(pool) {
            return Ok(IoCtx::new(self.clone(), found.id, pool.to_owned()));
        }
        let latest = match self.inner.mon.latest_map().await {
            Ok(map) => map,
            Err(error) if error.is_unavailable() => self.inner.mon.get_map().await?,
            Err(error) => return Err(error.into()),
        };
        install(&self.inner.maps, Arc::clone(&latest));
        match self.map().pool_by_name(pool) {
            Some(found) => Ok(IoCtx::new(self.clone(), found.id, pool.to_owned())),
            None => Err(RadosError::PoolNotFound {
                pool: pool.to_owned(),
            }),
        }
    }

    /// Waits until the cached map is at `epoch` or later, for at most `timeout`.
    pub async fn wait_for_epoch(
        &self,
        epoch: u64,
        timeout: Duration,
    ) -> Result<Arc<ClusterMap>, RadosError> {
        let start = Instant::now();
        self.refresh_to(epoch, start + timeout)
            .await
            .ok_or_else(|| {
                RadosError::Mon(ClientError::Timeout {
                    what: format!("map epoch {epoch}"),
                    waited_ms: start.elapsed().as_millis(),
                })
            })
    }

    /// An OSD's admin status (`OsdStatus`): its store usage and the PGs it holds.
    pub async fn osd_status(&self, osd: OsdId) -> Result<proto::osd::OsdStatusReply, RadosError> {
        let map = self.map();
        let addr = map
            .osd(osd)
            .and_then(|info| info.address.clone())
            .ok_or_else(|| RadosError::Transport {
                osd,
                reason: "the map has no address for it".to_owned(),
            })?;
        let mut client = self.inner.conns.client(osd, &addr)?;
        let call = client.osd_status(proto::osd::OsdStatusRequest {});
        match tokio::time::timeout(self.inner.config.call_timeout, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => {
                self.inner.conns.forget(&addr);
                Err(RadosError::Transport {
                    osd,
                    reason: format!("{addr}: {:?}: {}", status.code(), status.message()),
                })
            }
            Err(_) => Err(RadosError::Transport {
                osd,
                reason: format!(
                    "{addr}: no answer within {} ms",
                    self.inner.config.call_timeout.as_millis()
                ),
            }),
        }
    }

    /// Waits until the cached map reaches `epoch`, asking the monitors directly when the
    /// watch has not brought it within [`WATCH_GRACE`]; `None` at `deadline`.
    pub(crate) async fn refresh_to(
        &self,
        epoch: u64,
        deadline: Instant,
    ) -> Option<Arc<ClusterMap>> {
        let mut receiver = self.inner.maps.subscribe();
        let mut next_poll = Instant::now() + WATCH_GRACE;
        loop {
            let current = receiver.borrow_and_update().clone();
            if u64::from(current.epoch()) >= epoch {
                return Some(current);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            if now >= next_poll {
                let limit = self
                    .inner
                    .config
                    .call_timeout
                    .min(deadline.saturating_duration_since(now));
                if let Ok(Ok(map)) = tokio::time::timeout(limit, self.inner.mon.get_map()).await {
                    install(&self.inner.maps, map);
                }
                next_poll = Instant::now() + WATCH_GRACE * 2;
                continue;
            }
            let wake = next_poll.min(deadline);
            tokio::select! {
                changed = receiver.changed() => {
                    if changed.is_err() {
                        // The client is shutting down; nothing newer will come.
                        return None;
                    }
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Where `target` goes in `map`: its PG and primary with the primary's address, or why
    /// it cannot go anywhere now (`Err(Ok(reason))`) or ever (`Err(Err(error))`).
    fn locate(
        map: &ClusterMap,
        target: Target<'_>,
    ) -> Result<(PgId, OsdId, String), Result<String, RadosError>> {
        let pgid = match target {
            Target::Object {
                pool,
                name,
                namespace,
            } => map.object_to_pg(pool, name, namespace),
            Target::Pg(pgid) => map.pg_to_up_acting(pgid).map(|mapping| mapping.pgid),
        }
        .map_err(|_| {
            let pool = match target {
                Target::Object { pool, .. } => pool,
                Target::Pg(pgid) => pgid.pool,
            };
            Err(RadosError::PoolNotFound {
                pool: format!("id {pool} (removed at or before epoch {})", map.epoch()),
            })
        })?;
        let mapping = map
            .pg_to_up_acting(pgid)
            .map_err(|error| Ok(error.to_string()))?;
        let primary = mapping.acting_primary;
        if primary < 0 || !map.is_up(primary) {
            return Err(Ok(format!(
                "pg {pgid} has no up primary at epoch {} (acting {:?})",
                map.epoch(),
                mapping.acting
            )));
        }
        match map.osd(primary).and_then(|info| info.address.clone()) {
            Some(addr) => Ok((pgid, primary, addr)),
            None => Err(Ok(format!(
                "osd.{primary} (primary of pg {pgid}) has no address at epoch {}",
                map.epoch()
            ))),
        }
    }

    /// Resolves when a map newer than `epoch` sends `target` to another primary than
    /// `primary` (or nowhere).
    async fn primary_moved(&self, target: Target<'_>, primary: OsdId, epoch: u64) {
        let mut receiver = self.inner.maps.subscribe();
        loop {
            if receiver.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            let map = receiver.borrow_and_update().clone();
            if u64::from(map.epoch()) <= epoch {
                continue;
            }
            match Self::locate(&map, target) {
                Ok((_, now_primary, _)) if now_primary == primary => {}
                _ => return,
            }
        }
    }

    /// Sends an op to the primary of `target` with `attempt` and resends it as the module
    /// documentation describes until it is acknowledged, fails for good or times out.
    /// `label` names the object in errors; `what` says what is awaited ("the write", ...).
    pub(crate) async fn submit<T, F, Fut>(
        &self,
        label: &str,
        what: &str,
        target: Target<'_>,
        mut attempt: F,
    ) -> Result<T, RadosError>
    where
        F: FnMut(Attempt) -> Fut,
        Fut: Future<Output = Result<Answer<T>, tonic::Status>>,
    {
        let start = Instant::now();
        let deadline = start + self.inner.config.op_timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::from("no answer yet");
        let mut attempts = 0u32;
        loop {
            if Instant::now() >= deadline {
                return Err(RadosError::Timeout {
                    object: label.to_owned(),
                    what: format!("{what} to be acknowledged by the PG's primary ({attempts} attempts; last: {last})"),
                    waited_ms: start.elapsed().as_millis(),
                });
            }
            let map = self.map();
            let epoch = u64::from(map.epoch());
            let (pgid, osd, addr) = match Self::locate(&map, target) {
                Ok(found) => found,
                Err(Err(error)) => return Err(error),
                Err(Ok(reason)) => {
                    tracing::debug!(label, reason, "op cannot be sent; waiting for a newer map");
                    last = reason;
                    self.refresh_to(epoch + 1, deadline).await;
                    continue;
                }
            };
            let client = self.inner.conns.client(osd, &addr)?;
            attempts += 1;
            let call = attempt(Attempt {
                client,
                addr: addr.clone(),
                conns: Arc::clone(&self.inner.conns),
                epoch,
                pgid,
                osd,
            });
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = tokio::select! {
                outcome = tokio::time::timeout(remaining, call) => outcome,
                _ = self.primary_moved(target, osd, epoch) => {
                    tracing::debug!(label, osd, %pgid, "pg's primary changed while an op was outstanding; resending");
                    last = format!("osd.{osd} stopped being the primary of pg {pgid}");
                    continue;
                }
            };
            match outcome {
                Err(_) => {
                    last =
                        format!("osd.{osd} (primary of pg {pgid} at epoch {epoch}) did not answer");
                }
                Ok(Ok(Answer::Done(value))) => return Ok(value),
                Ok(Ok(Answer::Fail(error))) => return Err(error),
                Ok(Ok(Answer::Stale { osd_epoch, message })) => {
                    tracing::debug!(
                        label,
                        osd,
                        epoch,
                        osd_epoch,
                        "STALE_EPOCH; refreshing the map and resending"
                    );
                    last = format!("osd.{osd} said STALE_EPOCH (its epoch {osd_epoch}, ours {epoch}): {message}");
                    self.wait_newer(epoch, osd_epoch, &mut backoff, deadline)
                        .await;
                }
                Ok(Ok(Answer::Misdirected { osd_epoch, message })) => {
                    tracing::debug!(
                        label,
                        osd,
                        epoch,
                        osd_epoch,
                        "MISDIRECTED; refreshing the map and resending"
                    );
                    last = format!("osd.{osd} said MISDIRECTED (its epoch {osd_epoch}, ours {epoch}): {message}");
                    self.wait_newer(epoch, osd_epoch, &mut backoff, deadline)
                        .await;
                }
                Ok(Ok(Answer::Busy(message))) => {
                    tracing::debug!(label, osd, %pgid, message, "BUSY; backing off");
                    last = format!("osd.{osd} said BUSY: {message}");
                    self.pause(epoch, &mut backoff, deadline).await;
                }
                Ok(Err(status)) => {
                    if let Some(error) = final_status(osd, label, &status) {
                        return Err(error);
                    }
                    tracing::debug!(label, osd, addr, code = ?status.code(), message = status.message(), "transport error; waiting for a newer map and resending");
                    self.inner.conns.forget(&addr);
                    last = format!(
                        "osd.{osd} at {addr}: {:?}: {}",
                        status.code(),
                        status.message()
                    );
                    self.pause(epoch, &mut backoff, deadline).await;
                }
            }
        }
    }

    /// After STALE_EPOCH or MISDIRECTED: the OSD's epoch, when newer than ours, is what we
    /// must reach; otherwise (the OSD is behind, or agrees) give the maps a moment.
    async fn wait_newer(
        &self,
        epoch: u64,
        osd_epoch: u64,
        backoff: &mut Duration,
        deadline: Instant,
    ) {
        if osd_epoch > epoch {
            self.refresh_to(osd_epoch, deadline).await;
        } else {
            self.pause(epoch, backoff, deadline).await;
        }
    }

    /// Waits for a map newer than `epoch`, at most the current backoff, which then doubles.
    async fn pause(&self, epoch: u64, backoff: &mut Duration, deadline: Instant) {
        let until = (Instant::now() + *backoff).min(deadline);
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        let mut receiver = self.inner.maps.subscribe();
        loop {
            if u64::from(receiver.borrow_and_update().epoch()) > epoch {
                return;
            }
            tokio::select! {
                changed = receiver.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = tokio::time::sleep_until(until.into()) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::osd::{OpError, OpErrorKind};

    fn answer(kind: OpErrorKind) -> Answer<()> {
        let error = OpError {
            kind: kind as i32,
            message: "why".into(),
            actual_version: None,
        };
        Answer::from_error(2, "obj", 17, &error)
    }

    #[test]
    fn retryable_answers_are_sorted_from_final_ones() {
        assert!(matches!(
            answer(OpErrorKind::StaleEpoch),
            Answer::Stale { osd_epoch: 17, .. }
        ));
        assert!(matches!(
            answer(OpErrorKind::Misdirected),
            Answer::Misdirected { osd_epoch: 17, .. }
        ));
        assert!(matches!(answer(OpErrorKind::Busy), Answer::Busy(m) if m == "why"));
        assert!(matches!(
            answer(OpErrorKind::NotFound),
            Answer::Fail(RadosError::NotFound { .. })
        ));
        assert!(matches!(
            answer(OpErrorKind::Internal),
            Answer::Fail(RadosError::Internal { osd: 2, .. })
        ));
    }

    #[test]
    fn final_grpc_statuses_are_not_retried() {
        let status = tonic::Status::invalid_argument("garbage");
        assert!(matches!(
            final_status(1, "o", &status),
            Some(RadosError::InvalidArgument { .. })
        ));
        let status = tonic::Status::resource_exhausted("message too large");
        assert!(matches!(
            final_status(1, "o", &status),
            Some(RadosError::TooLarge { .. })
        ));
        for status in [
            tonic::Status::unavailable("connection refused"),
            tonic::Status::unknown("h2 protocol error"),
            tonic::Status::cancelled("reset"),
            tonic::Status::internal("broken pipe"),
        ] {
            assert!(final_status(1, "o", &status).is_none(), "{status:?}");
        }
    }

    #[test]
    fn client_ids_are_random_and_non_zero() {
        let a = random_client_id();
        let b = random_client_id();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }
}
