//! Incrementals: what changed between two epochs of one cluster, so that subscribers a few
//! epochs behind get a diff instead of the whole map (DESIGN.md §3).
//!
//! [`Incremental::diff`] compares two maps of the same cluster field by field: OSDs, pools
//! and temporary mappings per entry (set or removed), the CRUSH map, monitors and flags as
//! whole replacements when they differ. [`Incremental::apply_to`] checks the cluster and the
//! starting epoch and rebuilds the newer map, so `diff(old, new).apply_to(old) == new`. An
//! incremental may span several epochs (`to_epoch > from_epoch + 1`).

use std::collections::{BTreeMap, BTreeSet};

use crush::CrushMap;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::map::{ClusterMap, MonitorInfo, OsdInfo, Pool, FORMAT_VERSION};
use crate::types::{ClusterFlag, Epoch, OsdId, PgId, PoolId, UnixMillis, Uuid};

/// Why an incremental cannot be made or applied.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum IncrementalError {
    /// The two maps (or the map and the incremental) belong to different clusters.
    #[error("cluster mismatch: expected fsid {expected}, found {found}")]
    FsidMismatch {
        /// The fsid the incremental is for.
        expected: Uuid,
        /// The fsid of the map at hand.
        found: Uuid,
    },
    /// The map is not at the incremental's starting epoch.
    #[error("the incremental starts at epoch {expected}, the map is at epoch {found}")]
    EpochMismatch {
        /// The incremental's `from_epoch`.
        expected: Epoch,
        /// The map's epoch.
        found: Epoch,
    },
    /// The target epoch is not newer than the starting one.
    #[error("epoch {to} is not newer than epoch {from}")]
    NotNewer {
        /// The starting epoch.
        from: Epoch,
        /// The target epoch.
        to: Epoch,
    },
    /// The incremental was written in a format this build does not know.
    #[error("incremental format version {found} is not supported (this build reads {supported})")]
    UnsupportedFormat {
        /// The version in the data.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
}

/// The difference between two epochs of one cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incremental {
    /// Serialized format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The cluster.
    pub fsid: Uuid,
    /// The epoch it applies to.
    pub from_epoch: Epoch,
    /// The epoch it produces.
    pub to_epoch: Epoch,
    /// The target map's modification time.
    pub modified_ms: UnixMillis,
    /// The target map's creation time, if it differs.
    pub created_ms: Option<UnixMillis>,
    /// The whole monitor list, if it changed.
    pub monitors: Option<Vec<MonitorInfo>>,
    /// OSDs added or changed.
    pub osds_set: BTreeMap<OsdId, OsdInfo>,
    /// OSDs removed.
    pub osds_removed: BTreeSet<OsdId>,
    /// Pools added or changed.
    pub pools_set: BTreeMap<PoolId, Pool>,
    /// Pools removed.
    pub pools_removed: BTreeSet<PoolId>,
    /// The whole CRUSH map, if it changed.
    #[serde(with = "crate::crush_wire::optional")]
    pub crush: Option<Box<CrushMap>>,
    /// `pg_temp` entries added or changed.
    pub pg_temp_set: BTreeMap<PgId, Vec<OsdId>>,
    /// `pg_temp` entries removed.
    pub pg_temp_removed: BTreeSet<PgId>,
    /// `primary_temp` entries added or changed.
    pub primary_temp_set: BTreeMap<PgId, OsdId>,
    /// `primary_temp` entries removed.
    pub primary_temp_removed: BTreeSet<PgId>,
    /// The whole flag set, if it changed.
    pub flags: Option<BTreeSet<ClusterFlag>>,
    /// The next pool id, if it changed.
    pub next_pool_id: Option<PoolId>,
}

/// Entries of `new` that are new or differ from `old`, and keys of `old` missing in `new`.
fn diff_entries<K: Ord + Clone, V: PartialEq + Clone>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
) -> (BTreeMap<K, V>, BTreeSet<K>) {
    let set = new
        .iter()
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let removed = old
        .keys()
        .filter(|key| !new.contains_key(*key))
        .cloned()
        .collect();
    (set, removed)
}

fn apply_entries<K: Ord + Clone, V: Clone>(
    target: &mut BTreeMap<K, V>,
    set: &BTreeMap<K, V>,
    removed: &BTreeSet<K>,
) {
    for key in removed {
        target.remove(key);
    }
    for (key, value) in set {
        target.insert(key.clone(), value.clone());
    }
}

fn changed<T: PartialEq + Clone>(old: &T, new: &T) -> Option<T> {
    (old != new).then(|| new.clone())
}

