//! The gRPC services of mon.proto: `Monitor` (maps, watches, commands, status) and
//! `OsdReport` (boot, beacons, failure reports, PG statistics), plus the failure-policy and
//! address-announcement loops that run beside them.
//!
//! Routing: calls that must reach the leader (commands, status, OSD reports) are handled
//! locally when this monitor leads, and otherwise forwarded to the leader with the header
//! `shoal-forwarded: 1`; a forwarded call that lands on a non-leader fails with UNAVAILABLE
//! and the forwarder retries once it knows the new leader. Waiting for a leader, forwarding
//! and committing all share the command's deadline; when it passes the answer is a
//! `NO_QUORUM` error. Maps and watches are served from this monitor's own applied state.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clustermap::{ClusterMap, HealthConfig, HealthInput, PgId, PgStatReport, Uuid};
use proto::mon::command::Kind;
use proto::mon::monitor_client::MonitorClient;
use proto::mon::monitor_server::Monitor;
use proto::mon::osd_report_client::OsdReportClient;
use proto::mon::osd_report_server::OsdReport;
use proto::mon::{
    command_reply, map_update, Command, CommandOk, CommandReply, CommandRequest, FailureReport,
    FailureReportReply, GetMapRequest, Health, HealthCheck, MapReply, MapUpdate, MonSetAddress,
    MonitorInfo, OsdBeacon, OsdBeaconReply, OsdBootReply, OsdBootRequest, PgStatsReply,
    PgStatsReport, PgSummary, StatusReply, StatusRequest, WatchMapRequest,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::commands::translate;
use crate::config::MonConfig;
use crate::error::SubmitError;
use crate::node::{NodeHandle, ProposeError, Role};
use crate::policy::{SoftState, StorageUsage};
use crate::state::{CommandOutput, MapMachine, MapView, MonCommand, OsdBoot};
use crate::transport::PeerTransport;

/// The metadata header that marks a call forwarded by another monitor.
pub const FORWARDED_HEADER: &str = "shoal-forwarded";

/// Encodes a map for the wire (serde_json of `clustermap::ClusterMap`, deterministic).
pub fn encode_map(map: &ClusterMap) -> Vec<u8> {
    serde_json::to_vec(map).unwrap_or_default()
}

/// Decodes a map from the wire.
pub fn decode_map(bytes: &[u8]) -> Result<ClusterMap, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Encodes an incremental for the wire (serde_json of `clustermap::Incremental`).
pub fn encode_incremental(incremental: &clustermap::Incremental) -> Vec<u8> {
    serde_json::to_vec(incremental).unwrap_or_default()
}

/// Decodes an incremental from the wire.
pub fn decode_incremental(bytes: &[u8]) -> Result<clustermap::Incremental, serde_json::Error> {
    serde_json::from_slice(bytes)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a leader-bound call goes.
enum Route {
    Local,
    Remote { leader: u64, channel: Channel },
}

/// State shared by the services and the background loops of one monitor.
pub struct Shared {
    /// This monitor's id.
    pub id: u64,
    /// The address this monitor serves on.
    pub own_addr: String,
    /// The configuration.
    pub config: MonConfig,
    /// The Raft node.
    pub node: NodeHandle<MapMachine>,
    /// The applied state.
    pub view: watch::Receiver<MapView>,
    /// The peer transport (for leader addresses).
    pub transport: Arc<PeerTransport>,
    /// Becomes true when the monitor stops.
    pub shutdown: watch::Receiver<bool>,
    soft: Mutex<SoftState>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Shared {
    /// Shared state for the services.
    pub fn new(
        config: MonConfig,
        own_addr: String,
        node: NodeHandle<MapMachine>,
        view: watch::Receiver<MapView>,
        transport: Arc<PeerTransport>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            id: config.id,
            own_addr,
            config,
            node,
            view,
            transport,
            shutdown,
            soft: Mutex::new(SoftState::default()),
            channels: Mutex::new(HashMap::new()),
        })
    }

    fn soft(&self) -> std::sync::MutexGuard<'_, SoftState> {
        self.soft.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn epoch(&self) -> u64 {
        u64::from(self.view.borrow().epoch())
    }

    fn channel(&self, addr: &str) -> Option<Channel> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(channel) = channels.get(addr) {
            return Some(channel.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).ok()?;
        let channel = endpoint
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Some(channel)
    }

    fn leader_address(&self, leader: u64) -> Option<String> {
        self.transport.address_of(leader).or_else(|| {
            self.view
                .borrow()
                .members
                .get(&leader)
                .map(|member| member.addr.clone())
        })
    }

    /// Waits (until `deadline`) for a leader and says how to reach it.
    async fn route(&self, deadline: Instant) -> Option<Route> {
        let mut status = self.node.watch_status();
        loop {
            let current = status.borrow_and_update().clone();
            if current.stopped {
                return None;
            }
            if current.role == Role::Leader {
                return Some(Route::Local);
            }
            if current.leader_id != 0 && current.leader_id != self.id {
                if let Some(channel) = self
                    .leader_address(current.leader_id)
                    .and_then(|addr| self.channel(&addr))
                {
                    return Some(Route::Remote {
                        leader: current.leader_id,
                        channel,
                    });
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return None;
            }
            let _ =
                tokio::time::timeout(remaining.min(Duration::from_millis(100)), status.changed())
                    .await;
        }
    }

    /// Pauses before a retry, never past the deadline.
    async fn pause(deadline: Instant) {
        let remaining = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(remaining.min(Duration::from_millis(50))).await;
    }

    fn not_leader(&self, leader: u64) -> Status {
        Status::unavailable(format!(
            "monitor {} is not the leader (leader: {})",
            self.id,
            if leader == 0 {
                "unknown".to_owned()
            } else {
                leader.to_string()
            }
        ))
    }

    fn command_reply(result: Result<CommandOutput, SubmitError>, epoch: u64) -> CommandReply {
        let outcome = match result {
            Ok(output) => command_reply::Outcome::Ok(CommandOk {
                epoch: u64::from(output.epoch),
                message: output.message,
                created_id: output.created_id,
            }),
            Err(error) => command_reply::Outcome::Error(error.to_proto(epoch)),
        };
        CommandReply {
            outcome: Some(outcome),
        }
    }

    /// Proposes a replicated command locally (this monitor leads), retrying while a
    /// membership change is in flight. `Err(None)` means "not the leader any more".
    async fn propose_local(
        &self,
        command: MonCommand,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<CommandOutput, Option<SubmitError>> {
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(Some(SubmitError::no_quorum(
                    timeout,
                    self.node.status().leader_id,
                )));
            }
            match self.node.propose(command.clone(), remaining).await {
                Ok(output) => return Ok(output),
                Err(ProposeError::NotLeader { .. }) => return Err(None),
                Err(ProposeError::MembershipBusy) => Self::pause(deadline).await,
                Err(ProposeError::Timeout) => {
                    let leader = self.node.status().leader_id;
                    return Err(Some(SubmitError::no_quorum(timeout, leader)));
                }
                Err(error) => return Err(Some(SubmitError::from_propose(error, timeout))),
            }
        }
    }

    /// Runs an admin command: locally when leading, else forwarded to the leader.
    pub async fn run_command(
        &self,
        command: Command,
        timeout: Duration,
        forwarded: bool,
    ) -> Result<CommandReply, Status> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.route(deadline).await {
                None => {
                    let error = SubmitError::no_quorum(timeout, 0);
                    return Ok(Self::command_reply(Err(error), self.epoch()));
                }
                Some(Route::Local) => {
                    let view = self.view.borrow().clone();
                    let epoch = u64::from(view.epoch());
                    let translated =
                        translate(&command, view.map.as_deref(), &self.config.pool_defaults);
                    let mon_command = match translated {
                        Ok(mon_command) => mon_command,
                        Err(error) => {
                            return Ok(Self::command_reply(Err(error.into()), epoch));
                        }
                    };
                    match self.propose_local(mon_command, deadline, timeout).await {
                        Ok(output) => return Ok(Self::command_reply(Ok(output), epoch)),
                        Err(Some(error)) => {
                            return Ok(Self::command_reply(Err(error), self.epoch()))
                        }
                        Err(None) if forwarded => {
                            return Err(self.not_leader(self.node.status().leader_id))
                        }
                        Err(None) => Self::pause(deadline).await,
                    }
                }
                Some(Route::Remote { leader, channel }) => {
                    if forwarded {
                        return Err(self.not_leader(leader));
                    }
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let mut request = Request::new(CommandRequest {
                        command: Some(command.clone()),
                        timeout_ms: remaining.as_millis().max(1) as u64,
                    });
                    mark_forwarded(&mut request, remaining);
                    match MonitorClient::new(channel).command(request).await {
                        Ok(reply) => return Ok(reply.into_inner()),
                        Err(status) => {
                            tracing::debug!(leader, %status, "forwarding a command failed; retrying");
                            Self::pause(deadline).await;
                        }
                    }
                }
            }
        }
    }

    /// Builds the status reply (with health and quorum when this monitor leads).
    fn status_reply(&self) -> StatusReply {
        let view = self.view.borrow().clone();
        let status = self.node.status();
        let is_leader = status.role == Role::Leader;
        let active: BTreeSet<u64> = status.recently_active.iter().copied().collect();
        let monitors: Vec<MonitorInfo> = status
            .voters
            .iter()
            .map(|id| {
                let member = view.members.get(id);
                MonitorInfo {
                    id: *id,
                    name: member.map_or_else(|| id.to_string(), |m| m.name.clone()),
                    addr: member.map(|m| m.addr.clone()).unwrap_or_default(),
                    in_quorum: is_leader && active.contains(id),
                    leader: *id == status.leader_id,
                }
            })
            .collect();
        let mut reply = StatusReply {
            fsid: String::new(),
            epoch: u64::from(view.epoch()),
            answered_by: self.id,
            leader_id: status.leader_id,
            term: status.term,
            monitors,
            commit_index: status.commit,
            applied_index: status.applied,
            snapshot_index: status.snapshot_index,
            last_index: status.last_index,
            health: None,
            num_osds: 0,
            num_up_osds: 0,
            num_in_osds: 0,
            num_pools: 0,
            pgs: None,
        };
        let Some(map) = view.map else {
            return reply;
        };
        reply.fsid = map.fsid().to_string();
        reply.num_osds = map.osds().len() as u32;
        reply.num_up_osds = map.osds().values().filter(|osd| osd.up).count() as u32;
        reply.num_in_osds = map.osds().values().filter(|osd| osd.is_in).count() as u32;
        reply.num_pools = map.pools().len() as u32;
        if is_leader {
            let quorum: BTreeSet<String> = status
                .voters
                .iter()
                .filter(|id| active.contains(id))
                .filter_map(|id| view.members.get(id).map(|member| member.name.clone()))
                .collect();
            let mut soft = self.soft();
            soft.ensure_term(status.term);
            let pg_stats = soft.pg_stat_reports();
            let health = clustermap::health(
                &map,
                &HealthInput {
                    quorum: Some(&quorum),
                    pg_stats: Some(pg_stats),
                    now_ms: Some(now_ms()),
                    config: HealthConfig {
                        osd_pool_default_size: self.config.pool_defaults.size,
                        ..HealthConfig::default()
                    },
                },
            );
            reply.health = Some(Health {
                status: health.status.to_string(),
                checks: health
                    .checks
                    .iter()
                    .map(|check| HealthCheck {
                        code: check.code.clone(),
                        severity: check.severity.to_string(),
                        summary: check.summary.clone(),
                        detail: check.detail.clone(),
                    })
                    .collect(),
            });
            reply.pgs = Some(pg_summary(pg_stats));
        }
        reply
    }

    /// Routes an OSD-facing call: `Ok(None)` means "handle it here", `Ok(Some(channel))`
    /// "forward it there".
    async fn osd_route(
        &self,
        forwarded: bool,
        deadline: Instant,
    ) -> Result<Option<Channel>, Status> {
        match self.route(deadline).await {
            None => Err(Status::unavailable(
                "no quorum: no monitor leader is reachable; retry another monitor",
            )),
            Some(Route::Local) => Ok(None),
            Some(Route::Remote { leader, .. }) if forwarded => Err(self.not_leader(leader)),
            Some(Route::Remote { channel, .. }) => Ok(Some(channel)),
        }
    }

    fn osd_deadline(&self) -> Instant {
        Instant::now() + self.config.command_timeout()
    }

    /// Runs one round of the failure policy (leader only) and proposes its decisions.
    pub fn policy_round(self: &Arc<Self>) {
        let status = self.node.status();
        if status.role != Role::Leader {
            return;
        }
        let Some(map) = self.view.borrow().map.clone() else {
            return;
        };
        let decisions = {
            let mut soft = self.soft();
            soft.ensure_term(status.term);
            soft.evaluate(&map, &self.config.failure, Instant::now(), now_ms())
        };
        for decision in decisions {
            let shared = Arc::clone(self);
            tokio::spawn(async move {
                let timeout = shared.config.command_timeout();
                let result = shared.node.propose(decision.clone(), timeout).await;
                match &result {
                    Ok(output) => tracing::info!(epoch = output.epoch, "{}", output.message),
                    Err(error) => tracing::debug!(%error, ?decision, "policy decision not applied"),
                }
                shared.soft().settle(&decision);
            });
        }
    }

    /// Announces this monitor's address when the map records another one.
    pub async fn announce_address(self: &Arc<Self>) {
        let needs_update = {
            let view = self.view.borrow();
            view.map.is_some()
                && view
                    .members
                    .get(&self.id)
                    .is_some_and(|member| member.addr != self.own_addr)
        };
        if !needs_update {
            return;
        }
        let command = Command {
            kind: Some(Kind::MonSetAddress(MonSetAddress {
                id: self.id,
                addr: self.own_addr.clone(),
            })),
        };
        match self
            .run_command(command, self.config.command_timeout(), false)
            .await
        {
            Ok(reply) => match reply.outcome {
                Some(command_reply::Outcome::Ok(ok)) => {
                    tracing::info!(epoch = ok.epoch, addr = %self.own_addr, "announced this monitor's address")
                }
                other => tracing::debug!(?other, "address announcement not applied yet"),
            },
            Err(status) => tracing::debug!(%status, "address announcement failed"),
        }
    }
}

