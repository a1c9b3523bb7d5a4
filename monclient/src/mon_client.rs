//! [`MonClient`]: talks to whichever monitor answers. It keeps the known monitor addresses
//! (configured first, then those the map lists), prefers the one that answered last, and on
//! a transport error, a timeout or an UNAVAILABLE answer moves on to the next. Commands are
//! sent to any monitor (monitors forward them to the leader) and retried on another monitor
//! until the command timeout; a monitor's `NO_QUORUM` answer ends in
//! [`ClientError::NoQuorum`].
//!
//! Retrying a command after a transport error can apply it twice when the first attempt
//! did commit (the reply was lost): a repeated `pool create` then fails with "already
//! exists". Commands carry no request id yet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use clustermap::ClusterMap;
use proto::mon::monitor_client::MonitorClient;
use proto::mon::{
    command_reply, Command, CommandRequest, GetMapRequest, StatusRequest, WatchMapRequest,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::config::ClientConfig;
use crate::error::{ClientError, CommandErrorKind, CommandFailure, MonitorAttempt};
use crate::status::ClusterStatus;
use crate::watch::MapWatch;

/// The largest message accepted from a monitor (maps travel whole).
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The pause between two rounds over every monitor when all of them failed at once.
const ROUND_PAUSE: Duration = Duration::from_millis(50);

/// A committed command.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommandOutcome {
    /// The epoch the change produced.
    pub epoch: u64,
    /// The monitors' summary ("pool 'rbd' created").
    pub message: String,
    /// The id of what the command created (pool id, bucket id), else 0.
    pub created_id: i64,
}

struct AddressBook {
    /// Known monitors, configured ones first.
    addrs: Vec<String>,
    /// Index in `addrs` of the monitor to try first.
    preferred: usize,
    /// Open channels by address.
    channels: HashMap<String, Channel>,
}

struct Inner {
    config: ClientConfig,
    book: Mutex<AddressBook>,
}

/// A client of the monitors; cheap to clone (clones share connections).
#[derive(Clone)]
pub struct MonClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonClient")
            .field("addrs", &self.addresses())
            .finish_non_exhaustive()
    }
}

/// How one call to one monitor failed.
enum AttemptError {
    /// Try another monitor.
    Retry(String),
    /// Give up: the answer is final.
    Fatal(ClientError),
}

/// Whether a gRPC status means "this monitor cannot help now, another may".
fn is_retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Internal
            | Code::FailedPrecondition
    )
}

fn describe(status: &Status) -> String {
    let message = status.message();
    if message.is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {message}", status.code())
    }
}

