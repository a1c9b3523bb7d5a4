//! Starting and stopping one monitor: the data directory, the storage engine, bootstrap,
//! the Raft node, the gRPC server and the background loops ([`MonitorServer`]).
//!
//! Data directory layout:
//!
//! | path | content |
//! | --- | --- |
//! | `kv/` | the storage engine (Raft log, hard state, conf state, snapshots) |
//! | `mon.addr` | the address the gRPC server is bound to (`host:port`, one line) |
//! | `mon.id` | this monitor's Raft id, so a data directory is never reused by another id |
//!
//! Bootstrap: the first start of an initial member (not `join`) with an empty store installs
//! the same snapshot every initial member installs (index 1, term 1, the members' ids as
//! voters, an empty state); the first leader then creates the cluster (fsid, first map,
//! default CRUSH root). A restart finds its store initialized and rejoins. A `join` monitor
//! starts with an empty store and waits for the leader, which sends it a snapshot once
//! `mon add` made it a member.
//!
//! A monitor whose data directory was lost restarts best with `join = true` (`--join`): it
//! then waits for the leader, which notices that it lost entries it had acknowledged and
//! resends its state as a snapshot (see `node`). Restarted without `join`, it would
//! bootstrap the initial empty state again, which the same mechanism also repairs.
//!
//! Port 0: when `listen` has port 0 and `mon.addr` exists from an earlier run, the monitor
//! first tries to bind that same address again, so peers and clients that knew it keep
//! working; otherwise it binds a free port. Either way it writes the bound address to
//! `mon.addr` before serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proto::mon::monitor_server::MonitorServer as MonitorGrpc;
use proto::mon::osd_report_server::OsdReportServer;
use proto::monpeer::mon_peer_server::MonPeerServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::MonConfig;
use crate::error::MonError;
use crate::logger::raft_logger;
use crate::node::{self, NodeConfig, NodeHandle, NodeStatus, Outbox};
use crate::service::{MonitorService, OsdReportService, Shared};
use crate::state::{LocalInfo, MapMachine, MapView};
use crate::store::RaftStore;
use crate::transport::{ConfiguredAddress, PeerService, PeerTransport, TransportConfig};

/// The file a monitor writes its bound address to.
pub const ADDR_FILE: &str = "mon.addr";

/// The file that records which monitor id owns a data directory.
pub const ID_FILE: &str = "mon.id";

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> MonError {
    let what = what.into();
    move |source| MonError::Io { what, source }
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename).
fn write_atomically(path: &Path, contents: &str) -> Result<(), MonError> {
    let temporary = path.with_extension("tmp");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temporary)
            .map_err(io_error(format!("create {}", temporary.display())))?;
        file.write_all(contents.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_error(format!("write {}", temporary.display())))?;
    }
    std::fs::rename(&temporary, path).map_err(io_error(format!("rename to {}", path.display())))
}

/// The address written in a monitor's data directory, if any.
pub fn read_addr_file(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(ADDR_FILE)).ok()?;
    let addr = text.trim();
    (!addr.is_empty()).then(|| addr.to_owned())
}

async fn bind(config: &MonConfig) -> Result<TcpListener, MonError> {
    let wanted = config.listen_addr();
    let wanted_addr: SocketAddr = wanted.parse().map_err(|_| {
        MonError::Config(crate::config::ConfigError::Invalid {
            field: "mon.listen".to_owned(),
            reason: format!("`{wanted}` is not an ip:port address"),
        })
    })?;
    if wanted_addr.port() == 0 {
        if let Some(previous) = read_addr_file(&config.data_dir)
            .and_then(|addr| addr.parse::<SocketAddr>().ok())
            .filter(|addr| addr.ip() == wanted_addr.ip())
        {
            if let Ok(listener) = TcpListener::bind(previous).await {
                return Ok(listener);
            }
        }
    }
    TcpListener::bind(wanted_addr)
        .await
        .map_err(io_error(format!("bind {wanted}")))
}

fn check_id_file(data_dir: &Path, id: u64) -> Result<(), MonError> {
    let path = data_dir.join(ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let stored = text.trim();
            if stored != id.to_string() {
                return Err(MonError::Config(crate::config::ConfigError::Invalid {
                    field: "mon.id".to_owned(),
                    reason: format!(
                        "data directory {} belongs to monitor {stored}, not {id}",
                        data_dir.display()
                    ),
                }));
            }
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            write_atomically(&path, &format!("{id}\n"))
        }
        Err(error) => Err(io_error(format!("read {}", path.display()))(error)),
    }
}

