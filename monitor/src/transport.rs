//! The Raft transport between monitors over gRPC (`monpeer.proto`): [`PeerTransport`] sends
//! the node's messages, [`PeerService`] receives a peer's.
//!
//! Sending: one tokio task per peer drains that peer's queue, packs whatever is queued into
//! one `RaftBatch` (raft messages as opaque rust-protobuf bytes) and calls `MonPeer.Raft`.
//! A failed call reports the peer unreachable to Raft (and a snapshot in the batch as
//! failed), then backs off (100 ms doubling to 2 s) and drops what queued meanwhile: Raft
//! resends what matters. Each batch names the sender's own address, so a receiver learns
//! where a monitor that restarted on a new port (or joined later) lives.
//!
//! Addresses, freshest first: learnt from the peer's own batches, configured (`addr`, or an
//! `addr_file` re-read at every attempt), recorded in the replicated state.
//!
//! Receiving: each message is parsed on its own; one that does not parse, claims another
//! sender or is addressed elsewhere is logged and dropped. rust-protobuf 2.28 has an advisory
//! about deep recursion on hostile input (RUSTSEC-2024-0437): monitors must only be reachable
//! by monitors (and the message size is bounded by `max_message_bytes`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use proto::monpeer::mon_peer_client::MonPeerClient;
use proto::monpeer::mon_peer_server::MonPeer;
use proto::monpeer::{RaftAck, RaftBatch};
use protobuf::Message as _;
use raft::prelude::{Message, MessageType};
use raft::SnapshotStatus;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use crate::node::{NodeHandle, Outbox, StateMachine};

/// What the transport tells the Raft node.
pub trait RaftInbox: Send + Sync + 'static {
    /// A message from a peer.
    fn step(&self, message: Message);
    /// A peer could not be reached.
    fn report_unreachable(&self, peer: u64);
    /// A snapshot was (or was not) delivered.
    fn report_snapshot(&self, peer: u64, status: SnapshotStatus);
}

impl<S: StateMachine> RaftInbox for NodeHandle<S> {
    fn step(&self, message: Message) {
        NodeHandle::step(self, message);
    }

    fn report_unreachable(&self, peer: u64) {
        NodeHandle::report_unreachable(self, peer);
    }

    fn report_snapshot(&self, peer: u64, status: SnapshotStatus) {
        NodeHandle::report_snapshot(self, peer, status);
    }
}

/// How a peer's address is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfiguredAddress {
    /// Not configured.
    None,
    /// A fixed `host:port`.
    Fixed(String),
    /// A file holding `host:port` (another monitor's `DATA/mon.addr`), read at every attempt.
    File(PathBuf),
}

#[derive(Debug)]
struct AddressBook {
    learnt: Option<String>,
    configured: ConfiguredAddress,
    from_state: Option<String>,
}

impl AddressBook {
    fn resolve(&self) -> Option<String> {
        if let Some(learnt) = &self.learnt {
            return Some(learnt.clone());
        }
        match &self.configured {
            ConfiguredAddress::Fixed(addr) => return Some(addr.clone()),
            ConfiguredAddress::File(path) => {
                if let Ok(text) = std::fs::read_to_string(path) {
                    let addr = text.trim();
                    if !addr.is_empty() {
                        return Some(addr.to_owned());
                    }
                }
            }
            ConfiguredAddress::None => {}
        }
        self.from_state.clone()
    }
}

struct Peer {
    queue: mpsc::UnboundedSender<Message>,
    book: Arc<Mutex<AddressBook>>,
}

/// Transport settings.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This monitor's id.
    pub id: u64,
    /// The address this monitor's gRPC server listens on (sent with every batch).
    pub own_addr: String,
    /// Largest message sent or received.
    pub max_message_bytes: usize,
    /// Timeout of one `Raft` call.
    pub call_timeout: Duration,
}

