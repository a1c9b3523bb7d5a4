//! [`MapWatch`]: a map subscription (`WatchMap`) that survives monitor failures.
//!
//! The watch keeps the last map it delivered. When its stream breaks (the monitor died,
//! shut down, or dropped a slow consumer) it subscribes again on the next monitor with
//! `since_epoch` = that map's epoch, so it receives what it missed as incrementals and
//! never the same epoch twice. Updates at or below the epoch it has are skipped (a lagging
//! monitor may repeat them); an incremental that does not start at its epoch makes it
//! resubscribe asking for a full map. So events come in strictly increasing epochs, and
//! consecutively unless an event says it is a full map ([`MapEvent::full`]) that may have
//! skipped epochs the monitors no longer keep.

use std::sync::Arc;
use std::time::Duration;

use clustermap::{ClusterMap, Incremental};
use proto::mon::map_update::Update;

use crate::error::ClientError;
use crate::mon_client::MonClient;

/// The longest pause between two subscription attempts when every monitor fails.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// One new epoch of the map.
#[derive(Clone, Debug)]
pub struct MapEvent {
    /// The map at the new epoch.
    pub map: Arc<ClusterMap>,
    /// True when it came as a whole map rather than an incremental (the first event, or
    /// after a gap the monitors could not fill with incrementals).
    pub full: bool,
    /// The monitor that sent it.
    pub from: String,
}

/// A subscription to map changes; see the module documentation.
pub struct MapWatch {
    client: MonClient,
    map: Option<Arc<ClusterMap>>,
    stream: Option<(String, tonic::Streaming<proto::mon::MapUpdate>)>,
    /// Consecutive failures, for the backoff.
    failures: u32,
    /// Ask for a full map on the next subscription (after an inconsistency).
    want_full: bool,
    /// Subscriptions opened so far (1 + resubscriptions), for observers.
    subscriptions: u64,
}

impl std::fmt::Debug for MapWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapWatch")
            .field("epoch", &self.epoch())
            .field("monitor", &self.stream.as_ref().map(|(addr, _)| addr))
            .field("subscriptions", &self.subscriptions)
            .finish_non_exhaustive()
    }
}

impl MapWatch {
    pub(crate) fn new(client: MonClient, map: Option<Arc<ClusterMap>>) -> Self {
        MapWatch {
            client,
            map,
            stream: None,
            failures: 0,
            want_full: false,
            subscriptions: 0,
        }
    }

    /// The last map delivered (or given to [`MonClient::watch_from`]).
    pub fn current(&self) -> Option<&Arc<ClusterMap>> {
        self.map.as_ref()
    }

    /// The epoch of [`MapWatch::current`], 0 before the first event.
    pub fn epoch(&self) -> u64 {
        self.map.as_ref().map_or(0, |map| u64::from(map.epoch()))
    }

    /// How many times the watch subscribed (the first subscription included).
    pub fn subscriptions(&self) -> u64 {
        self.subscriptions
    }

    /// Waits for the next epoch. Runs until one arrives, failing over between monitors as
    /// often as needed: bound it with `tokio::time::timeout`. Errors only for answers that
    /// retrying cannot fix (a map that does not decode).
    pub async fn next(&mut self) -> Result<MapEvent, ClientError> {
        loop {
            let Some((addr, stream)) = self.stream.as_mut() else {
                self.subscribe().await;
                continue;
            };
            let addr = addr.clone();
            let message = stream.message().await;
            let reason = match message {
                Ok(Some(update)) => match self.accept(&addr, update)? {
                    Some(event) => {
                        self.failures = 0;
                        return Ok(event);
                    }
                    None => continue,
                },
                Ok(None) => "the stream ended".to_owned(),
                Err(status) => format!("{:?}: {}", status.code(), status.message()),
            };
            tracing::debug!(
                addr,
                reason,
                epoch = self.epoch(),
                "map watch broke; resubscribing"
            );
            self.client.mark_failed(&addr);
            self.stream = None;
        }
    }

    /// Opens a stream on the next monitor, pausing first when the previous ones failed.
    async fn subscribe(&mut self) {
        if self.failures > 0 {
            let pause = Duration::from_millis(20u64 << self.failures.min(5)).min(MAX_BACKOFF);
            tokio::time::sleep(pause).await;
        }
        let since = if self.want_full { 0 } else { self.epoch() };
        let rotation = self.client.rotation();
        for addr in rotation {
            match self.client.open_watch(&addr, since).await {
                Ok(stream) => {
                    self.subscriptions += 1;
                    self.want_full = false;
                    self.stream = Some((addr, stream));
                    return;
                }
                Err(reason) => {
                    tracing::debug!(addr, reason, "cannot subscribe to map updates");
                    self.client.mark_failed(&addr);
                }
            }
        }
        self.failures = self.failures.saturating_add(1);
    }

    /// Applies one update; `None` when it brings nothing new.
    fn accept(
        &mut self,
        addr: &str,
        update: proto::mon::MapUpdate,
    ) -> Result<Option<MapEvent>, ClientError> {
        let have = self.epoch();
        if update.epoch <= have {
            return Ok(None);
        }
        let (map, full) = match update.update {
            Some(Update::FullMap(bytes)) => {
                let map: ClusterMap =
                    serde_json::from_slice(&bytes).map_err(|error| ClientError::Decode {
                        what: "map",
                        addr: addr.to_owned(),
                        reason: error.to_string(),
                    })?;
                (map, true)
            }
            Some(Update::Incremental(bytes)) => {
                let incremental: Incremental =
                    serde_json::from_slice(&bytes).map_err(|error| ClientError::Decode {
                        what: "incremental",
                        addr: addr.to_owned(),
                        reason: error.to_string(),
                    })?;
                let applied = match &self.map {
                    Some(current) if u64::from(incremental.from_epoch) == have => {
                        current.apply_incremental(&incremental).ok()
                    }
                    _ => None,
                };
                match applied {
                    Some(map) => (map, false),
                    None => {
                        // A gap or an incremental that does not fit: start over from a
                        // full map rather than guess.
                        tracing::debug!(
                            addr,
                            have,
                            from = incremental.from_epoch,
                            "map incremental does not apply; asking for a full map"
                        );
                        self.want_full = true;
                        self.stream = None;
                        return Ok(None);
                    }
                }
            }
            None => return Ok(None),
        };
        if u64::from(map.epoch()) != update.epoch {
            return Err(ClientError::Protocol {
                addr: addr.to_owned(),
                reason: format!(
                    "a map update for epoch {} carried epoch {}",
                    update.epoch,
                    map.epoch()
                ),
            });
        }
        let map = Arc::new(map);
        self.client.learn(&map);
        self.client.mark_good(addr);
        self.map = Some(Arc::clone(&map));
        Ok(Some(MapEvent {
            map,
            full,
            from: addr.to_owned(),
        }))
    }
}
