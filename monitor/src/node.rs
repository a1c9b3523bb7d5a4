//! The Raft node: one thread owns raft-rs's [`RawNode`], its [`RaftStore`] and the replicated
//! [`StateMachine`], and is driven only through messages ([`NodeHandle`]).
//!
//! Why a thread and not a tokio task: every step that persists (appending entries, installing
//! a snapshot, compacting) blocks on an fdatasync, and raft-rs reads its storage
//! synchronously. A dedicated thread keeps those waits off the async runtime, and the node
//! still has exactly one owner; the gRPC side talks to it through a channel and oneshot
//! replies.
//!
//! # The loop
//!
//! Each turn waits for a request until the next tick is due (`tick_ms`, 100 ms by default),
//! handles every queued request (peer messages are stepped, proposals validated and
//! proposed), ticks the clock when due, expires proposals past their deadline, and then
//! handles the `Ready`, in raft-rs's documented order:
//!
//! 1. send `messages()` at once (the leader's appends do not wait for its own disk);
//! 2. if the ready carries a snapshot, restore the state machine from its data, then install
//!    it in the store (synced);
//! 3. apply `committed_entries()` (normal entries to the state machine, conf changes to Raft
//!    and then to the state machine), answering the proposers waiting on this monitor;
//! 4. append `entries()` and the hard state in one batch, synced when `must_sync()`;
//! 5. only now send `persisted_messages()` (votes and append responses promise what step 4
//!    made durable);
//! 6. `advance()`: store the light ready's commit index, send its messages, apply its
//!    committed entries, `advance_apply()`;
//! 7. when `snapshot_interval` entries were applied since the last snapshot, snapshot the
//!    state machine at the applied index and compact the log (keeping `log_keep_entries`
//!    entries behind it for followers that are only slightly behind); synced. A snapshot is
//!    also taken at once after a membership change, and when raft asked the store for one
//!    that the stored snapshot cannot serve (a new member is not in its configuration and
//!    would ignore it).
//!
//! # Proposals
//!
//! A proposal carries `(proposer id, boot id, sequence)` so the monitor that proposed it can
//! recognize it when applying and answer its waiter with the state machine's result; the
//! boot id keeps a restarted monitor from mistaking its previous life's entries for its own.
//! The proposal also carries the proposer's wall-clock time, so applying never reads a
//! clock and every monitor computes byte-identical state. Commands are validated against the
//! leader's applied state before they are proposed (invalid ones never enter the log) and
//! again when applied (two conflicting commands may both pass the first check).
//!
//! # Robustness
//!
//! raft-rs panics on some impossible inputs (a heartbeat committing beyond the log, an
//! append conflicting with committed entries). Such messages can only come from a broken or
//! hostile peer; the node catches the panic, drops the in-memory Raft state and reloads it
//! from the store, exactly as after a crash. Messages addressed to another node, from node 0
//! or of local-only types are dropped before they reach raft-rs.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use protobuf::Message as _;
use raft::prelude::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot,
};
use raft::{RawNode, SnapshotStatus, StateRole, Storage as _};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::store::{RaftStore, StoreError};

/// The replicated state a Raft node drives. Must be deterministic: the same commands in the
/// same order give byte-identical snapshots on every monitor.
pub trait StateMachine: Send + 'static {
    /// A change to propose (serialized into log entries with serde_json).
    type Command: Serialize + DeserializeOwned + Clone + Send + fmt::Debug + 'static;
    /// What the proposer learns once its command is applied.
    type Output: Send + 'static;
    /// Why a command is rejected (before proposal, or when applied).
    type Error: std::error::Error + Clone + Send + 'static;

    /// Checks a command against the current state before it is proposed.
    fn validate(&self, command: &Self::Command) -> Result<(), Self::Error>;

    /// Applies a committed command. An error leaves the state unchanged (every monitor
    /// reaches the same error).
    fn apply(
        &mut self,
        command: &Self::Command,
        context: &ApplyContext,
    ) -> Result<Self::Output, Self::Error>;

    /// The Raft membership change a command stands for, if any. Such commands are proposed
    /// as Raft configuration changes; `apply` runs once Raft has accepted the change.
    fn membership_change(command: &Self::Command) -> Option<MembershipChange>;

    /// Serializes the whole state (stored in Raft snapshots).
    fn snapshot(&self) -> Vec<u8>;

    /// Replaces the state with a snapshot's.
    fn restore(&mut self, data: &[u8]) -> Result<(), String>;

    /// Commands a leader should propose now (for example creating the cluster when the
    /// state is still empty). Called when a monitor becomes leader and then periodically
    /// while none of the previous batch is still in flight.
    fn leader_duties(&self) -> Vec<Self::Command>;

    /// The addresses of the Raft members as the state records them.
    fn member_addresses(&self) -> Vec<(u64, String)>;
}

