//! Placement, exactly as DESIGN.md §2 and Ceph's `OSDMap` do it: object → PG → raw CRUSH
//! result → up set → acting set and primaries.
//!
//! 1. `hash = pool.hash_key(name, namespace)` (rjenkins of the name, or of
//!    `namespace + '\x1f' + name` inside a namespace);
//! 2. `ps = stable_mod(hash, pg_num, pg_num_mask)`;
//! 3. `x = hash32_2(stable_mod(ps, pgp_num, pgp_num_mask), pool_id)` (hashpspool);
//! 4. `raw = do_rule(pool.crush_rule, x, pool.size, reweights)`, with reweight 0 for OSDs that
//!    are out or do not exist, and the `choose_args` set of the pool id, else of `-1`; then
//!    OSDs that do not exist are dropped (replicated) or become holes (erasure);
//! 5. `up` = `raw` without down OSDs (replicated pools shift left, erasure pools keep
//!    [`crush::ITEM_NONE`]); `up_primary` = first OSD of `up`;
//! 6. `acting` = `pg_temp` (without down OSDs, same rule) if set, else `up`; `primary` =
//!    `primary_temp` if set, else the first OSD of `pg_temp`, else `up_primary`.
//!
//! The compiled CRUSH mappers and the reweight vector are built on first use and kept with
//! the map (a map never changes, so they never go stale); a [`PgMapper`] adds a reusable
//! CRUSH workspace for loops over many PGs.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use crush::{Mapper, Workspace, ITEM_NONE};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::map::{ClusterMap, Pool};
use crate::types::{Epoch, OsdId, PgId, PoolId};

/// Why a placement question has no answer.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum MappingError {
    /// No pool has this id.
    #[error("pool {pool} does not exist")]
    PoolNotFound {
        /// The pool id.
        pool: PoolId,
    },
    /// No pool has this name.
    #[error("pool `{name}` does not exist")]
    PoolNameNotFound {
        /// The pool name.
        name: String,
    },
}

/// Where one PG lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgMapping {
    /// The PG (seed folded below `pg_num`).
    pub pgid: PgId,
    /// The CRUSH input (`pps`).
    pub pps: u32,
    /// CRUSH's result, without OSDs that do not exist (holes in erasure pools).
    pub raw: Vec<OsdId>,
    /// `raw` without down OSDs.
    pub up: Vec<OsdId>,
    /// The first OSD of `up`, or -1.
    pub up_primary: OsdId,
    /// The OSDs serving the PG (`pg_temp` or `up`).
    pub acting: Vec<OsdId>,
    /// The OSD that coordinates the PG, or -1.
    pub acting_primary: OsdId,
}

impl PgMapping {
    /// Number of real OSDs (holes not counted) in the acting set.
    pub fn acting_count(&self) -> usize {
        self.acting.iter().filter(|osd| **osd != ITEM_NONE).count()
    }

    /// Number of real OSDs in the up set.
    pub fn up_count(&self) -> usize {
        self.up.iter().filter(|osd| **osd != ITEM_NONE).count()
    }
}

/// Every step of placing one object: what `shoal osd map POOL OBJ` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMapping {
    /// The map epoch used.
    pub epoch: Epoch,
    /// The pool's name.
    pub pool_name: String,
    /// The pool's id.
    pub pool_id: PoolId,
    /// The object's name.
    pub object: String,
    /// Its namespace (empty: the default namespace).
    pub namespace: String,
    /// The full 32-bit hash (the raw PG seed).
    pub hash: u32,
    /// `pool.hash`, as Ceph prints first.
    pub raw_pgid: PgId,
    /// The rest of the mapping, for the PG the object falls into.
    pub mapping: PgMapping,
}

impl ObjectMapping {
    /// The name Ceph prints: `namespace/object`, or just the object outside a namespace.
    pub fn full_name(&self) -> String {
        if self.namespace.is_empty() {
            self.object.clone()
        } else {
            format!("{}/{}", self.namespace, self.object)
        }
    }
}

/// Writes an OSD list as Ceph does: `[1,2,NONE]`.
pub fn format_osd_list(osds: &[OsdId]) -> String {
    let items: Vec<String> = osds
        .iter()
        .map(|osd| {
            if *osd == ITEM_NONE {
                "NONE".to_string()
            } else {
                osd.to_string()
            }
        })
        .collect();
    format!("[{}]", items.join(","))
}

impl fmt::Display for ObjectMapping {
    /// `osdmap e13 pool 'data' (0) object 'foo' -> pg 0.7fc1f406 (0.6) -> up ([1,0], p1)
    /// acting ([1,0], p1)`, the format of `ceph osd map`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "osdmap e{} pool '{}' ({}) object '{}' -> pg {} ({}) -> up ({}, p{}) acting ({}, p{})",
            self.epoch,
            self.pool_name,
            self.pool_id,
            self.full_name(),
            self.raw_pgid,
            self.mapping.pgid,
            format_osd_list(&self.mapping.up),
            self.mapping.up_primary,
            format_osd_list(&self.mapping.acting),
            self.mapping.acting_primary,
        )
    }
}

