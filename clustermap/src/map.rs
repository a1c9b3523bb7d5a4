//! The [`ClusterMap`] itself: what one epoch of the cluster looks like, and read access to it.
//!
//! A map is immutable: the only ways to get a different one are [`ClusterMap::apply`]
//! (validated changes, see [`crate::change`]) and [`crate::Incremental::apply_to`], and both
//! produce a new epoch. That is what lets a map cache its compiled CRUSH mapper
//! ([`crate::placement`]) for its whole life.
//!
//! The serialized form carries [`FORMAT_VERSION`] (STYLE.md §6); a map written by a newer
//! format is refused rather than misread.

use std::collections::{BTreeMap, BTreeSet};

use crush::CrushMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::placement::CompiledCache;
use crate::types::{
    ClusterFlag, Epoch, Fullness, ObjectHash, OsdId, PgId, PoolId, PoolType, UnixMillis, Uuid,
};

/// The version of the serialized cluster map this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The epoch of a freshly created map (Ceph's first OSDMap epoch is 1 as well).
pub const FIRST_EPOCH: Epoch = 1;

/// A monitor of the quorum. Its rank is its position in [`ClusterMap::monitors`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorInfo {
    /// Unique name (`a`, `mon1`).
    pub name: String,
    /// The address it serves on (`10.0.0.1:7100`).
    pub address: String,
}

/// One OSD as the map knows it. Its CRUSH weight lives in the CRUSH map
/// ([`ClusterMap::crush_weight`]); everything else is here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsdInfo {
    /// The id (`osd.N`), also its CRUSH device id.
    pub id: OsdId,
    /// The identity it keeps in its data directory.
    pub uuid: Uuid,
    /// The address it last booted with; `None` until its first boot.
    pub address: Option<String>,
    /// The CRUSH host it was placed under when it was created.
    pub host: String,
    /// Whether it is up (running and reachable).
    pub up: bool,
    /// Whether it is in (receives data). An out OSD gets reweight 0 in CRUSH.
    #[serde(rename = "in")]
    pub is_in: bool,
    /// Override weight, 16.16 fixed point (`0x10000` = 1.0), used while the OSD is in.
    pub reweight: u32,
    /// The epoch it was last marked up (0: never).
    pub up_from: Epoch,
    /// The last epoch at which it has confirmed being up (peering's `up_thru`).
    pub up_thru: Epoch,
    /// The epoch it was last marked down (0: never).
    pub down_at: Epoch,
    /// The map time it was last marked down, while it is down; the monitors' down-out
    /// policy measures from it.
    pub down_since_ms: Option<UnixMillis>,
    /// The epoch it was last marked in or out (its creation epoch if never).
    pub in_changed_at: Epoch,
    /// The last epoch that changed anything about this OSD.
    pub last_change: Epoch,
    /// How full its storage is, as the monitors last judged it (absent in maps written
    /// before this field existed: `Ok`).
    #[serde(default)]
    pub fullness: Fullness,
}

impl OsdInfo {
    /// The weight CRUSH sees for this OSD: its reweight while in, 0 while out.
    pub fn effective_weight(&self) -> u32 {
        if self.is_in {
            self.reweight
        } else {
            0
        }
    }
}

/// Per-pool switches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolFlags {
    /// Hash the pool id into the CRUSH input so pools do not overlap (Ceph's default).
    pub hashpspool: bool,
    /// The pool cannot be removed.
    pub nodelete: bool,
    /// `pg_num` and `pgp_num` cannot change.
    pub nopgchange: bool,
    /// `size` and `min_size` cannot change.
    pub nosizechange: bool,
}

impl Default for PoolFlags {
    fn default() -> Self {
        PoolFlags {
            hashpspool: true,
            nodelete: false,
            nopgchange: false,
            nosizechange: false,
        }
    }
}

/// A pool: a named namespace of objects with its redundancy and placement settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The id (never reused).
    pub id: PoolId,
    /// Unique name.
    pub name: String,
    /// Replicated or erasure.
    pub pool_type: PoolType,
    /// Number of copies (or shards); CRUSH is asked for this many OSDs.
    pub size: u32,
    /// Fewest acting OSDs with which the PG still serves I/O.
    pub min_size: u32,
    /// Number of placement groups.
    pub pg_num: u32,
    /// Number of placement seeds CRUSH sees (`<= pg_num`); PGs beyond it share placements.
    pub pgp_num: u32,
    /// The CRUSH rule id.
    pub crush_rule: u32,
    /// The object name hash.
    pub object_hash: ObjectHash,
    /// Switches.
    pub flags: PoolFlags,
    /// The epoch it was created.
    pub created_at: Epoch,
    /// The last epoch that changed it.
    pub last_change: Epoch,
}