/// Sends Raft messages to peers over gRPC; the node's [`Outbox`].
pub struct PeerTransport {
    config: TransportConfig,
    runtime: tokio::runtime::Handle,
    inbox: Arc<OnceLock<Arc<dyn RaftInbox>>>,
    peers: Mutex<HashMap<u64, Peer>>,
}

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTransport")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PeerTransport {
    /// A transport whose peer tasks run on `runtime`. Call [`PeerTransport::attach`] before
    /// the node sends anything.
    pub fn new(config: TransportConfig, runtime: tokio::runtime::Handle) -> Arc<Self> {
        Arc::new(PeerTransport {
            config,
            runtime,
            inbox: Arc::new(OnceLock::new()),
            peers: Mutex::new(HashMap::new()),
        })
    }

    /// Connects the transport to the node it reports to.
    pub fn attach(&self, inbox: Arc<dyn RaftInbox>) {
        let _ = self.inbox.set(inbox);
    }

    /// Sets a peer's configured address.
    pub fn configure(&self, peer: u64, address: ConfiguredAddress) {
        self.with_book(peer, |book| book.configured = address);
    }

    /// Records the address a peer says it listens on.
    pub fn learn(&self, peer: u64, addr: &str) {
        self.with_book(peer, |book| {
            if book.learnt.as_deref() != Some(addr) {
                tracing::debug!(peer, addr, "learnt a monitor's address");
                book.learnt = Some(addr.to_owned());
            }
        });
    }

    /// The address a message to `peer` would go to now.
    pub fn address_of(&self, peer: u64) -> Option<String> {
        let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let book = peers.get(&peer)?.book.clone();
        drop(peers);
        let book = book.lock().unwrap_or_else(PoisonError::into_inner);
        book.resolve()
    }

    fn with_book(&self, peer: u64, update: impl FnOnce(&mut AddressBook)) {
        if peer == self.config.id || peer == 0 {
            return;
        }
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = peers.entry(peer).or_insert_with(|| self.spawn_peer(peer));
        let mut book = entry.book.lock().unwrap_or_else(PoisonError::into_inner);
        update(&mut book);
    }

    fn spawn_peer(&self, peer: u64) -> Peer {
        let (queue, receiver) = mpsc::unbounded_channel();
        let book = Arc::new(Mutex::new(AddressBook {
            learnt: None,
            configured: ConfiguredAddress::None,
            from_state: None,
        }));
        let task = PeerTask {
            peer,
            config: self.config.clone(),
            book: Arc::clone(&book),
            inbox: Arc::clone(&self.inbox),
            receiver,
        };
        self.runtime.spawn(task.run());
        Peer { queue, book }
    }
}

impl Outbox for PeerTransport {
    fn send(&self, messages: Vec<Message>) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        for message in messages {
            let to = message.to;
            if to == self.config.id || to == 0 {
                continue;
            }
            let peer = peers.entry(to).or_insert_with(|| self.spawn_peer(to));
            // A closed queue means the runtime is shutting down; nothing to do.
            let _ = peer.queue.send(message);
        }
    }

    fn update_addresses(&self, addresses: Vec<(u64, String)>) {
        for (peer, addr) in addresses {
            self.with_book(peer, |book| book.from_state = Some(addr));
        }
    }
}

/// Sends one peer's queue.
struct PeerTask {
    peer: u64,
    config: TransportConfig,
    book: Arc<Mutex<AddressBook>>,
    inbox: Arc<OnceLock<Arc<dyn RaftInbox>>>,
    receiver: mpsc::UnboundedReceiver<Message>,
}