/// A change of the Raft voter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a voter.
    AddVoter(u64),
    /// Remove a voter.
    RemoveVoter(u64),
}

/// What the state machine learns about the entry it applies.
#[derive(Clone, Debug)]
pub struct ApplyContext {
    /// The entry's log index.
    pub index: u64,
    /// The entry's term.
    pub term: u64,
    /// The proposer's wall-clock time (ms since the Unix epoch) when it proposed.
    pub proposed_at_ms: u64,
    /// The voters after this entry (changes when it is a membership change).
    pub voters: Vec<u64>,
}

/// Where the node's outgoing messages go (the gRPC transport, or a test harness).
pub trait Outbox: Send + Sync + 'static {
    /// Sends messages to their `to` peers; never blocks.
    fn send(&self, messages: Vec<Message>);
    /// Tells the transport where members live, as the replicated state records it.
    fn update_addresses(&self, addresses: Vec<(u64, String)>);
}

/// Timing and log settings of a node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node's Raft id.
    pub id: u64,
    /// Raft tick.
    pub tick: Duration,
    /// Ticks before an election.
    pub election_ticks: usize,
    /// Ticks between heartbeats.
    pub heartbeat_ticks: usize,
    /// Applied entries between snapshots.
    pub snapshot_interval: u64,
    /// Entries kept behind a snapshot.
    pub log_keep_entries: u64,
}

/// Why a proposal did not produce a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError<E> {
    /// The state machine refused the command (before proposing or when applying).
    #[error("{0}")]
    Rejected(E),
    /// This node is not the leader; `leader` is the one it knows of (0: none).
    #[error("not the leader (leader: {leader})")]
    NotLeader {
        /// The leader's id, 0 when unknown.
        leader: u64,
    },
    /// Another membership change is still being committed.
    #[error("another monitor membership change is in progress; retry")]
    MembershipBusy,
    /// Raft refused the membership change.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// Not committed before the deadline (no quorum, or a leader change lost it).
    #[error("not committed within the timeout")]
    Timeout,
    /// The node stopped.
    #[error("the monitor is shutting down")]
    Stopped,
}

/// The node's externally visible Raft state, republished after every turn that changed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStatus {
    /// This node's id.
    pub id: u64,
    /// Follower, candidate, pre-candidate or leader.
    pub role: Role,
    /// The leader this node knows of (0: none).
    pub leader_id: u64,
    /// Current term.
    pub term: u64,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// First index still in the log.
    pub first_index: u64,
    /// Last index in the log.
    pub last_index: u64,
    /// Index of the latest snapshot.
    pub snapshot_index: u64,
    /// Voters of the current configuration.
    pub voters: Vec<u64>,
    /// Voters the leader heard from recently (only filled on the leader; includes itself).
    pub recently_active: Vec<u64>,
    /// True once the node thread has stopped.
    pub stopped: bool,
}

/// A node's Raft role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    #[default]
    Follower,
    /// Runs an election.
    Candidate,
    /// Runs a pre-vote.
    PreCandidate,
    /// The leader.
    Leader,
}

impl From<StateRole> for Role {
    fn from(role: StateRole) -> Self {
        match role {
            StateRole::Follower => Role::Follower,
            StateRole::Candidate => Role::Candidate,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Leader => Role::Leader,
        }
    }
}

/// Why the node thread stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The Raft store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// raft-rs refused to start.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A snapshot's state machine data did not restore.
    #[error("cannot restore the state machine from a snapshot: {0}")]
    Restore(String),
}

