//! One placement group as this OSD holds it: its place in the map (up, acting, primary,
//! role), its phase (peering, active, waiting for `min_size`), the interval counter that
//! tells in-flight work the acting set changed, the per-object op order and the log head
//! under which writes are applied in version order.
//!
//! * [`write`]: the primary's write path and the replicas' `Replicate`;
//! * [`read`]: reads and listing;
//! * [`peering`]: bringing the primary and every acting replica up to date before serving.
//!
//! Locks: `shared` (a std mutex, never held across an await or I/O) guards the mapping and
//! phase; `head` (a std mutex) is held while one write is applied to the store (no fsync
//! inside), so versions reach the store in order; per-object tokio mutexes order the ops on
//! one object, held for an op's whole life (replication included).

pub mod peering;
pub mod read;
pub mod write;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use clustermap::{Epoch, OsdId, PgId, PgMapping, Pool};
use tokio::sync::{watch, OwnedMutexGuard};

use crate::store::{Eversion, ObjectId};
use crate::wire::OpFailure;

/// Ops moving fewer data bytes than this run their store work on the async thread: a
/// small apply or read costs less than the two thread switches of the store pool. Larger
/// ones (memcpy and checksums of whole chunks) go to the store pool so they do not stall
/// the network tasks sharing the worker. An inline apply can still wait on the PG's head
/// lock while a large apply of the same PG holds it: at most one large apply long.
const INLINE_STORE_BYTES: u64 = 64 * 1024;

/// Whether store work moving `bytes` of data runs inline (see [`INLINE_STORE_BYTES`]).
/// A write of a whole chunk never runs inline: it may go to the block file (a direct
/// write and a flush).
fn runs_inline(bytes: u64) -> bool {
    bytes < INLINE_STORE_BYTES
}

/// Runs synchronous store work inline or on the store pool.
async fn store_work<T: Send + 'static>(
    inline: bool,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, OpFailure> {
    if inline {
        return Ok(work());
    }
    crate::store_pool::run(work)
        .await
        .map_err(|error| OpFailure::new(proto::osd::OpErrorKind::Internal, error.to_string()))
}

/// What this OSD is for the PG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The acting primary: orders, replicates, serves ops.
    Primary,
    /// Another member of the acting (or up) set.
    Replica,
    /// Holds a copy but is not in the PG's sets (or the pool is gone).
    Stray,
}

impl Role {
    /// The name OsdStatus shows.
    pub fn name(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Stray => "stray",
        }
    }
}

/// Where the PG is in its life, as seen by its primary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The interval changed and the copies are being brought up to date: ops wait.
    Peering,
    /// Serving ops.
    Active,
    /// Fewer acting OSDs than `min_size`: ops wait.
    BelowMinSize,
}

/// The mapping and state of the PG.
#[derive(Clone, Debug)]
pub struct PgView {
    /// The epoch of the map this view comes from.
    pub epoch: Epoch,
    /// The up set.
    pub up: Vec<OsdId>,
    /// The acting set.
    pub acting: Vec<OsdId>,
    /// The acting primary (-1: none).
    pub primary: OsdId,
    /// The pool's size and min_size.
    pub size: u32,
    /// See `size`.
    pub min_size: u32,
    /// Our role.
    pub role: Role,
    /// The phase.
    pub phase: Phase,
    /// Bumped whenever the acting set or primary changes, or a re-peer is forced.
    pub interval: u64,
    /// Acting members of earlier intervals since the PG was last clean: they may hold
    /// writes the current members lack, so peering asks them too.
    pub past_acting: BTreeSet<OsdId>,
    /// Objects the last peering had to copy to a member (reported as degraded until the
    /// PG is clean).
    pub degraded: u64,
    /// Client writes between replication start and end.
    pub inflight: usize,
}

/// One PG.
pub struct Pg {
    /// Its id.
    pub id: PgId,
    shared: Mutex<PgView>,
    /// Bumped on every change of `shared`, for waiters.
    changed: watch::Sender<u64>,
    /// The log head; held while a write is applied so versions reach the store in order.
    head: Mutex<Eversion>,
    /// The head, for replicas waiting for a predecessor write.
    head_watch: watch::Sender<Eversion>,
    /// Per-object op order.
    objects: Mutex<HashMap<ObjectId, Arc<tokio::sync::Mutex<()>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a poisoned lock is usable.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Holds an object's place in its op order; dropping it lets the next op run.
pub struct ObjectGuard {
    pg: Arc<Pg>,
    object: ObjectId,
    mutex: Arc<tokio::sync::Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Drop for ObjectGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut objects = lock(&self.pg.objects);
        // Two owners left (the table and us): nobody waits, so the entry can go.
        if Arc::strong_count(&self.mutex) == 2 {
            objects.remove(&self.object);
        }
    }
}