fn pg_summary(stats: &BTreeMap<PgId, PgStatReport>) -> PgSummary {
    let mut summary = PgSummary {
        num_pgs: stats.len() as u64,
        ..PgSummary::default()
    };
    for report in stats.values() {
        *summary
            .by_state
            .entry(clustermap::health::format_pg_states(&report.states))
            .or_default() += 1;
        summary.num_objects += report.num_objects;
        summary.num_bytes += report.num_bytes;
    }
    summary
}

fn mark_forwarded<T>(request: &mut Request<T>, timeout: Duration) {
    request.metadata_mut().insert(
        FORWARDED_HEADER,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    request.set_timeout(timeout + Duration::from_millis(500));
}

fn is_forwarded<T>(request: &Request<T>) -> bool {
    request.metadata().get(FORWARDED_HEADER).is_some()
}

/// The client-facing `Monitor` service.
pub struct MonitorService {
    shared: Arc<Shared>,
}

impl MonitorService {
    /// The service over shared monitor state.
    pub fn new(shared: Arc<Shared>) -> Self {
        MonitorService { shared }
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<MapUpdate, Status>> + Send + 'static>>;

/// The updates that bring a subscriber from `last` to the view's epoch (empty when it is
/// there already or ahead).
fn updates_since(view: &MapView, last: u64) -> Vec<MapUpdate> {
    let Some(map) = &view.map else {
        return Vec::new();
    };
    let current = u64::from(map.epoch());
    if current <= last {
        return Vec::new();
    }
    let have_all = last > 0
        && (last + 1..=current)
            .all(|epoch| u32::try_from(epoch).is_ok_and(|epoch| view.history.contains_key(&epoch)));
    if have_all {
        (last + 1..=current)
            .filter_map(|epoch| {
                let incremental = view.history.get(&u32::try_from(epoch).ok()?)?;
                Some(MapUpdate {
                    epoch,
                    update: Some(map_update::Update::Incremental(encode_incremental(
                        incremental,
                    ))),
                })
            })
            .collect()
    } else {
        vec![MapUpdate {
            epoch: current,
            update: Some(map_update::Update::FullMap(encode_map(map))),
        }]
    }
}

#[tonic::async_trait]
impl Monitor for MonitorService {
    async fn get_map(
        &self,
        _request: Request<GetMapRequest>,
    ) -> Result<Response<MapReply>, Status> {
        let view = self.shared.view.borrow().clone();
        match view.map {
            Some(map) => Ok(Response::new(MapReply {
                epoch: u64::from(map.epoch()),
                map: encode_map(&map),
            })),
            None => Err(Status::unavailable(
                "the cluster has not been created yet (waiting for the first leader)",
            )),
        }
    }

    type WatchMapStream = UpdateStream;

    async fn watch_map(
        &self,
        request: Request<WatchMapRequest>,
    ) -> Result<Response<Self::WatchMapStream>, Status> {
        let mut last = request.into_inner().since_epoch;
        let mut view = self.shared.view.clone();
        let mut shutdown = self.shared.shutdown.clone();
        let (sender, receiver) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let current = view.borrow_and_update().clone();
                for update in updates_since(&current, last) {
                    last = update.epoch;
                    if sender.send(Ok(update)).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    changed = view.changed() => if changed.is_err() { return },
                    _ = shutdown.changed() => {
                        let _ = sender.send(Err(Status::unavailable("the monitor is shutting down"))).await;
                        return;
                    }
                    _ = sender.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        )))
    }

    async fn command(
        &self,
        request: Request<CommandRequest>,
    ) -> Result<Response<CommandReply>, Status> {
        let forwarded = is_forwarded(&request);
        let request = request.into_inner();
        let timeout = if request.timeout_ms == 0 {
            self.shared.config.command_timeout()
        } else {
            Duration::from_millis(request.timeout_ms)
        };
        let Some(command) = request.command else {
            let error = SubmitError::Command(crate::state::CommandError::InvalidArgument {
                argument: "command".to_owned(),
                value: String::new(),
                reason: "no command given".to_owned(),
            });
            return Ok(Response::new(Shared::command_reply(
                Err(error),
                self.shared.epoch(),
            )));
        };
        self.shared
            .run_command(command, timeout, forwarded)
            .await
            .map(Response::new)
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusReply>, Status> {
        let forwarded = is_forwarded(&request);
        if request.get_ref().local_only {
            return Ok(Response::new(self.shared.status_reply()));
        }
        // Without a reachable leader, answer from this monitor's own view (no health, no
        // quorum) after about two election timeouts rather than failing: `shoal status`
        // must still say what it can when there is no quorum.
        let election = self.shared.config.tick() * self.shared.config.raft.election_ticks as u32;
        let deadline = Instant::now() + (election * 2).min(self.shared.config.command_timeout());
        loop {
            match self.shared.route(deadline).await {
                None => return Ok(Response::new(self.shared.status_reply())),
                Some(Route::Local) => return Ok(Response::new(self.shared.status_reply())),
                Some(Route::Remote { leader, .. }) if forwarded => {
                    return Err(self.shared.not_leader(leader))
                }
                Some(Route::Remote { channel, .. }) => {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    let mut forward = Request::new(StatusRequest { local_only: false });
                    mark_forwarded(&mut forward, remaining);
                    match MonitorClient::new(channel).status(forward).await {
                        Ok(reply) => return Ok(reply),
                        Err(_) if Instant::now() >= deadline => {
                            return Ok(Response::new(self.shared.status_reply()))
                        }
                        Err(_) => Shared::pause(deadline).await,
                    }
                }
            }
        }
    }
}

/// Boots an OSD on the leader: proposes the boot and counts it as a first beacon.
async fn boot_here(
    shared: &Shared,
    boot: OsdBoot,
    deadline: Instant,
) -> Result<Response<OsdBootReply>, Status> {
    let timeout = shared.config.command_timeout();
    match shared
        .propose_local(MonCommand::Boot(boot), deadline, timeout)
        .await
    {
        Ok(output) => {
            let id = i32::try_from(output.created_id).unwrap_or(-1);
            let status = shared.node.status();
            let mut soft = shared.soft();
            soft.ensure_term(status.term);
            soft.beacon(id, None, Instant::now());
            Ok(Response::new(OsdBootReply {
                osd_id: id,
                epoch: u64::from(output.epoch),
            }))
        }
        Err(None) => Err(shared.not_leader(shared.node.status().leader_id)),
        Err(Some(SubmitError::Command(error))) => {
            Err(Status::failed_precondition(error.to_string()))
        }
        Err(Some(error)) => Err(Status::unavailable(error.to_string())),
    }
}

/// The OSD-facing `OsdReport` service.
pub struct OsdReportService {
    shared: Arc<Shared>,
}

impl OsdReportService {
    /// The service over shared monitor state.
    pub fn new(shared: Arc<Shared>) -> Self {
        OsdReportService { shared }
    }
}

/// Forwards an OSD call to the leader until it answers or the deadline passes.
macro_rules! forward_osd_call {
    ($shared:expr, $forwarded:expr, $deadline:expr, $message:expr, $method:ident, $local:expr) => {{
        loop {
            match $shared.osd_route($forwarded, $deadline).await? {
                None => break $local,
                Some(channel) => {
                    let remaining = $deadline.saturating_duration_since(Instant::now());
                    let mut forward = Request::new($message.clone());
                    mark_forwarded(&mut forward, remaining);
                    match OsdReportClient::new(channel).$method(forward).await {
                        Ok(reply) => break Ok(reply),
                        Err(status) if Instant::now() >= $deadline => break Err(status),
                        Err(_) => Shared::pause($deadline).await,
                    }
                }
            }
        }
    }};
}

#[tonic::async_trait]
impl OsdReport for OsdReportService {
    async fn boot(
        &self,
        request: Request<OsdBootRequest>,
    ) -> Result<Response<OsdBootReply>, Status> {
        let forwarded = is_forwarded(&request);
        let message = request.into_inner();
        let uuid: Uuid =
            message
                .uuid
                .parse()
                .map_err(|error: clustermap::types::ParseValueError| {
                    Status::invalid_argument(format!("uuid: {error}"))
                })?;
        if message.addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(Status::invalid_argument(format!(
                "addr: `{}` is not an ip:port address",
                message.addr
            )));
        }
        if message.host.is_empty() || !crush::builder::is_valid_name(&message.host) {
            return Err(Status::invalid_argument(format!(
                "host: `{}` is not a valid CRUSH bucket name",
                message.host
            )));
        }
        if matches!(message.osd_id, Some(id) if id < 0) {
            return Err(Status::invalid_argument("osd_id: OSD ids are >= 0"));
        }
        let crush_weight = crush::builder::weight_from_f64(message.weight.unwrap_or(1.0))
            .map_err(|error| Status::invalid_argument(format!("weight: {error}")))?;
        let mut location: Vec<(String, String)> = message
            .crush_location
            .iter()
            .map(|(kind, name)| (kind.clone(), name.clone()))
            .collect();
        location.sort();
        let boot = OsdBoot {
            uuid,
            id: message.osd_id,
            addr: message.addr.clone(),
            host: message.host.clone(),
            location,
            crush_weight,
            device_class: (!message.device_class.is_empty()).then(|| message.device_class.clone()),
        };
        let shared = &self.shared;
        let deadline = shared.osd_deadline();
        forward_osd_call!(shared, forwarded, deadline, message, boot, {
            boot_here(shared, boot.clone(), deadline).await
        })
    }

    async fn beacon(
        &self,
        request: Request<OsdBeacon>,
    ) -> Result<Response<OsdBeaconReply>, Status> {
        let forwarded = is_forwarded(&request);
        let message = request.into_inner();
        let shared = &self.shared;
        let deadline = shared.osd_deadline();
        forward_osd_call!(shared, forwarded, deadline, message, beacon, {
            let term = shared.node.status().term;
            let mut soft = shared.soft();
            soft.ensure_term(term);
            let usage = StorageUsage::from_beacon(message.bytes_total, message.bytes_available);
            soft.beacon(message.osd_id, usage, Instant::now());
            Ok(Response::new(OsdBeaconReply {
                epoch: shared.epoch(),
            }))
        })
    }

    async fn report_failure(
        &self,
        request: Request<FailureReport>,
    ) -> Result<Response<FailureReportReply>, Status> {
        let forwarded = is_forwarded(&request);
        let message = request.into_inner();
        if message.reporter < 0 || message.target < 0 || message.reporter == message.target {
            return Err(Status::invalid_argument(
                "reporter and target must be two distinct OSD ids >= 0",
            ));
        }
        let shared = &self.shared;
        let deadline = shared.osd_deadline();
        forward_osd_call!(shared, forwarded, deadline, message, report_failure, {
            let term = shared.node.status().term;
            {
                let mut soft = shared.soft();
                soft.ensure_term(term);
                soft.report(
                    message.reporter,
                    message.target,
                    Duration::from_millis(message.failed_for_ms),
                    message.alive,
                    Instant::now(),
                );
            }
            // Decide at once rather than at the next policy round.
            shared.policy_round();
            Ok(Response::new(FailureReportReply {
                epoch: shared.epoch(),
            }))
        })
    }

    async fn report_pg_stats(
        &self,
        request: Request<PgStatsReport>,
    ) -> Result<Response<PgStatsReply>, Status> {
        let forwarded = is_forwarded(&request);
        let message = request.into_inner();
        let mut parsed = Vec::with_capacity(message.pgs.len());
        let received = now_ms();
        for pg in &message.pgs {
            let mut states = BTreeSet::new();
            for part in pg.state.split('+').filter(|part| !part.is_empty()) {
                let state = serde_json::from_value(serde_json::Value::String(part.to_owned()))
                    .map_err(|_| {
                        Status::invalid_argument(format!("pgs.state: unknown PG state `{part}`"))
                    })?;
                states.insert(state);
            }
            let report = PgStatReport {
                states,
                reported_epoch: u32::try_from(message.epoch).unwrap_or(u32::MAX),
                reported_ms: received,
                num_objects: pg.num_objects,
                num_bytes: pg.num_bytes,
                num_objects_degraded: pg.num_objects_degraded,
                scrub_errors: pg.num_objects_inconsistent,
                ..PgStatReport::default()
            };
            parsed.push((PgId::new(pg.pool, pg.seed), report));
        }
        let shared = &self.shared;
        let deadline = shared.osd_deadline();
        forward_osd_call!(shared, forwarded, deadline, message, report_pg_stats, {
            let term = shared.node.status().term;
            let mut soft = shared.soft();
            soft.ensure_term(term);
            soft.pg_stats(parsed.clone());
            Ok(Response::new(PgStatsReply {
                epoch: shared.epoch(),
            }))
        })
    }
}