impl Pool {
    /// `pg_num`'s mask for `stable_mod`.
    pub fn pg_num_mask(&self) -> u32 {
        crush::hash::pg_num_mask(self.pg_num)
    }

    /// `pgp_num`'s mask for `stable_mod`.
    pub fn pgp_num_mask(&self) -> u32 {
        crush::hash::pg_num_mask(self.pgp_num)
    }

    /// The full 32-bit placement hash of an object (Ceph's `pg_pool_t::hash_key`): the
    /// pool's string hash of the name, or, inside a namespace, of `namespace + '\x1f' +
    /// name`.
    pub fn hash_key(&self, name: &str, namespace: &str) -> u32 {
        if namespace.is_empty() {
            return self.object_hash.hash(name.as_bytes());
        }
        let mut key = Vec::with_capacity(namespace.len() + 1 + name.len());
        key.extend_from_slice(namespace.as_bytes());
        key.push(0x1f);
        key.extend_from_slice(name.as_bytes());
        self.object_hash.hash(&key)
    }

    /// Folds a raw seed (a full hash) onto one of the pool's PGs (`raw_pg_to_pg`).
    pub fn raw_seed_to_ps(&self, seed: u32) -> u32 {
        crush::hash::stable_mod(seed, self.pg_num, self.pg_num_mask())
    }

    /// The CRUSH input for a PG seed (`raw_pg_to_pps`): the seed folded onto `pgp_num`,
    /// then hashed with the pool id (hashpspool) or, for legacy pools, added to it.
    pub fn pps(&self, ps: u32) -> u32 {
        let folded = crush::hash::stable_mod(ps, self.pgp_num, self.pgp_num_mask());
        if self.flags.hashpspool {
            // Ceph passes the 64-bit pool id to a 32-bit hash argument: the low 32 bits.
            crush::hash::hash32_2(folded, self.id as u32)
        } else {
            folded.wrapping_add(self.id as u32)
        }
    }

    /// Every PG of the pool, in seed order.
    pub fn pgs(&self) -> impl Iterator<Item = PgId> + '_ {
        (0..self.pg_num).map(move |ps| PgId::new(self.id, ps))
    }

    /// The default `min_size` for a size, as Ceph picks it: a majority (`size - size/2`).
    pub fn default_min_size(size: u32) -> u32 {
        size - size / 2
    }
}

/// Everything the map stores; [`ClusterMap`] wraps it with a cache of derived data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MapState {
    pub(crate) format_version: u32,
    pub(crate) fsid: Uuid,
    pub(crate) epoch: Epoch,
    pub(crate) created_ms: UnixMillis,
    pub(crate) modified_ms: UnixMillis,
    pub(crate) monitors: Vec<MonitorInfo>,
    pub(crate) osds: BTreeMap<OsdId, OsdInfo>,
    pub(crate) pools: BTreeMap<PoolId, Pool>,
    #[serde(
        serialize_with = "crate::crush_wire::serialize",
        deserialize_with = "crate::crush_wire::deserialize"
    )]
    pub(crate) crush: CrushMap,
    pub(crate) pg_temp: BTreeMap<PgId, Vec<OsdId>>,
    pub(crate) primary_temp: BTreeMap<PgId, OsdId>,
    pub(crate) flags: BTreeSet<ClusterFlag>,
    pub(crate) next_pool_id: PoolId,
}

/// One epoch of the cluster: monitors, OSDs, pools, the CRUSH map, temporary PG mappings
/// and flags.
///
/// Immutable once built; see the module documentation. Compare maps with `==` (the cache
/// is not part of equality), serialize them with serde.
#[derive(Clone, Debug)]
pub struct ClusterMap {
    pub(crate) state: MapState,
    pub(crate) compiled: CompiledCache,
}

impl PartialEq for ClusterMap {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
    }
}

impl Eq for ClusterMap {}

impl Serialize for ClusterMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.state.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ClusterMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let state = MapState::deserialize(deserializer)?;
        if state.format_version != FORMAT_VERSION {
            return Err(serde::de::Error::custom(FormatError::Unsupported {
                found: state.format_version,
                supported: FORMAT_VERSION,
            }));
        }
        Ok(ClusterMap::from_state(state))
    }
}

/// Why a serialized map cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum FormatError {
    /// The map was written in a format this build does not know.
    #[error("cluster map format version {found} is not supported (this build reads {supported})")]
    Unsupported {
        /// The version in the data.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
}