/// A running monitor.
pub struct MonitorServer {
    id: u64,
    addr: SocketAddr,
    data_dir: PathBuf,
    node: NodeHandle<MapMachine>,
    view: watch::Receiver<MapView>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    loops: Vec<JoinHandle<()>>,
    node_thread: Option<std::thread::JoinHandle<Result<(), node::NodeError>>>,
}

impl std::fmt::Debug for MonitorServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorServer")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MonitorServer {
    /// Validates `config`, opens the data directory and starts serving.
    pub async fn start(config: MonConfig) -> Result<MonitorServer, MonError> {
        config.validate()?;
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir)
            .map_err(io_error(format!("create {}", data_dir.display())))?;
        check_id_file(&data_dir, config.id)?;
        let backend = config.backend()?;
        let engine = kv::open(backend, &data_dir.join("kv"), &kv::Options::default())?;

        let listener = bind(&config).await?;
        let addr = listener
            .local_addr()
            .map_err(io_error("read the bound address"))?;
        let own_addr = addr.to_string();
        write_atomically(&data_dir.join(ADDR_FILE), &format!("{own_addr}\n"))?;

        let mut store = RaftStore::open(Arc::clone(&engine))?;
        if !store.is_initialized() && !config.join {
            let mut voters: Vec<u64> = config.members.iter().map(|member| member.id).collect();
            if voters.is_empty() {
                voters.push(config.id);
            }
            voters.sort_unstable();
            tracing::info!(
                id = config.id,
                ?voters,
                "bootstrapping a new monitor cluster"
            );
            store.bootstrap(node::bootstrap_snapshot(
                &voters,
                MapMachine::empty_snapshot(),
            ))?;
        }

        let transport = PeerTransport::new(
            TransportConfig {
                id: config.id,
                own_addr: own_addr.clone(),
                max_message_bytes: config.raft.max_message_bytes,
                call_timeout: Duration::from_secs(10),
            },
            tokio::runtime::Handle::current(),
        );
        for member in &config.members {
            let configured = match (&member.addr, &member.addr_file) {
                (Some(addr), _) => ConfiguredAddress::Fixed(addr.clone()),
                (None, Some(file)) => ConfiguredAddress::File(file.clone()),
                (None, None) => ConfiguredAddress::None,
            };
            transport.configure(member.id, configured);
        }

        let (view_tx, view_rx) = watch::channel(MapView::default());
        let resolver_transport = Arc::clone(&transport);
        let resolver_id = config.id;
        let resolver_addr = own_addr.clone();
        let mut initial_members: Vec<(u64, String)> = config
            .members
            .iter()
            .map(|member| (member.id, member.display_name()))
            .collect();
        if initial_members.is_empty() {
            initial_members.push((config.id, config.display_name()));
        }
        let fsid = config.fsid.as_deref().map(str::parse).transpose().map_err(
            |error: clustermap::types::ParseValueError| {
                MonError::Config(crate::config::ConfigError::Invalid {
                    field: "mon.fsid".to_owned(),
                    reason: error.to_string(),
                })
            },
        )?;
        let machine = MapMachine::new(
            LocalInfo {
                id: config.id,
                fsid,
                initial_members,
                resolve_address: Box::new(move |id| {
                    if id == resolver_id {
                        Some(resolver_addr.clone())
                    } else {
                        resolver_transport.address_of(id)
                    }
                }),
                history_limit: usize::try_from(config.raft.map_history).unwrap_or(usize::MAX),
                failure_domain: config.pool_defaults.failure_domain.clone(),
            },
            view_tx,
        );
        let node_config = NodeConfig {
            id: config.id,
            tick: config.tick(),
            election_ticks: config.raft.election_ticks,
            heartbeat_ticks: config.raft.heartbeat_ticks,
            snapshot_interval: config.raft.snapshot_interval,
            log_keep_entries: config.raft.log_keep_entries,
        };
        let outbox_transport = Arc::clone(&transport);
        let (node, node_thread) = node::start(
            node_config,
            store,
            machine,
            move |handle| {
                outbox_transport.attach(Arc::new(handle));
                outbox_transport as Arc<dyn Outbox>
            },
            raft_logger(config.id),
        )?;
        drop(engine);

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Shared::new(
            config.clone(),
            own_addr.clone(),
            node.clone(),
            view_rx.clone(),
            Arc::clone(&transport),
            shutdown_rx.clone(),
        );
        let max_bytes = config.raft.max_message_bytes;
        let peer_service =
            PeerService::new(config.id, Arc::new(node.clone()), Arc::clone(&transport));
        let router = tonic::transport::Server::builder()
            .add_service(
                MonPeerServer::new(peer_service)
                    .max_decoding_message_size(max_bytes)
                    .max_encoding_message_size(max_bytes),
            )
            .add_service(
                MonitorGrpc::new(MonitorService::new(Arc::clone(&shared)))
                    .max_decoding_message_size(max_bytes)
                    .max_encoding_message_size(max_bytes),
            )
            .add_service(
                OsdReportServer::new(OsdReportService::new(Arc::clone(&shared)))
                    .max_decoding_message_size(max_bytes)
                    .max_encoding_message_size(max_bytes),
            );
        let mut server_shutdown = shutdown_rx.clone();
        let server = tokio::spawn(router.serve_with_incoming_shutdown(
            accept_with_nodelay(listener),
            async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
            },
        ));

        let mut loops = Vec::new();
        let policy_shared = Arc::clone(&shared);
        let policy_interval = Duration::from_millis(config.failure.check_interval_ms);
        let mut policy_shutdown = shutdown_rx.clone();
        loops.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(policy_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => policy_shared.policy_round(),
                    _ = policy_shutdown.changed() => return,
                }
            }
        }));
        let announce_shared = Arc::clone(&shared);
        let announce_interval = (config.tick() * 5).max(Duration::from_millis(200));
        let mut announce_shutdown = shutdown_rx;
        loops.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(announce_interval) => announce_shared.announce_address().await,
                    _ = announce_shutdown.changed() => return,
                }
            }
        }));

        tracing::info!(id = config.id, %addr, data = %data_dir.display(), "monitor serving");
        Ok(MonitorServer {
            id: config.id,
            addr,
            data_dir,
            node,
            view: view_rx,
            shared,
            shutdown: shutdown_tx,
            server,
            loops,
            node_thread: Some(node_thread),
        })
    }

    /// This monitor's Raft id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address the gRPC server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The Raft status.
    pub fn status(&self) -> NodeStatus {
        self.node.status()
    }

    /// A receiver of Raft status changes.
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.node.watch_status()
    }

    /// The applied state.
    pub fn view(&self) -> MapView {
        self.view.borrow().clone()
    }

    /// A receiver of applied-state changes.
    pub fn watch_view(&self) -> watch::Receiver<MapView> {
        self.view.clone()
    }

    /// The Raft node (for tests: campaigns, direct proposals).
    pub fn node(&self) -> &NodeHandle<MapMachine> {
        &self.node
    }

    /// The state the services share (for tests driving the failure policy directly).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops serving, stops the Raft node and waits until the storage engine is closed.
    pub async fn stop(mut self) -> Result<(), MonError> {
        let _ = self.shutdown.send(true);
        for task in self.loops.drain(..) {
            task.abort();
        }
        self.node.stop();
        let node_result = match self.node_thread.take() {
            Some(thread) => tokio::task::spawn_blocking(move || thread.join())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or(Ok(())),
            None => Ok(()),
        };
        // Streams (WatchMap) end on the shutdown signal; give connections a moment to
        // close, then stop the server regardless.
        let server = &mut self.server;
        match tokio::time::timeout(Duration::from_secs(2), &mut *server).await {
            Ok(Ok(Ok(()))) | Err(_) | Ok(Err(_)) => server.abort(),
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "grpc server stopped with an error");
            }
        }
        node_result.map_err(MonError::Node)
    }

    /// Waits until the node thread stops on its own (a fatal storage error), for the daemon.
    pub async fn wait_node_stopped(&self) {
        let mut status = self.node.watch_status();
        let _ = status.wait_for(|status| status.stopped).await;
    }
}

/// Accepted connections with Nagle's algorithm off: small replies would otherwise wait for
/// the peer's delayed ACK (about 40 ms). `Server::tcp_nodelay` does not apply to a listener
/// passed in by the caller, so the incoming stream sets it.
fn accept_with_nodelay(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}
