//! [`Node`]: what one running OSD shares between its tasks: identity, config, the object
//! store, the current map, the PG registry, peer channels and the monitor client. Map
//! changes come in through [`Node::apply_map`] (from the map watch, or a catch-up after a
//! message from a newer epoch), which updates every PG that maps here and starts peering
//! where this OSD became, or stays, the primary of a changed acting set.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use clustermap::{ClusterMap, Epoch, OsdId, PgId, Uuid};
use monclient::MonClient;
use tokio::sync::{watch, Notify};

use crate::config::OsdConfig;
use crate::peers::Peers;
use crate::pg::{Pg, Role};
use crate::store::{ObjectStore, StoreError};
use crate::syncer::Syncer;

/// The shared state of a running OSD.
pub struct Node {
    /// Our id.
    pub id: OsdId,
    /// Our uuid.
    pub uuid: Uuid,
    /// The `[osd]` settings.
    pub config: OsdConfig,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The object store.
    pub store: Arc<ObjectStore>,
    /// Makes applied writes durable (group commit on one thread).
    pub syncer: Syncer,
    /// Channels to peers.
    pub peers: Peers,
    /// The monitors.
    pub mon: MonClient,
    /// Kicked when a PG's state changes, so statistics go out soon.
    pub stats_kick: Notify,
    /// Client writes this OSD is running as primary.
    pub primary_writes: InFlight,
    /// The latest measure of this OSD's storage.
    pub space: crate::space::SpaceGauge,
    map: watch::Sender<Option<Arc<ClusterMap>>>,
    advance: tokio::sync::Mutex<()>,
    pgs: RwLock<HashMap<PgId, Arc<Pg>>>,
}

/// A count of operations under way; [`InFlight::enter`] counts one until its guard drops.
#[derive(Debug, Default)]
pub struct InFlight(std::sync::atomic::AtomicUsize);

impl InFlight {
    /// Counts one more until the returned guard is dropped.
    pub fn enter(&self) -> InFlightGuard<'_> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlightGuard(self)
    }

    /// How many are under way.
    pub fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// One operation counted by [`InFlight`].
#[derive(Debug)]
pub struct InFlightGuard<'a>(&'a InFlight);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Node {
    /// A node with no map yet; registers the PGs the store holds (as strays until a map
    /// says otherwise).
    pub fn new(
        id: OsdId,
        uuid: Uuid,
        config: OsdConfig,
        data_dir: PathBuf,
        store: Arc<ObjectStore>,
        syncer: Syncer,
        mon: MonClient,
    ) -> Result<Arc<Node>, StoreError> {
        let mut pgs = HashMap::new();
        for pg in store.pgs() {
            let info = store.pg_info(pg)?;
            pgs.insert(pg, Pg::new(pg, info.last_update));
        }
        Ok(Arc::new(Node {
            id,
            uuid,
            config,
            data_dir,
            store,
            syncer,
            peers: Peers::default(),
            mon,
            stats_kick: Notify::new(),
            primary_writes: InFlight::default(),
            space: crate::space::SpaceGauge::default(),
            map: watch::Sender::new(None),
            advance: tokio::sync::Mutex::new(()),
            pgs: RwLock::new(pgs),
        }))
    }

    /// The current map, once there is one.
    pub fn map(&self) -> Option<Arc<ClusterMap>> {
        self.map.borrow().clone()
    }

    /// The current epoch (0 before the first map).
    pub fn epoch(&self) -> Epoch {
        self.map.borrow().as_ref().map_or(0, |map| map.epoch())
    }

    /// A PG this OSD holds.
    pub fn pg(&self, id: PgId) -> Option<Arc<Pg>> {
        self.pgs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }

    /// Every PG this OSD holds, sorted.
    pub fn all_pgs(&self) -> Vec<Arc<Pg>> {
        let mut pgs: Vec<Arc<Pg>> = self
            .pgs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        pgs.sort_by_key(|pg| pg.id);
        pgs
    }