/// The version of the proposal envelope in log entries.
const PROPOSAL_FORMAT: u32 = 1;

/// What every log entry (or conf change context) this crate proposes carries.
#[derive(Serialize, Deserialize)]
struct Proposal<C> {
    format: u32,
    proposer: u64,
    boot: u64,
    seq: u64,
    proposed_at_ms: u64,
    command: C,
}

type Reply<S> =
    oneshot::Sender<Result<<S as StateMachine>::Output, ProposeError<<S as StateMachine>::Error>>>;

/// Requests to the node thread.
enum Request<S: StateMachine> {
    Step(Box<Message>),
    Propose {
        command: S::Command,
        deadline: Instant,
        reply: Reply<S>,
    },
    Unreachable(u64),
    SnapshotStatus(u64, SnapshotStatus),
    Campaign,
    Stop,
}

struct Pending<S: StateMachine> {
    deadline: Instant,
    reply: Option<Reply<S>>,
}

/// A cheap, cloneable handle to a running node.
pub struct NodeHandle<S: StateMachine> {
    requests: mpsc::Sender<Request<S>>,
    status: watch::Receiver<NodeStatus>,
}

impl<S: StateMachine> Clone for NodeHandle<S> {
    fn clone(&self) -> Self {
        NodeHandle {
            requests: self.requests.clone(),
            status: self.status.clone(),
        }
    }
}

impl<S: StateMachine> fmt::Debug for NodeHandle<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeHandle")
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl<S: StateMachine> NodeHandle<S> {
    /// Hands a message from a peer to Raft.
    pub fn step(&self, message: Message) {
        let _ = self.requests.send(Request::Step(Box::new(message)));
    }

    /// Proposes a command and waits until it is applied (or rejected, or `timeout` passes).
    pub async fn propose(
        &self,
        command: S::Command,
        timeout: Duration,
    ) -> Result<S::Output, ProposeError<S::Error>> {
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + timeout;
        if self
            .requests
            .send(Request::Propose {
                command,
                deadline,
                reply,
            })
            .is_err()
        {
            return Err(ProposeError::Stopped);
        }
        // The node answers by the deadline itself; the extra second only guards against a
        // node thread that died without answering.
        match tokio::time::timeout(timeout + Duration::from_secs(1), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ProposeError::Stopped),
            Err(_) => Err(ProposeError::Timeout),
        }
    }

    /// Tells Raft a peer could not be reached.
    pub fn report_unreachable(&self, peer: u64) {
        let _ = self.requests.send(Request::Unreachable(peer));
    }

    /// Tells Raft whether a snapshot reached a peer.
    pub fn report_snapshot(&self, peer: u64, status: SnapshotStatus) {
        let _ = self.requests.send(Request::SnapshotStatus(peer, status));
    }

    /// Starts an election now (tests; leadership transfer).
    pub fn campaign(&self) {
        let _ = self.requests.send(Request::Campaign);
    }

    /// Asks the node thread to stop.
    pub fn stop(&self) {
        let _ = self.requests.send(Request::Stop);
    }

    /// The latest status.
    pub fn status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<NodeStatus> {
        self.status.clone()
    }
}

/// The node thread's state.
struct Node<S: StateMachine> {
    config: NodeConfig,
    raw: RawNode<RaftStore>,
    machine: S,
    outbox: Arc<dyn Outbox>,
    logger: slog::Logger,
    requests: mpsc::Receiver<Request<S>>,
    status: watch::Sender<NodeStatus>,
    pending: HashMap<u64, Pending<S>>,
    /// Sequences of the proposals made for `leader_duties`.
    duties_in_flight: HashSet<u64>,
    ticks_since_duties: usize,
    boot: u64,
    next_seq: u64,
    applied: u64,
    was_leader: bool,
    /// A membership change was applied since the last snapshot: the next snapshot (taken
    /// at once) carries the new configuration, which a joining monitor needs.
    membership_changed: bool,
}

/// The node thread; joining it gives the reason it stopped.
pub type NodeThread = std::thread::JoinHandle<Result<(), NodeError>>;