impl PeerTask {
    async fn run(mut self) {
        let mut client: Option<(String, MonPeerClient<Channel>)> = None;
        let mut failures: u32 = 0;
        while let Some(first) = self.receiver.recv().await {
            let mut batch = vec![first];
            while batch.len() < 512 {
                match self.receiver.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
            let has_snapshot = batch
                .iter()
                .any(|message| message.get_msg_type() == MessageType::MsgSnapshot);
            let target = self
                .book
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .resolve();
            let outcome = match target {
                None => Err(format!("no known address for monitor {}", self.peer)),
                Some(target) => {
                    if client.as_ref().is_none_or(|(addr, _)| *addr != target) {
                        client = self.connect(&target).map(|c| (target.clone(), c));
                    }
                    match client.as_mut() {
                        None => Err(format!("bad address `{target}` for monitor {}", self.peer)),
                        Some((_, client)) => self.deliver(client, &batch).await,
                    }
                }
            };
            match outcome {
                Ok(()) => {
                    failures = 0;
                    if has_snapshot {
                        self.report(|inbox| {
                            inbox.report_snapshot(self.peer, SnapshotStatus::Finish)
                        });
                    }
                }
                Err(error) => {
                    if failures == 0 {
                        tracing::info!(peer = self.peer, %error, "cannot reach monitor");
                    } else {
                        tracing::debug!(peer = self.peer, %error, "cannot reach monitor");
                    }
                    failures = failures.saturating_add(1);
                    self.report(|inbox| inbox.report_unreachable(self.peer));
                    if has_snapshot {
                        self.report(|inbox| {
                            inbox.report_snapshot(self.peer, SnapshotStatus::Failure)
                        });
                    }
                    let backoff = Duration::from_millis(100)
                        .saturating_mul(1 << failures.min(5))
                        .min(Duration::from_secs(2));
                    tokio::time::sleep(backoff).await;
                    // Raft resends what matters; stale heartbeats would only delay it.
                    while self.receiver.try_recv().is_ok() {}
                }
            }
        }
    }

    fn report(&self, action: impl FnOnce(&dyn RaftInbox)) {
        if let Some(inbox) = self.inbox.get() {
            action(inbox.as_ref());
        }
    }

    fn connect(&self, target: &str) -> Option<MonPeerClient<Channel>> {
        let endpoint = Endpoint::from_shared(format!("http://{target}")).ok()?;
        let channel = endpoint
            .connect_timeout(Duration::from_secs(1))
            .timeout(self.config.call_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        Some(
            MonPeerClient::new(channel)
                .max_decoding_message_size(self.config.max_message_bytes)
                .max_encoding_message_size(self.config.max_message_bytes),
        )
    }

    async fn deliver(
        &self,
        client: &mut MonPeerClient<Channel>,
        batch: &[Message],
    ) -> Result<(), String> {
        let mut messages = Vec::with_capacity(batch.len());
        for message in batch {
            match message.write_to_bytes() {
                Ok(bytes) => messages.push(bytes),
                Err(error) => tracing::error!(%error, "cannot encode a raft message"),
            }
        }
        let request = RaftBatch {
            from: self.config.id,
            to: self.peer,
            from_addr: self.config.own_addr.clone(),
            messages,
        };
        client
            .raft(request)
            .await
            .map(|_| ())
            .map_err(|status| format!("{}: {}", status.code(), status.message()))
    }
}

/// The `MonPeer` gRPC service: hands peers' Raft messages to the local node.
pub struct PeerService {
    id: u64,
    inbox: Arc<dyn RaftInbox>,
    transport: Arc<PeerTransport>,
}

impl PeerService {
    /// The service of monitor `id`.
    pub fn new(id: u64, inbox: Arc<dyn RaftInbox>, transport: Arc<PeerTransport>) -> Self {
        PeerService {
            id,
            inbox,
            transport,
        }
    }
}

#[tonic::async_trait]
impl MonPeer for PeerService {
    async fn raft(
        &self,
        request: tonic::Request<RaftBatch>,
    ) -> Result<tonic::Response<RaftAck>, tonic::Status> {
        let batch = request.into_inner();
        if batch.to != self.id {
            return Err(tonic::Status::failed_precondition(format!(
                "this is monitor {}, not monitor {}",
                self.id, batch.to
            )));
        }
        if batch.from == 0 || batch.from == self.id {
            return Err(tonic::Status::invalid_argument(format!(
                "invalid sender id {}",
                batch.from
            )));
        }
        if !batch.from_addr.is_empty() {
            if batch.from_addr.parse::<std::net::SocketAddr>().is_ok() {
                self.transport.learn(batch.from, &batch.from_addr);
            } else {
                tracing::warn!(from = batch.from, addr = %batch.from_addr, "ignoring a malformed sender address");
            }
        }
        for bytes in &batch.messages {
            match Message::parse_from_bytes(bytes) {
                Ok(message) if message.from == batch.from && message.to == self.id => {
                    self.inbox.step(message);
                }
                Ok(message) => tracing::warn!(
                    batch_from = batch.from,
                    from = message.from,
                    to = message.to,
                    "dropping a raft message whose sender or receiver does not match its batch"
                ),
                Err(error) => tracing::warn!(
                    from = batch.from,
                    %error,
                    "dropping an undecodable raft message"
                ),
            }
        }
        Ok(tonic::Response::new(RaftAck {}))
    }
}