/// What a map compiles once for placement.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// The mapper with the `choose_args` set `-1` (or none).
    default_mapper: Mapper,
    /// Mappers for pools that have their own `choose_args` set.
    pool_mappers: BTreeMap<PoolId, Mapper>,
    /// CRUSH's reweight vector, indexed by device id.
    weights: Vec<u32>,
}

impl Compiled {
    fn build(map: &ClusterMap) -> Compiled {
        let crush = map.crush();
        let default_mapper = Mapper::with_choose_args(crush, crush.choose_args.get(&-1));
        let pool_mappers = crush
            .choose_args
            .iter()
            .filter(|(key, _)| **key >= 0)
            .map(|(key, args)| (*key, Mapper::with_choose_args(crush, Some(args))))
            .collect();
        let len = map.max_osd().max(crush.max_devices()).max(0) as usize;
        let mut weights = vec![0u32; len];
        for osd in map.osds().values() {
            if let Some(slot) = usize::try_from(osd.id)
                .ok()
                .and_then(|i| weights.get_mut(i))
            {
                *slot = osd.effective_weight();
            }
        }
        Compiled {
            default_mapper,
            pool_mappers,
            weights,
        }
    }

    fn mapper_for(&self, pool: PoolId) -> &Mapper {
        self.pool_mappers.get(&pool).unwrap_or(&self.default_mapper)
    }
}

/// The lazily built [`Compiled`] data of one map. Clones share it: a clone is the same
/// epoch, and every way to a different map starts from an empty cache.
#[derive(Clone, Default)]
pub(crate) struct CompiledCache(OnceLock<Arc<Compiled>>);

impl fmt::Debug for CompiledCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.0.get().is_some() {
            "compiled"
        } else {
            "empty"
        };
        f.write_str(state)
    }
}

impl ClusterMap {
    pub(crate) fn compiled(&self) -> Arc<Compiled> {
        self.compiled
            .0
            .get_or_init(|| Arc::new(Compiled::build(self)))
            .clone()
    }

    /// The reweight vector CRUSH gets: an OSD's reweight while it is in, 0 while out or
    /// when it does not exist.
    pub fn crush_weights(&self) -> Vec<u32> {
        self.compiled().weights.clone()
    }

    /// The PG an object falls into (its seed folded below `pg_num`). `namespace` is empty
    /// for the default namespace.
    pub fn object_to_pg(
        &self,
        pool: PoolId,
        name: &str,
        namespace: &str,
    ) -> Result<PgId, MappingError> {
        let pool = self.pool(pool).ok_or(MappingError::PoolNotFound { pool })?;
        Ok(PgId::new(
            pool.id,
            pool.raw_seed_to_ps(pool.hash_key(name, namespace)),
        ))
    }

    /// A mapper with its own CRUSH workspace, for many PG lookups on this map.
    pub fn pg_mapper(&self) -> PgMapper<'_> {
        PgMapper {
            map: self,
            compiled: self.compiled(),
            workspace: Workspace::new(),
            scratch: Vec::new(),
        }
    }

    /// CRUSH's OSDs for a PG, with OSDs that do not exist removed (replicated pools) or
    /// turned into holes (erasure pools). A seed beyond `pg_num` is folded as Ceph does.
    pub fn pg_to_raw(&self, pgid: PgId) -> Result<Vec<OsdId>, MappingError> {
        self.pg_mapper().map(pgid).map(|m| m.raw)
    }

    /// The up set and up primary of a PG.
    pub fn pg_to_up(&self, pgid: PgId) -> Result<(Vec<OsdId>, OsdId), MappingError> {
        self.pg_mapper().map(pgid).map(|m| (m.up, m.up_primary))
    }

    /// The full mapping of a PG: raw, up, acting and both primaries.
    pub fn pg_to_up_acting(&self, pgid: PgId) -> Result<PgMapping, MappingError> {
        self.pg_mapper().map(pgid)
    }

    /// `shoal osd map POOL OBJECT [NAMESPACE]`: every step of an object's placement.
    pub fn osd_map(
        &self,
        pool_name: &str,
        object: &str,
        namespace: &str,
    ) -> Result<ObjectMapping, MappingError> {
        let pool = self
            .pool_by_name(pool_name)
            .ok_or_else(|| MappingError::PoolNameNotFound {
                name: pool_name.to_string(),
            })?;
        let hash = pool.hash_key(object, namespace);
        let raw_pgid = PgId::new(pool.id, hash);
        let mapping = self.pg_mapper().map(raw_pgid)?;
        Ok(ObjectMapping {
            epoch: self.epoch(),
            pool_name: pool.name.clone(),
            pool_id: pool.id,
            object: object.to_string(),
            namespace: namespace.to_string(),
            hash,
            raw_pgid,
            mapping,
        })
    }
}