impl ClusterMap {
    pub(crate) fn from_state(state: MapState) -> Self {
        ClusterMap {
            state,
            compiled: CompiledCache::default(),
        }
    }

    /// The serialized format version (always [`FORMAT_VERSION`] for a map in memory).
    pub fn format_version(&self) -> u32 {
        self.state.format_version
    }

    /// The cluster's identity.
    pub fn fsid(&self) -> Uuid {
        self.state.fsid
    }

    /// This map's epoch.
    pub fn epoch(&self) -> Epoch {
        self.state.epoch
    }

    /// When the cluster was created.
    pub fn created_ms(&self) -> UnixMillis {
        self.state.created_ms
    }

    /// When this epoch was made.
    pub fn modified_ms(&self) -> UnixMillis {
        self.state.modified_ms
    }

    /// The monitors, in rank order.
    pub fn monitors(&self) -> &[MonitorInfo] {
        &self.state.monitors
    }

    /// A monitor and its rank, by name.
    pub fn monitor(&self, name: &str) -> Option<(usize, &MonitorInfo)> {
        self.state
            .monitors
            .iter()
            .enumerate()
            .find(|(_, mon)| mon.name == name)
    }

    /// Every OSD that exists, by id.
    pub fn osds(&self) -> &BTreeMap<OsdId, OsdInfo> {
        &self.state.osds
    }

    /// One OSD.
    pub fn osd(&self, id: OsdId) -> Option<&OsdInfo> {
        self.state.osds.get(&id)
    }

    /// The OSD with this uuid.
    pub fn osd_by_uuid(&self, uuid: Uuid) -> Option<&OsdInfo> {
        self.state.osds.values().find(|osd| osd.uuid == uuid)
    }

    /// Whether the OSD exists.
    pub fn exists(&self, id: OsdId) -> bool {
        self.state.osds.contains_key(&id)
    }

    /// Whether the OSD exists and is up.
    pub fn is_up(&self, id: OsdId) -> bool {
        self.osd(id).is_some_and(|osd| osd.up)
    }

    /// Whether the OSD exists and is in.
    pub fn is_in(&self, id: OsdId) -> bool {
        self.osd(id).is_some_and(|osd| osd.is_in)
    }

    /// One more than the highest OSD id (Ceph's `max_osd`).
    pub fn max_osd(&self) -> OsdId {
        self.state
            .osds
            .keys()
            .next_back()
            .map_or(0, |id| id.saturating_add(1))
    }

    /// The OSD's CRUSH weight (16.16): the weight the first ordinary bucket that holds it
    /// gives it. `None` if no bucket holds it.
    pub fn crush_weight(&self, id: OsdId) -> Option<u32> {
        self.state.crush.parent_of(id).and_then(|bucket| {
            bucket
                .items
                .iter()
                .find(|item| item.id == id)
                .map(|item| item.weight)
        })
    }

    /// Every pool, by id.
    pub fn pools(&self) -> &BTreeMap<PoolId, Pool> {
        &self.state.pools
    }

    /// One pool by id.
    pub fn pool(&self, id: PoolId) -> Option<&Pool> {
        self.state.pools.get(&id)
    }

    /// One pool by name.
    pub fn pool_by_name(&self, name: &str) -> Option<&Pool> {
        self.state.pools.values().find(|pool| pool.name == name)
    }

    /// The id the next created pool gets.
    pub fn next_pool_id(&self) -> PoolId {
        self.state.next_pool_id
    }

    /// The CRUSH map.
    pub fn crush(&self) -> &CrushMap {
        &self.state.crush
    }

    /// Explicit acting sets that override CRUSH (`pg_temp`), by PG.
    pub fn pg_temp(&self) -> &BTreeMap<PgId, Vec<OsdId>> {
        &self.state.pg_temp
    }

    /// Explicit primaries that override the acting set's first OSD, by PG.
    pub fn primary_temp(&self) -> &BTreeMap<PgId, OsdId> {
        &self.state.primary_temp
    }

    /// The cluster flags that are set.
    pub fn flags(&self) -> &BTreeSet<ClusterFlag> {
        &self.state.flags
    }

    /// Whether a flag is set.
    pub fn is_flag_set(&self, flag: ClusterFlag) -> bool {
        self.state.flags.contains(&flag)
    }

    /// Whether `pgid` names an existing PG (its pool exists and the seed is below `pg_num`).
    pub fn pg_exists(&self, pgid: PgId) -> bool {
        self.pool(pgid.pool)
            .is_some_and(|pool| pgid.ps < pool.pg_num)
    }
}