fn lock(book: &Mutex<AddressBook>) -> MutexGuard<'_, AddressBook> {
    // A panic while holding the lock cannot leave the book inconsistent (each update is
    // one assignment), so a poisoned lock is still usable.
    book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MonClient {
    /// A client of the configured monitors; connects lazily, on the first call.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        if config.mon_hosts.is_empty() {
            return Err(ClientError::NoMonitors);
        }
        for addr in &config.mon_hosts {
            Self::endpoint(addr, &config)?;
        }
        let mut addrs: Vec<String> = Vec::new();
        for addr in &config.mon_hosts {
            if !addrs.contains(addr) {
                addrs.push(addr.clone());
            }
        }
        Ok(MonClient {
            inner: Arc::new(Inner {
                book: Mutex::new(AddressBook {
                    addrs,
                    preferred: 0,
                    channels: HashMap::new(),
                }),
                config,
            }),
        })
    }

    /// A client that checks at once that some monitor serves the map.
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        let client = Self::new(config)?;
        client.get_map().await?;
        Ok(client)
    }

    /// The configuration the client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The monitors it knows, configured ones first.
    pub fn addresses(&self) -> Vec<String> {
        lock(&self.inner.book).addrs.clone()
    }

    fn endpoint(addr: &str, config: &ClientConfig) -> Result<Endpoint, ClientError> {
        Endpoint::from_shared(format!("http://{addr}"))
            .map(|endpoint| {
                endpoint
                    .connect_timeout(config.connect_timeout)
                    .tcp_nodelay(true)
            })
            .map_err(|error| ClientError::BadAddress {
                addr: addr.to_owned(),
                reason: error.to_string(),
            })
    }

    /// The known monitors, the preferred one first.
    pub(crate) fn rotation(&self) -> Vec<String> {
        let book = lock(&self.inner.book);
        let count = book.addrs.len();
        (0..count)
            .map(|offset| book.addrs[(book.preferred + offset) % count].clone())
            .collect()
    }

    pub(crate) fn grpc(&self, addr: &str) -> Result<MonitorClient<Channel>, ClientError> {
        let mut book = lock(&self.inner.book);
        let channel = match book.channels.get(addr) {
            Some(channel) => channel.clone(),
            None => {
                let channel = Self::endpoint(addr, &self.inner.config)?.connect_lazy();
                book.channels.insert(addr.to_owned(), channel.clone());
                channel
            }
        };
        Ok(MonitorClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }

    /// Remembers that `addr` answered: it is tried first next time.
    pub(crate) fn mark_good(&self, addr: &str) {
        let mut book = lock(&self.inner.book);
        if let Some(index) = book.addrs.iter().position(|known| known == addr) {
            book.preferred = index;
        }
    }

    /// Remembers that `addr` failed: its connection is dropped and the next monitor is
    /// preferred.
    pub(crate) fn mark_failed(&self, addr: &str) {
        let mut book = lock(&self.inner.book);
        book.channels.remove(addr);
        if let Some(index) = book.addrs.iter().position(|known| known == addr) {
            if book.preferred == index {
                book.preferred = (index + 1) % book.addrs.len();
            }
        }
    }

    /// Adds the monitors a map lists to the known addresses.
    pub(crate) fn learn(&self, map: &ClusterMap) {
        let mut book = lock(&self.inner.book);
        for monitor in map.monitors() {
            let addr = monitor.address.trim();
            if !addr.is_empty()
                && !book.addrs.iter().any(|known| known == addr)
                && Self::endpoint(addr, &self.inner.config).is_ok()
            {
                book.addrs.push(addr.to_owned());
            }
        }
    }

    /// Calls `call` on each monitor in turn until one answers, within `budget` overall and
    /// `per_call` for each monitor; repeats the round while time remains.
    async fn on_any<T, F, Fut>(
        &self,
        budget: Duration,
        per_call: Duration,
        mut call: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(String, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, AttemptError>>,
    {
        let deadline = Instant::now() + budget;
        let mut attempts: Vec<MonitorAttempt> = Vec::new();
        loop {
            for addr in self.rotation() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() && !attempts.is_empty() {
                    return Err(ClientError::Unreachable { attempts });
                }
                let limit = per_call.min(remaining).max(Duration::from_millis(1));
                let outcome = tokio::time::timeout(limit, call(addr.clone(), limit)).await;
                let reason = match outcome {
                    Ok(Ok(value)) => {
                        self.mark_good(&addr);
                        return Ok(value);
                    }
                    Ok(Err(AttemptError::Fatal(error))) => return Err(error),
                    Ok(Err(AttemptError::Retry(reason))) => reason,
                    Err(_) => format!("no answer within {} ms", limit.as_millis()),
                };
                tracing::debug!(addr, reason, "monitor call failed; trying another");
                self.mark_failed(&addr);
                attempts.retain(|attempt| attempt.addr != addr);
                attempts.push(MonitorAttempt { addr, reason });
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::Unreachable { attempts });
            }
            tokio::time::sleep(ROUND_PAUSE.min(remaining)).await;
        }
    }

    /// The map of the first monitor that answers (it may lag the leader by a few epochs;
    /// see [`MonClient::latest_map`]).
    pub async fn get_map(&self) -> Result<Arc<ClusterMap>, ClientError> {
        let per_call = self.inner.config.call_timeout;
        let map = self
            .on_any(per_call, per_call, |addr, _| self.get_map_from(addr))
            .await?;
        self.learn(&map);
        Ok(map)
    }

    async fn get_map_from(&self, addr: String) -> Result<Arc<ClusterMap>, AttemptError> {
        let mut grpc = self.grpc(&addr).map_err(AttemptError::Fatal)?;
        let reply = grpc
            .get_map(GetMapRequest {})
            .await
            .map_err(|status| AttemptError::Retry(describe(&status)))?
            .into_inner();
        let map: ClusterMap = serde_json::from_slice(&reply.map).map_err(|error| {
            AttemptError::Fatal(ClientError::Decode {
                what: "map",
                addr: addr.clone(),
                reason: error.to_string(),
            })
        })?;
        Ok(Arc::new(map))
    }

    /// The first map at `epoch` or later that a monitor serves, polling until `timeout`.
    pub async fn wait_for_epoch(
        &self,
        epoch: u64,
        timeout: Duration,
    ) -> Result<Arc<ClusterMap>, ClientError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let per_call = self.inner.config.call_timeout;
        loop {
            for addr in self.rotation() {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let limit = per_call.min(remaining).max(Duration::from_millis(1));
                if let Ok(Ok(map)) =
                    tokio::time::timeout(limit, self.get_map_from(addr.clone())).await
                {
                    if u64::from(map.epoch()) >= epoch {
                        self.mark_good(&addr);
                        self.learn(&map);
                        return Ok(map);
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout {
                    what: format!("a monitor to serve map epoch {epoch}"),
                    waited_ms: start.elapsed().as_millis(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The map as of the leader's latest epoch: asks the leader for its epoch (through
    /// `Status`), then fetches a map at least that new.
    pub async fn latest_map(&self) -> Result<Arc<ClusterMap>, ClientError> {
        let status = self.status().await?;
        self.wait_for_epoch(status.epoch, self.inner.config.call_timeout)
            .await
    }

    /// Monitor, quorum and health status, as the leader sees it.
    pub async fn status(&self) -> Result<ClusterStatus, ClientError> {
        self.status_call(false).await
    }

    /// Status as the first answering monitor itself sees it (no forwarding, no health).
    pub async fn status_local(&self) -> Result<ClusterStatus, ClientError> {
        self.status_call(true).await
    }

    async fn status_call(&self, local_only: bool) -> Result<ClusterStatus, ClientError> {
        let per_call = self.inner.config.call_timeout;
        let outcome = self
            .on_any(per_call, per_call, |addr, limit| async move {
                let mut grpc = self.grpc(&addr).map_err(AttemptError::Fatal)?;
                let mut request = Request::new(StatusRequest { local_only });
                request.set_timeout(limit);
                match grpc.status(request).await {
                    Ok(reply) => Ok(ClusterStatus::from_proto(reply.into_inner())),
                    Err(status) if is_retryable(&status) => {
                        Err(AttemptError::Retry(describe(&status)))
                    }
                    Err(status) => Err(AttemptError::Fatal(ClientError::Protocol {
                        addr,
                        reason: describe(&status),
                    })),
                }
            })
            .await;
        match outcome {
            // Monitors that answer but cannot reach a leader say "no quorum".
            Err(ClientError::Unreachable { attempts })
                if attempts
                    .iter()
                    .any(|attempt| attempt.reason.contains("no quorum")) =>
            {
                Err(ClientError::NoQuorum {
                    detail: attempts
                        .iter()
                        .map(|attempt| format!("{}: {}", attempt.addr, attempt.reason))
                        .collect::<Vec<_>>()
                        .join("; "),
                })
            }
            other => other,
        }
    }

    /// Runs a command with the configured command timeout.
    pub async fn command(&self, command: Command) -> Result<CommandOutcome, ClientError> {
        self.command_with_timeout(command, self.inner.config.command_timeout)
            .await
    }

    /// Runs a command: the reply comes once it is committed and applied, with the epoch it
    /// produced. Fails over between monitors until `timeout`; a refusal (bad argument,
    /// missing name, ...) is returned at once as [`ClientError::Command`].
    pub async fn command_with_timeout(
        &self,
        command: Command,
        timeout: Duration,
    ) -> Result<CommandOutcome, ClientError> {
        let deadline = Instant::now() + timeout;
        // The monitors get the remaining time as the command's own timeout; the call itself
        // may take a little longer, so that their NO_QUORUM answer still arrives.
        let slack = Duration::from_millis(500);
        // The last NO_QUORUM explanation a monitor gave, for the final error.
        let no_quorum: Mutex<Option<String>> = Mutex::new(None);
        let outcome = self
            .on_any(timeout + slack, timeout + slack, |addr, _| {
                let command = command.clone();
                let no_quorum = &no_quorum;
                async move {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        let explained = no_quorum
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .clone();
                        return Err(match explained {
                            // A monitor said why it could not commit: that is the answer.
                            Some(detail) => AttemptError::Fatal(ClientError::NoQuorum { detail }),
                            None => AttemptError::Retry("the command timeout passed".to_owned()),
                        });
                    }
                    let mut grpc = self.grpc(&addr).map_err(AttemptError::Fatal)?;
                    let mut request = Request::new(CommandRequest {
                        command: Some(command),
                        timeout_ms: remaining.as_millis().max(1) as u64,
                    });
                    request.set_timeout(remaining + slack);
                    let reply = match grpc.command(request).await {
                        Ok(reply) => reply.into_inner(),
                        Err(status) if is_retryable(&status) => {
                            return Err(AttemptError::Retry(describe(&status)))
                        }
                        Err(status) => {
                            return Err(AttemptError::Fatal(ClientError::Protocol {
                                addr,
                                reason: describe(&status),
                            }))
                        }
                    };
                    match reply.outcome {
                        Some(command_reply::Outcome::Ok(ok)) => Ok(CommandOutcome {
                            epoch: ok.epoch,
                            message: ok.message,
                            created_id: ok.created_id,
                        }),
                        Some(command_reply::Outcome::Error(error)) => {
                            let failure = CommandFailure::from_proto(error);
                            match failure.kind {
                                CommandErrorKind::NoQuorum | CommandErrorKind::NotReady => {
                                    *no_quorum
                                        .lock()
                                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(
                                        failure
                                            .message
                                            .strip_prefix("no quorum: ")
                                            .unwrap_or(&failure.message)
                                            .to_owned(),
                                    );
                                    Err(AttemptError::Retry(failure.message))
                                }
                                _ => Err(AttemptError::Fatal(ClientError::Command(failure))),
                            }
                        }
                        None => Err(AttemptError::Fatal(ClientError::Protocol {
                            addr,
                            reason: "a command reply without an outcome".to_owned(),
                        })),
                    }
                }
            })
            .await;
        match outcome {
            Err(ClientError::Unreachable { attempts }) => {
                let explained = no_quorum
                    .into_inner()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let detail = match explained {
                    Some(message) => message,
                    None => format!(
                        "no monitor could be reached within {} ms ({})",
                        timeout.as_millis(),
                        attempts
                            .iter()
                            .map(|attempt| format!("{}: {}", attempt.addr, attempt.reason))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                };
                Err(ClientError::NoQuorum { detail })
            }
            other => other,
        }
    }

    /// Follows the map from the current epoch on; see [`MapWatch`].
    pub fn watch(&self) -> MapWatch {
        MapWatch::new(self.clone(), None)
    }

    /// Follows the map from `map` on: the first event is the epoch after it.
    pub fn watch_from(&self, map: Arc<ClusterMap>) -> MapWatch {
        MapWatch::new(self.clone(), Some(map))
    }

    /// Opens a `WatchMap` stream on `addr`.
    pub(crate) async fn open_watch(
        &self,
        addr: &str,
        since_epoch: u64,
    ) -> Result<tonic::Streaming<proto::mon::MapUpdate>, String> {
        let mut grpc = self.grpc(addr).map_err(|error| error.to_string())?;
        let call = grpc.watch_map(WatchMapRequest { since_epoch });
        match tokio::time::timeout(self.inner.config.call_timeout, call).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(describe(&status)),
            Err(_) => Err(format!(
                "no answer within {} ms",
                self.inner.config.call_timeout.as_millis()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_monitors_are_named_and_commands_say_no_quorum() {
        // Bind and drop listeners so the ports are (very likely) closed.
        let mut addrs = Vec::new();
        for _ in 0..2 {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            addrs.push(listener.local_addr().unwrap().to_string());
        }
        let mut config = ClientConfig::with_mon_hosts(addrs.clone());
        config.call_timeout = Duration::from_millis(300);
        config.command_timeout = Duration::from_millis(300);
        let client = MonClient::new(config).unwrap();
        let error = client.get_map().await.unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, ClientError::Unreachable { .. }), "{text}");
        for addr in &addrs {
            assert!(text.contains(addr.as_str()), "{text}");
        }
        let error = client.command(Command { kind: None }).await.unwrap_err();
        assert!(matches!(error, ClientError::NoQuorum { .. }), "{error}");
        assert!(
            error.to_string().contains("no monitor could be reached"),
            "{error}"
        );
    }

    #[test]
    fn bad_addresses_are_refused() {
        let error = MonClient::new(ClientConfig::with_mon_hosts(["bad host:1"])).unwrap_err();
        assert!(error.to_string().contains("bad host:1"), "{error}");
        let error = MonClient::new(ClientConfig::default()).unwrap_err();
        assert!(matches!(error, ClientError::NoMonitors));
    }
}