impl Pg {
    /// A PG whose store copy has `head` as last update, with no mapping yet.
    pub fn new(id: PgId, head: Eversion) -> Arc<Pg> {
        Arc::new(Pg {
            id,
            shared: Mutex::new(PgView {
                epoch: 0,
                up: Vec::new(),
                acting: Vec::new(),
                primary: -1,
                size: 0,
                min_size: 0,
                role: Role::Stray,
                phase: Phase::Peering,
                interval: 0,
                past_acting: BTreeSet::new(),
                degraded: 0,
                inflight: 0,
            }),
            changed: watch::Sender::new(0),
            head: Mutex::new(head),
            head_watch: watch::Sender::new(head),
            objects: Mutex::new(HashMap::new()),
        })
    }

    /// A copy of the view.
    pub fn view(&self) -> PgView {
        lock(&self.shared).clone()
    }

    /// The current interval.
    pub fn interval(&self) -> u64 {
        lock(&self.shared).interval
    }

    /// The log head as the PG layer knows it.
    pub fn head(&self) -> Eversion {
        *lock(&self.head)
    }

    /// Changes the view and wakes waiters.
    fn modify<R>(&self, change: impl FnOnce(&mut PgView) -> R) -> R {
        let result = change(&mut lock(&self.shared));
        self.changed.send_modify(|count| *count += 1);
        result
    }

    /// Applies a new map's mapping of this PG (`None`: it no longer maps here or the pool
    /// is gone). Returns true when this OSD must (re)peer the PG as its primary.
    pub fn update_mapping(
        &self,
        me: OsdId,
        epoch: Epoch,
        mapping: Option<(&PgMapping, &Pool)>,
    ) -> bool {
        self.modify(|view| {
            let Some((mapping, pool)) = mapping else {
                if view.role != Role::Stray {
                    tracing::info!(pg = %self.id, epoch, "pg no longer maps here; now stray");
                    view.role = Role::Stray;
                    view.interval += 1;
                    view.phase = Phase::Peering;
                }
                view.epoch = epoch;
                return false;
            };
            let acting: Vec<OsdId> = mapping
                .acting
                .iter()
                .copied()
                .filter(|osd| *osd >= 0 && *osd != crush_none())
                .collect();
            let role = if mapping.acting_primary == me {
                Role::Primary
            } else if acting.contains(&me) || mapping.up.contains(&me) {
                Role::Replica
            } else {
                Role::Stray
            };
            let changed = view.epoch == 0
                || view.acting != acting
                || view.primary != mapping.acting_primary
                || view.role != role
                || view.min_size != pool.min_size
                || view.size != pool.size;
            view.epoch = epoch;
            view.up = mapping.up.clone();
            view.size = pool.size;
            view.min_size = pool.min_size;
            if !changed {
                return false;
            }
            for old in view.acting.drain(..) {
                if !acting.contains(&old) {
                    view.past_acting.insert(old);
                }
            }
            view.acting = acting;
            view.primary = mapping.acting_primary;
            view.role = role;
            view.interval += 1;
            match role {
                Role::Primary if (view.acting.len() as u32) < pool.min_size.max(1) => {
                    tracing::warn!(
                        pg = %self.id,
                        epoch,
                        acting = ?view.acting,
                        min_size = pool.min_size,
                        "pg primary here but below min_size; ops wait"
                    );
                    view.phase = Phase::BelowMinSize;
                    false
                }
                Role::Primary => {
                    tracing::info!(
                        pg = %self.id,
                        epoch,
                        acting = ?view.acting,
                        up = ?view.up,
                        "pg became primary here; peering"
                    );
                    view.phase = Phase::Peering;
                    true
                }
                Role::Replica => {
                    tracing::debug!(pg = %self.id, epoch, primary = view.primary, "pg replica");
                    view.phase = Phase::Active;
                    false
                }
                Role::Stray => {
                    view.phase = Phase::Peering;
                    false
                }
            }
        })
    }