impl Incremental {
    /// What turns `old` into `new`. Both must be of the same cluster and `new` must be the
    /// later epoch.
    pub fn diff(old: &ClusterMap, new: &ClusterMap) -> Result<Incremental, IncrementalError> {
        let (a, b) = (&old.state, &new.state);
        if a.fsid != b.fsid {
            return Err(IncrementalError::FsidMismatch {
                expected: a.fsid,
                found: b.fsid,
            });
        }
        if b.epoch <= a.epoch {
            return Err(IncrementalError::NotNewer {
                from: a.epoch,
                to: b.epoch,
            });
        }
        let (osds_set, osds_removed) = diff_entries(&a.osds, &b.osds);
        let (pools_set, pools_removed) = diff_entries(&a.pools, &b.pools);
        let (pg_temp_set, pg_temp_removed) = diff_entries(&a.pg_temp, &b.pg_temp);
        let (primary_temp_set, primary_temp_removed) =
            diff_entries(&a.primary_temp, &b.primary_temp);
        Ok(Incremental {
            format_version: FORMAT_VERSION,
            fsid: b.fsid,
            from_epoch: a.epoch,
            to_epoch: b.epoch,
            modified_ms: b.modified_ms,
            created_ms: changed(&a.created_ms, &b.created_ms),
            monitors: changed(&a.monitors, &b.monitors),
            osds_set,
            osds_removed,
            pools_set,
            pools_removed,
            crush: (a.crush != b.crush).then(|| Box::new(b.crush.clone())),
            pg_temp_set,
            pg_temp_removed,
            primary_temp_set,
            primary_temp_removed,
            flags: changed(&a.flags, &b.flags),
            next_pool_id: changed(&a.next_pool_id, &b.next_pool_id),
        })
    }

    /// Whether nothing but the epoch and the modification time changes.
    pub fn is_empty(&self) -> bool {
        self.created_ms.is_none()
            && self.monitors.is_none()
            && self.osds_set.is_empty()
            && self.osds_removed.is_empty()
            && self.pools_set.is_empty()
            && self.pools_removed.is_empty()
            && self.crush.is_none()
            && self.pg_temp_set.is_empty()
            && self.pg_temp_removed.is_empty()
            && self.primary_temp_set.is_empty()
            && self.primary_temp_removed.is_empty()
            && self.flags.is_none()
            && self.next_pool_id.is_none()
    }

    /// The map at `to_epoch`, from `map` at `from_epoch`.
    pub fn apply_to(&self, map: &ClusterMap) -> Result<ClusterMap, IncrementalError> {
        if self.format_version != FORMAT_VERSION {
            return Err(IncrementalError::UnsupportedFormat {
                found: self.format_version,
                supported: FORMAT_VERSION,
            });
        }
        if map.fsid() != self.fsid {
            return Err(IncrementalError::FsidMismatch {
                expected: self.fsid,
                found: map.fsid(),
            });
        }
        if map.epoch() != self.from_epoch {
            return Err(IncrementalError::EpochMismatch {
                expected: self.from_epoch,
                found: map.epoch(),
            });
        }
        if self.to_epoch <= self.from_epoch {
            return Err(IncrementalError::NotNewer {
                from: self.from_epoch,
                to: self.to_epoch,
            });
        }
        let mut state = map.state.clone();
        state.epoch = self.to_epoch;
        state.modified_ms = self.modified_ms;
        if let Some(created) = self.created_ms {
            state.created_ms = created;
        }
        if let Some(monitors) = &self.monitors {
            state.monitors = monitors.clone();
        }
        apply_entries(&mut state.osds, &self.osds_set, &self.osds_removed);
        apply_entries(&mut state.pools, &self.pools_set, &self.pools_removed);
        if let Some(crush) = &self.crush {
            state.crush = (**crush).clone();
        }
        apply_entries(&mut state.pg_temp, &self.pg_temp_set, &self.pg_temp_removed);
        apply_entries(
            &mut state.primary_temp,
            &self.primary_temp_set,
            &self.primary_temp_removed,
        );
        if let Some(flags) = &self.flags {
            state.flags = flags.clone();
        }
        if let Some(next) = self.next_pool_id {
            state.next_pool_id = next;
        }
        Ok(ClusterMap::from_state(state))
    }
}

impl ClusterMap {
    /// Applies an incremental to this map (see [`Incremental::apply_to`]).
    pub fn apply_incremental(&self, inc: &Incremental) -> Result<ClusterMap, IncrementalError> {
        inc.apply_to(self)
    }
}