/// Starts a node thread over `store` (bootstrapped, or empty for a joining monitor). The
/// state machine is restored from the store's snapshot, if there is one; Raft then replays
/// the committed entries after it.
pub fn start<S: StateMachine>(
    config: NodeConfig,
    store: RaftStore,
    machine: S,
    outbox_factory: impl FnOnce(NodeHandle<S>) -> Arc<dyn Outbox>,
    logger: slog::Logger,
) -> Result<(NodeHandle<S>, NodeThread), NodeError> {
    let mut machine = machine;
    if store.snapshot_index() > 0 {
        machine
            .restore(store.latest_snapshot().get_data())
            .map_err(NodeError::Restore)?;
    }
    let applied = store.snapshot_index();
    let raw = RawNode::new(&raft_config(&config, applied), store, &logger)?;
    let (request_tx, request_rx) = mpsc::channel();
    let (status_tx, status_rx) = watch::channel(NodeStatus::default());
    let handle = NodeHandle {
        requests: request_tx,
        status: status_rx,
    };
    let outbox = outbox_factory(handle.clone());
    let boot = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id()).rotate_left(32);
    let mut node = Node {
        config,
        raw,
        machine,
        outbox,
        logger,
        requests: request_rx,
        status: status_tx,
        pending: HashMap::new(),
        duties_in_flight: HashSet::new(),
        ticks_since_duties: 0,
        boot,
        next_seq: 1,
        applied,
        was_leader: false,
        membership_changed: false,
    };
    node.outbox
        .update_addresses(node.machine.member_addresses());
    node.publish_status();
    let thread = std::thread::Builder::new()
        .name(format!("raft-{}", node.config.id))
        .spawn(move || {
            let result = node.run();
            if let Err(error) = &result {
                tracing::error!(%error, "raft node stopped");
            }
            node.fail_pending();
            node.status.send_modify(|status| status.stopped = true);
            result
        })
        .map_err(|error| {
            NodeError::Store(StoreError::Corrupt {
                what: "node thread",
                detail: error.to_string(),
            })
        })?;
    Ok((handle, thread))
}