/// Maps PGs of one map, reusing the compiled CRUSH map and a scratch workspace.
pub struct PgMapper<'a> {
    map: &'a ClusterMap,
    compiled: Arc<Compiled>,
    workspace: Workspace,
    scratch: Vec<OsdId>,
}

impl PgMapper<'_> {
    /// The full mapping of `pgid` (a raw seed is folded below `pg_num` first).
    pub fn map(&mut self, pgid: PgId) -> Result<PgMapping, MappingError> {
        let map = self.map;
        let pool = map
            .pool(pgid.pool)
            .ok_or(MappingError::PoolNotFound { pool: pgid.pool })?;
        let pgid = PgId::new(pool.id, pool.raw_seed_to_ps(pgid.ps));
        let pps = pool.pps(pgid.ps);

        self.compiled.mapper_for(pool.id).do_rule_into(
            pool.crush_rule,
            pps,
            pool.size as usize,
            &self.compiled.weights,
            &mut self.workspace,
            &mut self.scratch,
        );
        let raw = keep_osds(pool, &self.scratch, |osd| map.exists(osd));
        let up = keep_osds(pool, &raw, |osd| map.is_up(osd));
        let up_primary = first_osd(&up);

        let (acting, acting_primary) = match map.pg_temp().get(&pgid) {
            Some(temp) => {
                let acting = keep_osds(pool, temp, |osd| map.is_up(osd));
                let primary = map
                    .primary_temp()
                    .get(&pgid)
                    .copied()
                    .unwrap_or_else(|| first_osd(&acting));
                if acting.is_empty() {
                    // A pg_temp whose OSDs are all down falls back to up, as in Ceph
                    // (an empty temp list means "no override").
                    let primary = map.primary_temp().get(&pgid).copied().unwrap_or(up_primary);
                    (up.clone(), primary)
                } else {
                    (acting, primary)
                }
            }
            None => {
                let primary = map.primary_temp().get(&pgid).copied().unwrap_or(up_primary);
                (up.clone(), primary)
            }
        };
        Ok(PgMapping {
            pgid,
            pps,
            raw,
            up,
            up_primary,
            acting,
            acting_primary,
        })
    }
}

/// Keeps the OSDs that pass `keep`; the others are dropped (replicated pools) or become
/// holes (erasure pools). Holes stay holes.
fn keep_osds(pool: &Pool, osds: &[OsdId], keep: impl Fn(OsdId) -> bool) -> Vec<OsdId> {
    if pool.pool_type.can_shift_osds() {
        osds.iter()
            .copied()
            .filter(|osd| *osd != ITEM_NONE && keep(*osd))
            .collect()
    } else {
        osds.iter()
            .map(|osd| {
                if *osd != ITEM_NONE && keep(*osd) {
                    *osd
                } else {
                    ITEM_NONE
                }
            })
            .collect()
    }
}

/// The first OSD that is not a hole, or -1.
fn first_osd(osds: &[OsdId]) -> OsdId {
    osds.iter()
        .copied()
        .find(|osd| *osd != ITEM_NONE)
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MapChange, MonitorInfo, NewOsd, PoolSpec, Uuid};

    #[test]
    fn the_compiled_crush_map_is_built_once_per_map_and_never_inherited() {
        let monitor = MonitorInfo {
            name: "a".into(),
            address: "127.0.0.1:7100".into(),
        };
        let map = ClusterMap::new(
            Uuid::from_bytes([7; 16]),
            0,
            vec![monitor],
            crush::CrushMap::new_default(),
        )
        .unwrap();
        let uuid = Uuid::from_bytes([9; 16]);
        let map = map
            .apply(
                &[
                    MapChange::NewOsd(NewOsd {
                        uuid,
                        id: None,
                        host: "h".into(),
                        location: Vec::new(),
                        crush_weight: crush::WEIGHT_ONE,
                        device_class: None,
                    }),
                    MapChange::BootOsd {
                        id: 0,
                        uuid,
                        address: "127.0.0.1:7200".into(),
                    },
                    MapChange::MarkIn { id: 0 },
                    MapChange::CreatePool(PoolSpec::replicated("p", 1, 8)),
                ],
                1,
            )
            .unwrap();
        assert_eq!(format!("{:?}", map.compiled), "empty");
        let first = map.compiled();
        assert!(Arc::ptr_eq(&first, &map.compiled()));
        assert!(Arc::ptr_eq(&first, &map.pg_mapper().compiled));
        assert_eq!(map.pg_to_raw(PgId::new(1, 0)).unwrap(), vec![0]);
        assert!(
            Arc::ptr_eq(&first, &map.clone().compiled()),
            "a clone is the same epoch"
        );

        let next = map.apply(&[MapChange::MarkOut { id: 0 }], 2).unwrap();
        assert_eq!(format!("{:?}", next.compiled), "empty");
        assert!(!Arc::ptr_eq(&first, &next.compiled()));
        assert_eq!(
            next.pg_to_raw(PgId::new(1, 0)).unwrap(),
            Vec::<OsdId>::new()
        );
    }
}