    /// The OSDs that share a PG with us (for heartbeats), up in the current map.
    pub fn heartbeat_peers(&self) -> BTreeSet<OsdId> {
        let Some(map) = self.map() else {
            return BTreeSet::new();
        };
        let mut peers = BTreeSet::new();
        for pg in self.all_pgs() {
            let view = pg.view();
            if view.role == Role::Stray {
                continue;
            }
            peers.extend(view.acting.iter().chain(view.up.iter()).copied());
        }
        peers.remove(&self.id);
        peers.retain(|osd| map.is_up(*osd));
        peers
    }

    /// Makes `map` current if it is newer: updates every PG, starts peering where needed.
    pub async fn apply_map(self: &Arc<Self>, map: Arc<ClusterMap>) {
        let _serial = self.advance.lock().await;
        let epoch = map.epoch();
        if epoch <= self.epoch() {
            return;
        }
        let mut mapper = map.pg_mapper();
        let mut seen = BTreeSet::new();
        let mut to_peer = Vec::new();
        for pool in map.pools().values() {
            for pgid in pool.pgs() {
                let mapping = match mapper.map(pgid) {
                    Ok(mapping) => mapping,
                    Err(error) => {
                        tracing::warn!(pg = %pgid, %error, "cannot map pg");
                        continue;
                    }
                };
                let here = mapping.up.contains(&self.id) || mapping.acting.contains(&self.id);
                let existing = self.pg(pgid);
                if !here && existing.is_none() {
                    continue;
                }
                let pg = match existing {
                    Some(pg) => pg,
                    None => match self.create_pg(pgid) {
                        Ok(pg) => pg,
                        Err(error) => {
                            tracing::error!(pg = %pgid, %error, "cannot create pg in the store");
                            continue;
                        }
                    },
                };
                seen.insert(pgid);
                let mapping_here = here.then_some((&mapping, pool));
                if pg.update_mapping(self.id, epoch, mapping_here) {
                    to_peer.push(pg);
                }
            }
        }
        for pg in self.all_pgs() {
            if !seen.contains(&pg.id) {
                pg.update_mapping(self.id, epoch, None);
            }
        }
        self.map.send_replace(Some(map));
        for pg in to_peer {
            crate::pg::peering::start(Arc::clone(self), pg);
        }
        self.stats_kick.notify_one();
    }

    fn create_pg(&self, pgid: PgId) -> Result<Arc<Pg>, StoreError> {
        match self.store.create_pg(pgid) {
            Ok(()) | Err(StoreError::PgExists { .. }) => {}
            Err(error) => return Err(error),
        }
        let info = self.store.pg_info(pgid)?;
        let mut pgs = self.pgs.write().unwrap_or_else(|p| p.into_inner());
        Ok(pgs
            .entry(pgid)
            .or_insert_with(|| Pg::new(pgid, info.last_update))
            .clone())
    }

    /// Makes sure a PG exists locally (a push to a new member may precede its map).
    pub fn ensure_pg(&self, pgid: PgId) -> Result<Arc<Pg>, StoreError> {
        match self.pg(pgid) {
            Some(pg) => Ok(pg),
            None => self.create_pg(pgid),
        }
    }

    /// Waits until our map is at `epoch` or newer: first for the map watch, then by
    /// asking the monitors. Returns whether it got there within `timeout`.
    pub async fn catch_up(self: &Arc<Self>, epoch: Epoch, timeout: Duration) -> bool {
        if self.epoch() >= epoch {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let mut changes = self.map.subscribe();
        let watch_wait = Duration::from_millis(200).min(timeout);
        let reached = tokio::time::timeout(
            watch_wait,
            changes.wait_for(|map| map.as_ref().is_some_and(|m| m.epoch() >= epoch)),
        )
        .await
        .is_ok_and(|seen| seen.is_ok());
        if reached {
            return true;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        tracing::debug!(epoch, have = self.epoch(), "catching up from the monitors");
        match self.mon.wait_for_epoch(u64::from(epoch), remaining).await {
            Ok(map) => {
                self.apply_map(map).await;
                self.epoch() >= epoch
            }
            Err(error) => {
                tracing::warn!(epoch, %error, "could not catch up to a newer map");
                false
            }
        }
    }
}