fn raft_config(config: &NodeConfig, applied: u64) -> raft::Config {
    raft::Config {
        id: config.id,
        election_tick: config.election_ticks,
        heartbeat_tick: config.heartbeat_ticks,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        // A leader that lost touch with a majority steps down, so commands fail fast with
        // "no quorum" instead of waiting on a leader that cannot commit.
        check_quorum: true,
        // A monitor that was cut off does not disrupt the quorum with a higher term.
        pre_vote: true,
        ..raft::Config::default()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

impl<S: StateMachine> Node<S> {
    fn run(&mut self) -> Result<(), NodeError> {
        let mut next_tick = Instant::now() + self.config.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.requests.recv_timeout(wait) {
                Ok(request) => {
                    if !self.handle(request)? {
                        return Ok(());
                    }
                    // Drain what else is queued, so one Ready covers many messages.
                    for _ in 0..1024 {
                        match self.requests.try_recv() {
                            Ok(request) => {
                                if !self.handle(request)? {
                                    return Ok(());
                                }
                            }
                            Err(_) => break,
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                next_tick += self.config.tick;
                if next_tick < now {
                    // We fell behind (a long sync); do not fire a burst of ticks.
                    next_tick = now + self.config.tick;
                }
                self.expire_pending(now);
                self.leader_duties_tick();
            }
            self.handle_ready()?;
            self.publish_status();
        }
    }

    /// Handles one request; false means stop.
    fn handle(&mut self, request: Request<S>) -> Result<bool, NodeError> {
        match request {
            Request::Step(message) => self.step(*message)?,
            Request::Propose {
                command,
                deadline,
                reply,
            } => self.propose(command, deadline, Some(reply)),
            Request::Unreachable(peer) => self.raw.report_unreachable(peer),
            Request::SnapshotStatus(peer, status) => self.raw.report_snapshot(peer, status),
            Request::Campaign => {
                if let Err(error) = self.raw.campaign() {
                    tracing::warn!(%error, "campaign failed");
                }
            }
            Request::Stop => return Ok(false),
        }
        Ok(true)
    }

    fn step(&mut self, mut message: Message) -> Result<(), NodeError> {
        if message.to != self.config.id || message.from == 0 || message.from == self.config.id {
            tracing::warn!(
                from = message.from,
                to = message.to,
                "dropping a raft message not addressed to this monitor"
            );
            return Ok(());
        }
        if raft::raw_node::is_local_msg(message.get_msg_type()) {
            tracing::warn!(from = message.from, kind = ?message.get_msg_type(), "dropping a local-only raft message from a peer");
            return Ok(());
        }
        let from = message.from;
        let kind = message.get_msg_type();
        let mut resync = None;
        match kind {
            MessageType::MsgHeartbeat => {
                let last = self.raw.raft.raft_log.last_index();
                if message.commit > last {
                    // The leader believes this monitor holds entries it does not have: its
                    // data directory was wiped or lost writes. Committing less is always
                    // safe; then ask the leader to resend (see `resync_follower`).
                    tracing::warn!(
                        leader = from,
                        commit = message.commit,
                        last,
                        "the leader believes this monitor has entries it lost; asking for a resync"
                    );
                    message.commit = last;
                    let mut request = Message::default();
                    request.set_msg_type(MessageType::MsgAppendResponse);
                    request.from = self.config.id;
                    request.to = from;
                    request.term = message.term;
                    request.reject = true;
                    request.index = 0;
                    request.reject_hint = last;
                    resync = Some(request);
                }
            }
            MessageType::MsgAppendResponse if message.reject && self.resync_follower(&message) => {
                return Ok(());
            }
            _ => {}
        }
        let term = message.term;
        match catch_unwind(AssertUnwindSafe(|| self.raw.step(message))) {
            Ok(Ok(())) => {
                if let Some(request) = resync {
                    if self.raw.raft.term == term {
                        self.outbox.send(vec![request]);
                    }
                }
            }
            Ok(Err(error)) => {
                tracing::debug!(from, ?kind, %error, "raft refused a message");
            }
            Err(_) => {
                tracing::error!(
                    from,
                    ?kind,
                    "raft panicked on a message from a peer; reloading the raft state from storage"
                );
                self.reload()?;
            }
        }
        Ok(())
    }

    /// On the leader: a follower rejected with a hint below what it had acknowledged, so
    /// it lost entries (a wiped data directory). raft-rs would take the rejection for a stale
    /// one forever; reset the follower's progress to what it has and resend from there (by
    /// snapshot when that part of the log is compacted). Returns true when handled.
    fn resync_follower(&mut self, message: &Message) -> bool {
        if self.raw.raft.state != StateRole::Leader || message.term != self.raw.raft.term {
            return false;
        }
        let Some(progress) = self.raw.raft.mut_prs().get_mut(message.from) else {
            return false;
        };
        if progress.matched <= message.reject_hint {
            return false;
        }
        tracing::warn!(
            follower = message.from,
            acknowledged = progress.matched,
            has = message.reject_hint,
            "a monitor lost log entries it had acknowledged; resending them"
        );
        progress.matched = message.reject_hint;
        progress.become_probe();
        self.raw.raft.send_append(message.from);
        true
    }

    /// Rebuilds the Raft node from what is stored, as after a restart (the state machine
    /// stays: it is at `applied`, which the store's commit index covers).
    fn reload(&mut self) -> Result<(), NodeError> {
        let engine = Arc::clone(self.raw.store().engine());
        let store = RaftStore::open(engine)?;
        let applied = self.applied.max(store.snapshot_index());
        self.raw = RawNode::new(&raft_config(&self.config, applied), store, &self.logger)?;
        self.was_leader = false;
        Ok(())
    }

    fn propose(&mut self, command: S::Command, deadline: Instant, reply: Option<Reply<S>>) {
        let answer = |reply: Option<Reply<S>>, result| {
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        };
        if self.raw.raft.state != StateRole::Leader {
            let leader = self.raw.raft.leader_id;
            return answer(reply, Err(ProposeError::NotLeader { leader }));
        }
        if let Err(error) = self.machine.validate(&command) {
            return answer(reply, Err(ProposeError::Rejected(error)));
        }
        let membership = S::membership_change(&command);
        let seq = self.next_seq;
        self.next_seq += 1;
        let proposal = Proposal {
            format: PROPOSAL_FORMAT,
            proposer: self.config.id,
            boot: self.boot,
            seq,
            proposed_at_ms: now_ms(),
            command,
        };
        let bytes = match serde_json::to_vec(&proposal) {
            Ok(bytes) => bytes,
            Err(error) => {
                return answer(
                    reply,
                    Err(ProposeError::Membership(format!(
                        "cannot encode the command: {error}"
                    ))),
                )
            }
        };
        let result = match membership {
            None => self.raw.propose(Vec::new(), bytes),
            Some(change) => {
                if self.raw.raft.has_pending_conf() {
                    return answer(reply, Err(ProposeError::MembershipBusy));
                }
                let voters = self.raw.raft.prs().conf().voters().ids();
                let mut conf_change = ConfChange::default();
                match change {
                    MembershipChange::AddVoter(id) => {
                        if voters.contains(id) {
                            return answer(
                                reply,
                                Err(ProposeError::Membership(format!(
                                    "monitor {id} is already a voter"
                                ))),
                            );
                        }
                        conf_change.node_id = id;
                        conf_change.set_change_type(ConfChangeType::AddNode);
                    }
                    MembershipChange::RemoveVoter(id) => {
                        if !voters.contains(id) {
                            return answer(
                                reply,
                                Err(ProposeError::Membership(format!(
                                    "monitor {id} is not a voter"
                                ))),
                            );
                        }
                        if voters.len() == 1 {
                            return answer(
                                reply,
                                Err(ProposeError::Membership(
                                    "the last monitor cannot be removed".to_owned(),
                                )),
                            );
                        }
                        conf_change.node_id = id;
                        conf_change.set_change_type(ConfChangeType::RemoveNode);
                    }
                }
                conf_change.context = bytes.into();
                self.raw.propose_conf_change(Vec::new(), conf_change)
            }
        };
        match result {
            Ok(()) => {
                self.pending.insert(seq, Pending { deadline, reply });
            }
            Err(raft::Error::ProposalDropped) => {
                let leader = self.raw.raft.leader_id;
                answer(reply, Err(ProposeError::NotLeader { leader }));
            }
            Err(error) => answer(reply, Err(ProposeError::Membership(error.to_string()))),
        }
    }

    fn expire_pending(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            self.duties_in_flight.remove(&seq);
            if let Some(Pending {
                reply: Some(reply), ..
            }) = self.pending.remove(&seq)
            {
                let _ = reply.send(Err(ProposeError::Timeout));
            }
        }
    }

    fn fail_pending(&mut self) {
        for (_, pending) in self.pending.drain() {
            if let Some(reply) = pending.reply {
                let _ = reply.send(Err(ProposeError::Stopped));
            }
        }
    }

    /// Proposes the state machine's leader duties when leadership is new, and again every
    /// election timeout while none of the previous ones is in flight.
    fn leader_duties_tick(&mut self) {
        let is_leader = self.raw.raft.state == StateRole::Leader;
        if !is_leader {
            self.duties_in_flight.clear();
            return;
        }
        self.ticks_since_duties += 1;
        let due = self.ticks_since_duties >= self.config.election_ticks;
        if (due || !self.was_leader) && self.duties_in_flight.is_empty() {
            self.run_leader_duties();
        }
    }

    fn run_leader_duties(&mut self) {
        self.ticks_since_duties = 0;
        let deadline = Instant::now() + self.config.tick * (self.config.election_ticks as u32) * 4;
        for command in self.machine.leader_duties() {
            let seq = self.next_seq;
            self.propose(command, deadline, None);
            if self.pending.contains_key(&seq) {
                self.duties_in_flight.insert(seq);
            }
        }
    }

    fn handle_ready(&mut self) -> Result<(), NodeError> {
        if !self.raw.has_ready() {
            self.note_leadership();
            return Ok(());
        }
        let mut ready = self.raw.ready();
        // 1. Messages that do not depend on this node's disk.
        if !ready.messages().is_empty() {
            self.outbox.send(ready.take_messages());
        }
        // 2. A snapshot from the leader.
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.install_snapshot(snapshot)?;
        }
        // 3. Committed entries.
        let committed = ready.take_committed_entries();
        self.apply_entries(committed)?;
        // 4. New entries and hard state, durable before anyone hears about them.
        if !ready.entries().is_empty() || ready.hs().is_some() {
            let must_sync = ready.must_sync();
            let hard_state = ready.hs().cloned();
            self.raw
                .mut_store()
                .append(ready.entries(), hard_state.as_ref(), must_sync)?;
        }
        // 5. Messages that promise what step 4 persisted.
        if !ready.persisted_messages().is_empty() {
            self.outbox.send(ready.take_persisted_messages());
        }
        // 6. The light ready.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        if !light.messages().is_empty() {
            self.outbox.send(light.take_messages());
        }
        let committed = light.take_committed_entries();
        self.apply_entries(committed)?;
        self.raw.advance_apply();
        // 7. Snapshot and compaction.
        self.maybe_compact()?;
        self.note_leadership();
        Ok(())
    }

    fn note_leadership(&mut self) {
        let is_leader = self.raw.raft.state == StateRole::Leader;
        if is_leader && !self.was_leader {
            tracing::info!(
                id = self.config.id,
                term = self.raw.raft.term,
                "became the leader"
            );
            self.run_leader_duties();
        }
        self.was_leader = is_leader;
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), NodeError> {
        let index = snapshot.get_metadata().index;
        tracing::info!(index, "installing a snapshot from the leader");
        self.machine
            .restore(snapshot.get_data())
            .map_err(NodeError::Restore)?;
        self.raw.mut_store().install_snapshot(snapshot)?;
        self.applied = index;
        self.outbox
            .update_addresses(self.machine.member_addresses());
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), NodeError> {
        let mut members_changed = false;
        for entry in entries {
            let index = entry.index;
            if index <= self.applied {
                continue;
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    if !entry.data.is_empty() {
                        self.apply_normal(&entry);
                    }
                }
                EntryType::EntryConfChange => match ConfChange::parse_from_bytes(&entry.data) {
                    Ok(change) => {
                        let context = change.context.to_vec();
                        let result = self.raw.apply_conf_change(&change);
                        self.apply_membership(&entry, &context, result)?;
                        members_changed = true;
                    }
                    Err(error) => {
                        tracing::error!(index, %error, "undecodable conf change entry skipped")
                    }
                },
                EntryType::EntryConfChangeV2 => match ConfChangeV2::parse_from_bytes(&entry.data) {
                    Ok(change) => {
                        let context = change.context.to_vec();
                        let result = self.raw.apply_conf_change(&change);
                        self.apply_membership(&entry, &context, result)?;
                        members_changed = true;
                    }
                    Err(error) => {
                        tracing::error!(index, %error, "undecodable conf change entry skipped")
                    }
                },
            }
            self.applied = index;
        }
        if members_changed {
            self.membership_changed = true;
            self.outbox
                .update_addresses(self.machine.member_addresses());
        }
        Ok(())
    }

    fn voters(&self) -> Vec<u64> {
        let mut voters: Vec<u64> = self.raw.raft.prs().conf().voters().ids().iter().collect();
        voters.sort_unstable();
        voters
    }

    fn apply_normal(&mut self, entry: &Entry) {
        let proposal: Proposal<S::Command> = match serde_json::from_slice(&entry.data) {
            Ok(proposal) => proposal,
            Err(error) => {
                // Every monitor fails the same way on the same bytes, so skipping keeps
                // them identical.
                tracing::error!(index = entry.index, %error, "undecodable log entry skipped");
                return;
            }
        };
        let context = ApplyContext {
            index: entry.index,
            term: entry.term,
            proposed_at_ms: proposal.proposed_at_ms,
            voters: self.voters(),
        };
        let result = self
            .machine
            .apply(&proposal.command, &context)
            .map_err(ProposeError::Rejected);
        self.answer(&proposal, result);
    }

    fn apply_membership(
        &mut self,
        entry: &Entry,
        context: &[u8],
        result: raft::Result<ConfState>,
    ) -> Result<(), NodeError> {
        let proposal: Option<Proposal<S::Command>> = serde_json::from_slice(context).ok();
        match result {
            Ok(conf_state) => {
                self.raw.mut_store().set_conf_state(conf_state)?;
                if let Some(proposal) = proposal {
                    let apply_context = ApplyContext {
                        index: entry.index,
                        term: entry.term,
                        proposed_at_ms: proposal.proposed_at_ms,
                        voters: self.voters(),
                    };
                    let result = self
                        .machine
                        .apply(&proposal.command, &apply_context)
                        .map_err(ProposeError::Rejected);
                    self.answer(&proposal, result);
                }
            }
            Err(error) => {
                tracing::warn!(index = entry.index, %error, "membership change refused by raft");
                if let Some(proposal) = proposal {
                    self.answer(&proposal, Err(ProposeError::Membership(error.to_string())));
                }
            }
        }
        Ok(())
    }

    fn answer(
        &mut self,
        proposal: &Proposal<S::Command>,
        result: Result<S::Output, ProposeError<S::Error>>,
    ) {
        if proposal.proposer != self.config.id || proposal.boot != self.boot {
            return;
        }
        self.duties_in_flight.remove(&proposal.seq);
        if let Some(Pending {
            reply: Some(reply), ..
        }) = self.pending.remove(&proposal.seq)
        {
            let _ = reply.send(result);
        }
    }

    fn maybe_compact(&mut self) -> Result<(), NodeError> {
        let store = self.raw.store();
        let wanted = store.take_snapshot_wanted() || self.membership_changed;
        let due = self.applied >= store.snapshot_index() + self.config.snapshot_interval;
        if !(due || wanted && self.applied > store.snapshot_index()) {
            return Ok(());
        }
        self.membership_changed = false;
        let term = store.term(self.applied)?;
        let mut snapshot = Snapshot::default();
        snapshot.data = self.machine.snapshot().into();
        let meta = snapshot.mut_metadata();
        meta.index = self.applied;
        meta.term = term;
        meta.set_conf_state(store.conf_state().clone());
        let keep_from = self
            .applied
            .saturating_sub(self.config.log_keep_entries)
            .saturating_add(1);
        tracing::debug!(
            index = self.applied,
            keep_from,
            "snapshot and log compaction"
        );
        self.raw.mut_store().compact(snapshot, keep_from)?;
        Ok(())
    }

    fn publish_status(&self) {
        let raft = &self.raw.raft;
        let store = self.raw.store();
        let is_leader = raft.state == StateRole::Leader;
        let recently_active = if is_leader {
            let voters = raft.prs().conf().voters().ids();
            let mut active: Vec<u64> = raft
                .prs()
                .iter()
                .filter(|(id, progress)| {
                    voters.contains(**id) && (progress.recent_active || **id == self.config.id)
                })
                .map(|(id, _)| *id)
                .collect();
            active.sort_unstable();
            active
        } else {
            Vec::new()
        };
        let status = NodeStatus {
            id: self.config.id,
            role: raft.state.into(),
            leader_id: raft.leader_id,
            term: raft.term,
            commit: raft.raft_log.committed,
            applied: self.applied,
            first_index: store.first(),
            last_index: raft.raft_log.last_index(),
            snapshot_index: store.snapshot_index(),
            voters: self.voters(),
            recently_active,
            stopped: false,
        };
        self.status.send_if_modified(|current| {
            if *current == status {
                false
            } else {
                *current = status;
                true
            }
        });
    }
}

/// The snapshot every initial member of a new monitor cluster installs, so they all start
/// from the same log position with the same voters (raft-rs's documented way to bootstrap
/// a cluster that later members can join).
pub fn bootstrap_snapshot(voters: &[u64], data: Vec<u8>) -> Snapshot {
    let mut snapshot = Snapshot {
        data: data.into(),
        ..Snapshot::default()
    };
    let meta = snapshot.mut_metadata();
    meta.index = 1;
    meta.term = 1;
    meta.set_conf_state(ConfState {
        voters: voters.to_vec(),
        ..ConfState::default()
    });
    snapshot
}

/// Whether a raft message type may come from a peer at all.
pub fn is_peer_message(kind: MessageType) -> bool {
    !raft::raw_node::is_local_msg(kind)
}