    /// Starts a new interval without a map change (a replica missed writes): ops wait
    /// until peering brought every copy up to date. Returns false when not primary.
    pub fn force_repeer(&self, reason: &str) -> bool {
        self.modify(|view| {
            if view.role != Role::Primary {
                return false;
            }
            tracing::warn!(pg = %self.id, reason, "re-peering");
            view.interval += 1;
            view.phase = Phase::Peering;
            true
        })
    }

    /// Waits until the PG serves ops (active primary), or `deadline`.
    pub async fn wait_active(&self, deadline: Instant) -> Result<PgView, OpFailure> {
        let mut changes = self.changed.subscribe();
        loop {
            {
                let view = lock(&self.shared);
                if view.role != Role::Primary {
                    return Err(OpFailure::new(
                        proto::osd::OpErrorKind::Misdirected,
                        format!("this OSD is not the primary of pg {}", self.id),
                    ));
                }
                if view.phase == Phase::Active {
                    return Ok(view.clone());
                }
            }
            let state = self.view();
            let waited = tokio::time::timeout_at(deadline.into(), changes.changed()).await;
            if waited.is_err() {
                let why = match state.phase {
                    Phase::BelowMinSize => format!(
                        "{} acting OSDs, fewer than min_size {}",
                        state.acting.len(),
                        state.min_size
                    ),
                    _ => "it is peering".to_owned(),
                };
                return Err(OpFailure::busy(format!(
                    "pg {} cannot serve ops: {why}",
                    self.id
                )));
            }
        }
    }

    /// Waits until `condition` holds for the view, or `deadline`; returns whether it held.
    pub async fn wait_until(&self, deadline: Instant, condition: impl Fn(&PgView) -> bool) -> bool {
        let mut changes = self.changed.subscribe();
        loop {
            if condition(&lock(&self.shared)) {
                return true;
            }
            if tokio::time::timeout_at(deadline.into(), changes.changed())
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Takes the object's place in its op order (FIFO).
    pub async fn lock_object(self: &Arc<Self>, object: &ObjectId) -> ObjectGuard {
        let mutex = lock(&self.objects)
            .entry(object.clone())
            .or_default()
            .clone();
        let guard = Arc::clone(&mutex).lock_owned().await;
        ObjectGuard {
            pg: Arc::clone(self),
            object: object.clone(),
            mutex,
            guard: Some(guard),
        }
    }

    /// Sets the head after recovery changed the store's last update.
    pub fn set_head(&self, head: Eversion) {
        let mut current = lock(&self.head);
        *current = head;
        self.head_watch.send_replace(head);
    }

    /// Counts a client write in or out of replication.
    pub fn inflight(&self, delta: isize) {
        self.modify(|view| {
            view.inflight = view.inflight.saturating_add_signed(delta);
        });
    }

    /// The Ceph-style state string.
    pub fn state_name(view: &PgView) -> String {
        match (view.role, view.phase) {
            (Role::Stray, _) => "stray".to_owned(),
            (Role::Replica, _) => "active".to_owned(),
            (Role::Primary, Phase::Peering) => "peering".to_owned(),
            (Role::Primary, Phase::BelowMinSize) => "undersized+degraded+peered".to_owned(),
            (Role::Primary, Phase::Active) => {
                if (view.acting.len() as u32) < view.size {
                    "active+undersized+degraded".to_owned()
                } else {
                    "active+clean".to_owned()
                }
            }
        }
    }
}

/// CRUSH's "no OSD" marker.
fn crush_none() -> OsdId {
    0x7fff_ffff
}

impl Pg {
    /// Runs `change` under the head lock (so no write is applied meanwhile) and publishes
    /// the head it leaves.
    pub fn with_head<R>(&self, change: impl FnOnce(&mut Eversion) -> R) -> R {
        let mut head = lock(&self.head);
        let result = change(&mut head);
        self.head_watch.send_replace(*head);
        result
    }

    /// Marks the PG active after peering (if `interval` is still current).
    pub fn activate(&self, interval: u64, degraded: u64) -> bool {
        self.modify(|view| {
            if view.interval != interval || view.role != Role::Primary {
                return false;
            }
            view.phase = Phase::Active;
            view.degraded = degraded;
            if view.acting.len() as u32 >= view.size {
                view.past_acting.clear();
                view.degraded = 0;
            }
            true
        })
    }
}
