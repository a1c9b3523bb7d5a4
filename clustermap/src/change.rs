//! The typed changes the monitors apply to the map ([`MapChange`]), their validation and the
//! errors that name the bad argument ([`ChangeError`]).
//!
//! [`ClusterMap::apply`] takes a batch of changes and the time of the proposal, applies them
//! in order to a copy of the map, and returns the next epoch. Each change is checked against
//! the map as the previous changes of the batch left it; the first invalid one aborts the
//! batch with its error and the original map is untouched (it is borrowed immutably). A
//! change that asks for what is already true (marking a down OSD down) is accepted and
//! changes nothing; callers that want to skip empty epochs compare with
//! [`crate::Incremental::is_empty`].
//!
//! The map records state; it does not apply policy. Cluster flags such as `noout` or `noup`
//! are honoured by the monitors' failure policy before they propose a change, and a new OSD
//! is created out and down: the monitor proposes `MarkIn` when its policy says so (Ceph's
//! `mon_osd_auto_mark_new_in`).

use std::collections::BTreeSet;

use crush::{CrushMap, RuleType, ITEM_NONE, WEIGHT_ONE};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::crush_edit::{self, CrushEdit};
use crate::map::{
    ClusterMap, MapState, MonitorInfo, OsdInfo, Pool, PoolFlags, FIRST_EPOCH, FORMAT_VERSION,
};
use crate::types::{
    ClusterFlag, Epoch, Fullness, ObjectHash, OsdId, PgId, PoolType, UnixMillis, Uuid,
};

/// The largest pool size (copies or shards) accepted, as in Ceph.
pub const MAX_POOL_SIZE: u32 = 10;

/// The largest `pg_num` accepted for one pool (Ceph's `mon_max_pool_pg_num`).
pub const MAX_PG_NUM: u32 = 65_536;

/// The longest pool or monitor name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// The highest OSD id accepted. Placement keeps a weight per possible id, so ids stay
/// small (Ceph's `mon_max_osd` is 10000 by default).
pub const MAX_OSD_ID: OsdId = 1 << 20;

/// What a new pool should look like. Unset fields get Ceph's defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Unique name.
    pub name: String,
    /// Replicated or erasure.
    pub pool_type: PoolType,
    /// Copies (or shards), `1..=10`.
    pub size: u32,
    /// Default: a majority of `size` (`size - size/2`).
    pub min_size: Option<u32>,
    /// Placement groups, `1..=65536`.
    pub pg_num: u32,
    /// Default: `pg_num`.
    pub pgp_num: Option<u32>,
    /// Default: the lowest-numbered rule of the pool's type.
    pub crush_rule: Option<u32>,
    /// Object name hash; default rjenkins.
    pub object_hash: ObjectHash,
    /// Default: hashpspool on, everything else off.
    pub flags: PoolFlags,
}

impl PoolSpec {
    /// A replicated pool with defaults for everything but name, size and `pg_num`.
    pub fn replicated(name: &str, size: u32, pg_num: u32) -> Self {
        PoolSpec {
            name: name.to_string(),
            pool_type: PoolType::Replicated,
            size,
            min_size: None,
            pg_num,
            pgp_num: None,
            crush_rule: None,
            object_hash: ObjectHash::Rjenkins,
            flags: PoolFlags::default(),
        }
    }
}

/// One pool setting (`shoal osd pool set POOL KEY VALUE`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PoolSetting {
    /// `size`: copies; `min_size` is lowered to it if larger. Replicated pools only.
    Size(u32),
    /// `min_size`: `1..=size`.
    MinSize(u32),
    /// `pg_num` (and `pgp_num` follows it, as current Ceph does).
    PgNum(u32),
    /// `pgp_num`: `1..=pg_num`.
    PgpNum(u32),
    /// `crush_rule`: an existing rule of the pool's type.
    CrushRule(u32),
    /// `hashpspool` flag.
    HashPsPool(bool),
    /// `nodelete` flag.
    NoDelete(bool),
    /// `nopgchange` flag.
    NoPgChange(bool),
    /// `nosizechange` flag.
    NoSizeChange(bool),
}

impl PoolSetting {
    /// The setting's key as the CLI names it.
    pub fn key(&self) -> &'static str {
        match self {
            PoolSetting::Size(_) => "size",
            PoolSetting::MinSize(_) => "min_size",
            PoolSetting::PgNum(_) => "pg_num",
            PoolSetting::PgpNum(_) => "pgp_num",
            PoolSetting::CrushRule(_) => "crush_rule",
            PoolSetting::HashPsPool(_) => "hashpspool",
            PoolSetting::NoDelete(_) => "nodelete",
            PoolSetting::NoPgChange(_) => "nopgchange",
            PoolSetting::NoSizeChange(_) => "nosizechange",
        }
    }

    /// Parses `KEY VALUE` as the CLI gives them. `crush_rule` takes a rule name or id
    /// (resolved in `crush`); flags take `true`/`false`/`1`/`0`.
    pub fn parse(key: &str, value: &str, crush: &CrushMap) -> Result<PoolSetting, ChangeError> {
        let number = |argument: &'static str| {
            value
                .parse::<u32>()
                .map_err(|_| ChangeError::InvalidArgument {
                    argument,
                    value: value.to_string(),
                    reason: "expected a non-negative integer".to_string(),
                })
        };
        let boolean = |argument: &'static str| match value {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(ChangeError::InvalidArgument {
                argument,
                value: value.to_string(),
                reason: "expected true or false".to_string(),
            }),
        };
        Ok(match key {
            "size" => PoolSetting::Size(number("size")?),
            "min_size" => PoolSetting::MinSize(number("min_size")?),
            "pg_num" => PoolSetting::PgNum(number("pg_num")?),
            "pgp_num" => PoolSetting::PgpNum(number("pgp_num")?),
            "crush_rule" => match crush.rule_by_name(value) {
                Some(rule) => PoolSetting::CrushRule(rule.id),
                None => PoolSetting::CrushRule(value.parse::<u32>().map_err(|_| {
                    ChangeError::InvalidArgument {
                        argument: "crush_rule",
                        value: value.to_string(),
                        reason: "no rule has this name or id".to_string(),
                    }
                })?),
            },
            "hashpspool" => PoolSetting::HashPsPool(boolean("hashpspool")?),
            "nodelete" => PoolSetting::NoDelete(boolean("nodelete")?),
            "nopgchange" => PoolSetting::NoPgChange(boolean("nopgchange")?),
            "nosizechange" => PoolSetting::NoSizeChange(boolean("nosizechange")?),
            _ => {
                return Err(ChangeError::InvalidArgument {
                    argument: "key",
                    value: key.to_string(),
                    reason: "expected size, min_size, pg_num, pgp_num, crush_rule, hashpspool, \
                             nodelete, nopgchange or nosizechange"
                        .to_string(),
                })
            }
        })
    }
}

impl Pool {
    /// A setting's current value as text (`shoal osd pool get POOL KEY`); `None` for an
    /// unknown key.
    pub fn get(&self, key: &str) -> Option<String> {
        Some(match key {
            "size" => self.size.to_string(),
            "min_size" => self.min_size.to_string(),
            "pg_num" => self.pg_num.to_string(),
            "pgp_num" => self.pgp_num.to_string(),
            "crush_rule" => self.crush_rule.to_string(),
            "hashpspool" => self.flags.hashpspool.to_string(),
            "nodelete" => self.flags.nodelete.to_string(),
            "nopgchange" => self.flags.nopgchange.to_string(),
            "nosizechange" => self.flags.nosizechange.to_string(),
            "object_hash" => self.object_hash.to_string(),
            "type" => self.pool_type.to_string(),
            _ => return None,
        })
    }
}

/// A new OSD: its identity and where CRUSH should place it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOsd {
    /// The uuid from its data directory (must not be nil, must be new).
    pub uuid: Uuid,
    /// Ask for this id (re-creating a known OSD); default: the lowest free id.
    pub id: Option<OsdId>,
    /// The CRUSH host bucket (created if missing).
    pub host: String,
    /// Ancestors above the host, nearest first (`[("rack","r1"), ("root","default")]`);
    /// empty means `root=default`. Missing buckets are created; a host that already hangs
    /// somewhere keeps its place.
    pub location: Vec<(String, String)>,
    /// CRUSH weight, 16.16 (by convention its capacity in TiB).
    pub crush_weight: u32,
    /// Device class (`hdd`, `ssd`, ...).
    pub device_class: Option<String>,
}

/// One validated edit of the map. A batch of them makes one epoch ([`ClusterMap::apply`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MapChange {
    /// Create a pool; it gets [`ClusterMap::next_pool_id`].
    CreatePool(PoolSpec),
    /// Remove a pool (and its temporary mappings and `choose_args`).
    RemovePool {
        /// The pool's name.
        name: String,
    },
    /// Change one setting of a pool.
    SetPool {
        /// The pool's name.
        name: String,
        /// The setting and its new value.
        setting: PoolSetting,
    },
    /// Register a new OSD (down and out) and place it in CRUSH.
    NewOsd(NewOsd),
    /// An OSD booted: mark it up at `address`. An OSD that was still up restarted: it is
    /// marked down and up again in this epoch (a new `up_from`).
    BootOsd {
        /// The OSD.
        id: OsdId,
        /// Must match the registered uuid.
        uuid: Uuid,
        /// The address it serves on.
        address: String,
    },
    /// Mark an OSD down.
    MarkDown {
        /// The OSD.
        id: OsdId,
    },
    /// Mark an OSD out (CRUSH gives it no data).
    MarkOut {
        /// The OSD.
        id: OsdId,
    },
    /// Mark an OSD in.
    MarkIn {
        /// The OSD.
        id: OsdId,
    },
    /// Set an OSD's override weight, 16.16 in `1..=0x10000` (`shoal osd reweight`).
    Reweight {
        /// The OSD.
        id: OsdId,
        /// The new reweight.
        weight: u32,
    },
    /// Record how full an OSD's storage is, as the monitors judged it from its beacons
    /// (up or down: a down OSD keeps its last judgement).
    SetOsdFullness {
        /// The OSD.
        id: OsdId,
        /// Its new state.
        fullness: Fullness,
    },
    /// Record that an up OSD has seen the map up to `up_thru` (peering).
    SetUpThru {
        /// The OSD.
        id: OsdId,
        /// An epoch no later than the new one; lower than the recorded value is a no-op.
        up_thru: Epoch,
    },
    /// Remove a down OSD from the map and from CRUSH.
    RemoveOsd {
        /// The OSD.
        id: OsdId,
    },
    /// Set a cluster flag.
    SetFlag(ClusterFlag),
    /// Clear a cluster flag.
    UnsetFlag(ClusterFlag),
    /// Set a PG's acting set explicitly; an empty list removes the override.
    SetPgTemp {
        /// The PG (seed below `pg_num`).
        pgid: PgId,
        /// Existing OSDs, no repeats, at most the pool size (erasure pools may use
        /// [`crush::ITEM_NONE`] for holes).
        osds: Vec<OsdId>,
    },
    /// Set (or with `None` remove) a PG's primary override.
    SetPrimaryTemp {
        /// The PG.
        pgid: PgId,
        /// An existing OSD.
        osd: Option<OsdId>,
    },
    /// Replace the CRUSH map (after structural checks; every pool's rule must survive).
    SetCrushMap(#[serde(with = "crate::crush_wire::boxed")] Box<CrushMap>),
    /// Edit the CRUSH map through [`crush::builder`].
    Crush(CrushEdit),
    /// Add a monitor at the end of the rank order.
    AddMonitor(MonitorInfo),
    /// Remove a monitor (not the last one).
    RemoveMonitor {
        /// The monitor's name.
        name: String,
    },
}

/// Why a change was refused. Each variant names the argument at fault; the map is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChangeError {
    /// An argument is out of range or malformed.
    #[error("invalid {argument} `{value}`: {reason}")]
    InvalidArgument {
        /// The argument's name (`size`, `pg_num`, `name`, `weight`, `location`, ...).
        argument: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pool with this name exists.
    #[error("pool `{name}` already exists")]
    PoolExists {
        /// The name.
        name: String,
    },
    /// No pool has this name.
    #[error("pool `{name}` does not exist")]
    PoolNotFound {
        /// The name.
        name: String,
    },
    /// The pool's flag forbids the change.
    #[error("pool `{name}` has the {flag} flag set")]
    PoolFlagForbids {
        /// The pool.
        name: String,
        /// The flag (`nodelete`, `nopgchange`, `nosizechange`).
        flag: &'static str,
    },
    /// The setting cannot change for this type of pool.
    #[error("pool `{name}` is {pool_type}: its {setting} cannot change")]
    NotForPoolType {
        /// The pool.
        name: String,
        /// Its type.
        pool_type: PoolType,
        /// The setting's key.
        setting: &'static str,
    },
    /// No CRUSH rule has this id.
    #[error("crush rule {rule} does not exist")]
    RuleNotFound {
        /// The rule id.
        rule: u32,
    },
    /// The rule's type does not fit the pool's.
    #[error("crush rule {rule} is not a {pool_type} rule")]
    RuleTypeMismatch {
        /// The rule id.
        rule: u32,
        /// The pool's type.
        pool_type: PoolType,
    },
    /// No rule of the pool's type exists to default to.
    #[error("the crush map has no {pool_type} rule for pool `{name}`")]
    NoRuleForPoolType {
        /// The pool.
        name: String,
        /// Its type.
        pool_type: PoolType,
    },
    /// A replacement CRUSH map lacks a rule a pool uses (or changed its type).
    #[error("crush rule {rule} is used by pool `{pool}`")]
    RuleInUse {
        /// The rule id.
        rule: u32,
        /// A pool that uses it.
        pool: String,
    },
    /// A replacement CRUSH map (or an edit) is structurally wrong.
    #[error("invalid crush map: {reason}")]
    InvalidCrushMap {
        /// What is wrong.
        reason: String,
    },
    /// No OSD has this id.
    #[error("osd.{id} does not exist")]
    OsdNotFound {
        /// The id.
        id: OsdId,
    },
    /// The requested OSD id is taken.
    #[error("osd.{id} already exists")]
    OsdExists {
        /// The id.
        id: OsdId,
    },
    /// The uuid is registered already.
    #[error("uuid {uuid} already belongs to osd.{id}")]
    OsdUuidExists {
        /// The uuid.
        uuid: Uuid,
        /// The OSD that has it.
        id: OsdId,
    },
    /// A booting OSD's uuid differs from the registered one.
    #[error("osd.{id} is registered with uuid {expected}, not {given}")]
    OsdUuidMismatch {
        /// The OSD.
        id: OsdId,
        /// The registered uuid.
        expected: Uuid,
        /// The uuid given.
        given: Uuid,
    },
    /// The OSD must be down for this change.
    #[error("osd.{id} is up; mark it down first")]
    OsdIsUp {
        /// The OSD.
        id: OsdId,
    },
    /// The OSD must be up for this change.
    #[error("osd.{id} is not up")]
    OsdNotUp {
        /// The OSD.
        id: OsdId,
    },
    /// Every OSD id is in use.
    #[error("no free OSD id is left")]
    OsdIdsExhausted,
    /// The PG's pool does not exist or the seed is beyond `pg_num`.
    #[error("pg {pgid} does not exist")]
    PgNotFound {
        /// The PG.
        pgid: PgId,
    },
    /// A `pg_temp` list is not acceptable.
    #[error("invalid pg_temp for pg {pgid}: {reason}")]
    InvalidPgTemp {
        /// The PG.
        pgid: PgId,
        /// What is wrong.
        reason: String,
    },
    /// A monitor with this name or address exists.
    #[error("monitor `{name}` already exists")]
    MonitorExists {
        /// The name.
        name: String,
    },
    /// No monitor has this name.
    #[error("monitor `{name}` does not exist")]
    MonitorNotFound {
        /// The name.
        name: String,
    },
    /// The last monitor cannot be removed.
    #[error("monitor `{name}` is the last one and cannot be removed")]
    LastMonitor {
        /// The name.
        name: String,
    },
    /// The CRUSH builder refused an edit (its error names the item, type or rule).
    #[error("crush edit refused: {0}")]
    Crush(#[from] crush::builder::BuildError),
    /// The epoch counter would overflow.
    #[error("the epoch counter is exhausted")]
    EpochExhausted,
}

impl ClusterMap {
    /// The first map of a new cluster (epoch [`FIRST_EPOCH`]): no OSDs, no pools.
    /// `crush` is usually [`CrushMap::new_default`]; it must pass the same checks as
    /// [`MapChange::SetCrushMap`], and `monitors` must be at least one, with unique names
    /// and addresses.
    pub fn new(
        fsid: Uuid,
        created_ms: UnixMillis,
        monitors: Vec<MonitorInfo>,
        crush: CrushMap,
    ) -> Result<ClusterMap, ChangeError> {
        if fsid.is_nil() {
            return Err(ChangeError::InvalidArgument {
                argument: "fsid",
                value: fsid.to_string(),
                reason: "the nil uuid is not an identity".to_string(),
            });
        }
        if monitors.is_empty() {
            return Err(ChangeError::InvalidArgument {
                argument: "monitors",
                value: "[]".to_string(),
                reason: "a cluster needs at least one monitor".to_string(),
            });
        }
        crush_edit::validate(&crush).map_err(|reason| ChangeError::InvalidCrushMap { reason })?;
        let mut state = MapState {
            format_version: FORMAT_VERSION,
            fsid,
            epoch: FIRST_EPOCH,
            created_ms,
            modified_ms: created_ms,
            monitors: Vec::new(),
            osds: Default::default(),
            pools: Default::default(),
            crush,
            pg_temp: Default::default(),
            primary_temp: Default::default(),
            flags: BTreeSet::new(),
            next_pool_id: 1,
        };
        for monitor in monitors {
            add_monitor(&mut state, monitor)?;
        }
        Ok(ClusterMap::from_state(state))
    }

    /// Applies `changes` in order and returns the next epoch, stamped `modified_ms` (the
    /// proposal's time, so every replica computes the same map). On error nothing changes.
    pub fn apply(
        &self,
        changes: &[MapChange],
        modified_ms: UnixMillis,
    ) -> Result<ClusterMap, ChangeError> {
        let mut next = self.state.clone();
        next.epoch = next
            .epoch
            .checked_add(1)
            .ok_or(ChangeError::EpochExhausted)?;
        next.modified_ms = modified_ms;
        for change in changes {
            apply_change(&mut next, change)?;
        }
        Ok(ClusterMap::from_state(next))
    }

    /// Checks `changes` against this map without keeping the result.
    pub fn validate(&self, changes: &[MapChange]) -> Result<(), ChangeError> {
        self.apply(changes, self.state.modified_ms).map(|_| ())
    }
}

fn apply_change(state: &mut MapState, change: &MapChange) -> Result<(), ChangeError> {
    let epoch = state.epoch;
    match change {
        MapChange::CreatePool(spec) => create_pool(state, spec),
        MapChange::RemovePool { name } => {
            let pool = pool_by_name(state, name)?;
            if pool.flags.nodelete {
                return Err(ChangeError::PoolFlagForbids {
                    name: name.clone(),
                    flag: "nodelete",
                });
            }
            let id = pool.id;
            state.pools.remove(&id);
            state.pg_temp.retain(|pg, _| pg.pool != id);
            state.primary_temp.retain(|pg, _| pg.pool != id);
            state.crush.choose_args.remove(&id);
            Ok(())
        }
        MapChange::SetPool { name, setting } => set_pool(state, name, setting),
        MapChange::NewOsd(spec) => new_osd(state, spec),
        MapChange::BootOsd { id, uuid, address } => {
            let osd = osd_mut(state, *id)?;
            if osd.uuid != *uuid {
                return Err(ChangeError::OsdUuidMismatch {
                    id: *id,
                    expected: osd.uuid,
                    given: *uuid,
                });
            }
            if address.trim().is_empty() {
                return Err(ChangeError::InvalidArgument {
                    argument: "address",
                    value: address.clone(),
                    reason: "an OSD must boot with an address".to_string(),
                });
            }
            if osd.up {
                osd.down_at = epoch;
            }
            osd.up = true;
            osd.up_from = epoch;
            osd.down_since_ms = None;
            osd.address = Some(address.clone());
            osd.last_change = epoch;
            Ok(())
        }
        MapChange::MarkDown { id } => {
            let modified = state.modified_ms;
            let osd = osd_mut(state, *id)?;
            if osd.up {
                osd.up = false;
                osd.down_at = epoch;
                osd.down_since_ms = Some(modified);
                osd.last_change = epoch;
            }
            Ok(())
        }
        MapChange::MarkOut { id } => set_in(state, *id, false),
        MapChange::MarkIn { id } => set_in(state, *id, true),
        MapChange::Reweight { id, weight } => {
            let osd = osd_mut(state, *id)?;
            if *weight == 0 || *weight > WEIGHT_ONE {
                return Err(ChangeError::InvalidArgument {
                    argument: "weight",
                    value: format!("{:.5}", *weight as f64 / WEIGHT_ONE as f64),
                    reason: "a reweight lies in (0, 1]; mark the OSD out to give it no data"
                        .to_string(),
                });
            }
            if osd.reweight != *weight {
                osd.reweight = *weight;
                osd.last_change = epoch;
            }
            Ok(())
        }
        MapChange::SetOsdFullness { id, fullness } => {
            let osd = osd_mut(state, *id)?;
            if osd.fullness != *fullness {
                osd.fullness = *fullness;
                osd.last_change = epoch;
            }
            Ok(())
        }
        MapChange::SetUpThru { id, up_thru } => {
            let osd = osd_mut(state, *id)?;
            if !osd.up {
                return Err(ChangeError::OsdNotUp { id: *id });
            }
            if *up_thru > epoch {
                return Err(ChangeError::InvalidArgument {
                    argument: "up_thru",
                    value: up_thru.to_string(),
                    reason: format!("later than the new epoch {epoch}"),
                });
            }
            if *up_thru > osd.up_thru {
                osd.up_thru = *up_thru;
                osd.last_change = epoch;
            }
            Ok(())
        }
        MapChange::RemoveOsd { id } => {
            let osd = state
                .osds
                .get(id)
                .ok_or(ChangeError::OsdNotFound { id: *id })?;
            if osd.up {
                return Err(ChangeError::OsdIsUp { id: *id });
            }
            state.osds.remove(id);
            state.pg_temp.retain(|_, osds| !osds.contains(id));
            state.primary_temp.retain(|_, osd| osd != id);
            crush_edit::remove_osd(&mut state.crush, *id)
        }
        MapChange::SetFlag(flag) => {
            state.flags.insert(*flag);
            Ok(())
        }
        MapChange::UnsetFlag(flag) => {
            state.flags.remove(flag);
            Ok(())
        }
        MapChange::SetPgTemp { pgid, osds } => set_pg_temp(state, *pgid, osds),
        MapChange::SetPrimaryTemp { pgid, osd } => {
            existing_pg(state, *pgid)?;
            match osd {
                None => {
                    state.primary_temp.remove(pgid);
                }
                Some(osd) => {
                    if !state.osds.contains_key(osd) {
                        return Err(ChangeError::OsdNotFound { id: *osd });
                    }
                    state.primary_temp.insert(*pgid, *osd);
                }
            }
            Ok(())
        }
        MapChange::SetCrushMap(crush) => {
            crush_edit::validate(crush)
                .map_err(|reason| ChangeError::InvalidCrushMap { reason })?;
            for pool in state.pools.values() {
                let fits = crush
                    .rules
                    .get(&pool.crush_rule)
                    .is_some_and(|rule| rule_fits(rule.rule_type, pool.pool_type));
                if !fits {
                    return Err(ChangeError::RuleInUse {
                        rule: pool.crush_rule,
                        pool: pool.name.clone(),
                    });
                }
            }
            state.crush = (**crush).clone();
            Ok(())
        }
        MapChange::Crush(edit) => crush_edit::apply_edit(state, edit),
        MapChange::AddMonitor(monitor) => add_monitor(state, monitor.clone()),
        MapChange::RemoveMonitor { name } => {
            let index = state
                .monitors
                .iter()
                .position(|mon| mon.name == *name)
                .ok_or_else(|| ChangeError::MonitorNotFound { name: name.clone() })?;
            if state.monitors.len() == 1 {
                return Err(ChangeError::LastMonitor { name: name.clone() });
            }
            state.monitors.remove(index);
            Ok(())
        }
    }
}

fn check_name(argument: &'static str, name: &str) -> Result<(), ChangeError> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_NAME_LEN {
        "is longer than 128 bytes"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else if name.trim() != name {
        "must not start or end with white space"
    } else {
        return Ok(());
    };
    Err(ChangeError::InvalidArgument {
        argument,
        value: name.to_string(),
        reason: reason.to_string(),
    })
}

fn out_of_range(argument: &'static str, value: u32, low: u32, high: u32) -> ChangeError {
    ChangeError::InvalidArgument {
        argument,
        value: value.to_string(),
        reason: format!("must be between {low} and {high}"),
    }
}

fn check_range(argument: &'static str, value: u32, low: u32, high: u32) -> Result<(), ChangeError> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(out_of_range(argument, value, low, high))
    }
}

/// Whether a rule of `rule_type` may serve a pool of `pool_type`. Rules with a numeric type
/// Shoal does not know are accepted for either (their type does not affect the mapping).
fn rule_fits(rule_type: RuleType, pool_type: PoolType) -> bool {
    match rule_type {
        RuleType::Replicated => pool_type == PoolType::Replicated,
        RuleType::Erasure => pool_type == PoolType::Erasure,
        RuleType::Other(_) => true,
    }
}

fn check_rule(state: &MapState, rule: u32, pool_type: PoolType) -> Result<(), ChangeError> {
    let found = state
        .crush
        .rules
        .get(&rule)
        .ok_or(ChangeError::RuleNotFound { rule })?;
    if rule_fits(found.rule_type, pool_type) {
        Ok(())
    } else {
        Err(ChangeError::RuleTypeMismatch { rule, pool_type })
    }
}

fn pool_by_name<'a>(state: &'a MapState, name: &str) -> Result<&'a Pool, ChangeError> {
    state
        .pools
        .values()
        .find(|pool| pool.name == name)
        .ok_or_else(|| ChangeError::PoolNotFound {
            name: name.to_string(),
        })
}

fn create_pool(state: &mut MapState, spec: &PoolSpec) -> Result<(), ChangeError> {
    check_name("name", &spec.name)?;
    if state.pools.values().any(|pool| pool.name == spec.name) {
        return Err(ChangeError::PoolExists {
            name: spec.name.clone(),
        });
    }
    check_range("size", spec.size, 1, MAX_POOL_SIZE)?;
    let min_size = spec.min_size.unwrap_or(Pool::default_min_size(spec.size));
    check_range("min_size", min_size, 1, spec.size)?;
    check_range("pg_num", spec.pg_num, 1, MAX_PG_NUM)?;
    let pgp_num = spec.pgp_num.unwrap_or(spec.pg_num);
    check_range("pgp_num", pgp_num, 1, spec.pg_num)?;
    let crush_rule = match spec.crush_rule {
        Some(rule) => {
            check_rule(state, rule, spec.pool_type)?;
            rule
        }
        None => state
            .crush
            .rules
            .values()
            .find(|rule| match rule.rule_type {
                RuleType::Replicated => spec.pool_type == PoolType::Replicated,
                RuleType::Erasure => spec.pool_type == PoolType::Erasure,
                RuleType::Other(_) => false,
            })
            .map(|rule| rule.id)
            .ok_or_else(|| ChangeError::NoRuleForPoolType {
                name: spec.name.clone(),
                pool_type: spec.pool_type,
            })?,
    };
    let id = state.next_pool_id;
    state.next_pool_id = id.checked_add(1).ok_or(ChangeError::InvalidArgument {
        argument: "name",
        value: spec.name.clone(),
        reason: "no pool id is left".to_string(),
    })?;
    state.pools.insert(
        id,
        Pool {
            id,
            name: spec.name.clone(),
            pool_type: spec.pool_type,
            size: spec.size,
            min_size,
            pg_num: spec.pg_num,
            pgp_num,
            crush_rule,
            object_hash: spec.object_hash,
            flags: spec.flags,
            created_at: state.epoch,
            last_change: state.epoch,
        },
    );
    Ok(())
}

fn set_pool(state: &mut MapState, name: &str, setting: &PoolSetting) -> Result<(), ChangeError> {
    let pool = pool_by_name(state, name)?.clone();
    let mut updated = pool.clone();
    let forbid = |flag: &'static str| ChangeError::PoolFlagForbids {
        name: name.to_string(),
        flag,
    };
    match *setting {
        PoolSetting::Size(size) => {
            if pool.flags.nosizechange {
                return Err(forbid("nosizechange"));
            }
            if pool.pool_type == PoolType::Erasure {
                return Err(ChangeError::NotForPoolType {
                    name: name.to_string(),
                    pool_type: pool.pool_type,
                    setting: "size",
                });
            }
            check_range("size", size, 1, MAX_POOL_SIZE)?;
            updated.size = size;
            updated.min_size = pool.min_size.min(size);
        }
        PoolSetting::MinSize(min_size) => {
            if pool.flags.nosizechange {
                return Err(forbid("nosizechange"));
            }
            check_range("min_size", min_size, 1, pool.size)?;
            updated.min_size = min_size;
        }
        PoolSetting::PgNum(pg_num) => {
            if pool.flags.nopgchange {
                return Err(forbid("nopgchange"));
            }
            check_range("pg_num", pg_num, 1, MAX_PG_NUM)?;
            updated.pg_num = pg_num;
            updated.pgp_num = pg_num;
        }
        PoolSetting::PgpNum(pgp_num) => {
            if pool.flags.nopgchange {
                return Err(forbid("nopgchange"));
            }
            check_range("pgp_num", pgp_num, 1, pool.pg_num)?;
            updated.pgp_num = pgp_num;
        }
        PoolSetting::CrushRule(rule) => {
            check_rule(state, rule, pool.pool_type)?;
            updated.crush_rule = rule;
        }
        PoolSetting::HashPsPool(on) => updated.flags.hashpspool = on,
        PoolSetting::NoDelete(on) => updated.flags.nodelete = on,
        PoolSetting::NoPgChange(on) => updated.flags.nopgchange = on,
        PoolSetting::NoSizeChange(on) => updated.flags.nosizechange = on,
    }
    if updated != pool {
        updated.last_change = state.epoch;
        let (id, pg_num) = (updated.id, updated.pg_num);
        // PGs merged away by a smaller pg_num take their overrides with them.
        state
            .pg_temp
            .retain(|pg, _| pg.pool != id || pg.ps < pg_num);
        state
            .primary_temp
            .retain(|pg, _| pg.pool != id || pg.ps < pg_num);
        state.pools.insert(id, updated);
    }
    Ok(())
}

fn osd_mut(state: &mut MapState, id: OsdId) -> Result<&mut OsdInfo, ChangeError> {
    state
        .osds
        .get_mut(&id)
        .ok_or(ChangeError::OsdNotFound { id })
}

fn set_in(state: &mut MapState, id: OsdId, is_in: bool) -> Result<(), ChangeError> {
    let epoch = state.epoch;
    let osd = osd_mut(state, id)?;
    if osd.is_in != is_in {
        osd.is_in = is_in;
        osd.in_changed_at = epoch;
        osd.last_change = epoch;
    }
    Ok(())
}

fn new_osd(state: &mut MapState, spec: &NewOsd) -> Result<(), ChangeError> {
    if spec.uuid.is_nil() {
        return Err(ChangeError::InvalidArgument {
            argument: "uuid",
            value: spec.uuid.to_string(),
            reason: "the nil uuid is not an identity".to_string(),
        });
    }
    if let Some(existing) = state.osds.values().find(|osd| osd.uuid == spec.uuid) {
        return Err(ChangeError::OsdUuidExists {
            uuid: spec.uuid,
            id: existing.id,
        });
    }
    check_name("host", &spec.host)?;
    if let Some(class) = &spec.device_class {
        check_name("device_class", class)?;
    }
    let id = match spec.id {
        Some(id) if id < 0 => {
            return Err(ChangeError::InvalidArgument {
                argument: "id",
                value: id.to_string(),
                reason: "OSD ids are non-negative".to_string(),
            })
        }
        Some(id) if id > MAX_OSD_ID => {
            return Err(ChangeError::InvalidArgument {
                argument: "id",
                value: id.to_string(),
                reason: format!("OSD ids go up to {MAX_OSD_ID}"),
            })
        }
        Some(id) if state.osds.contains_key(&id) => return Err(ChangeError::OsdExists { id }),
        Some(id) => id,
        None => (0..=MAX_OSD_ID)
            .find(|id| !state.osds.contains_key(id))
            .ok_or(ChangeError::OsdIdsExhausted)?,
    };
    crush_edit::place_new_osd(
        &mut state.crush,
        id,
        spec.device_class.as_deref(),
        spec.crush_weight,
        &spec.host,
        &spec.location,
    )?;
    state.osds.insert(
        id,
        OsdInfo {
            id,
            uuid: spec.uuid,
            address: None,
            host: spec.host.clone(),
            up: false,
            is_in: false,
            reweight: WEIGHT_ONE,
            up_from: 0,
            up_thru: 0,
            down_at: 0,
            down_since_ms: None,
            in_changed_at: state.epoch,
            last_change: state.epoch,
            fullness: Fullness::Ok,
        },
    );
    Ok(())
}

fn existing_pg(state: &MapState, pgid: PgId) -> Result<&Pool, ChangeError> {
    state
        .pools
        .get(&pgid.pool)
        .filter(|pool| pgid.ps < pool.pg_num)
        .ok_or(ChangeError::PgNotFound { pgid })
}

fn set_pg_temp(state: &mut MapState, pgid: PgId, osds: &[OsdId]) -> Result<(), ChangeError> {
    let pool = existing_pg(state, pgid)?;
    if osds.is_empty() {
        state.pg_temp.remove(&pgid);
        return Ok(());
    }
    let invalid = |reason: String| ChangeError::InvalidPgTemp { pgid, reason };
    if osds.len() > pool.size as usize {
        return Err(invalid(format!(
            "{} OSDs for a pool of size {}",
            osds.len(),
            pool.size
        )));
    }
    let mut seen = BTreeSet::new();
    for &osd in osds {
        if osd == ITEM_NONE {
            if pool.pool_type.can_shift_osds() {
                return Err(invalid(
                    "holes (NONE) are only allowed in erasure pools".to_string(),
                ));
            }
            continue;
        }
        if !state.osds.contains_key(&osd) {
            return Err(ChangeError::OsdNotFound { id: osd });
        }
        if !seen.insert(osd) {
            return Err(invalid(format!("osd.{osd} appears twice")));
        }
    }
    if seen.is_empty() {
        return Err(invalid("no OSD, only holes".to_string()));
    }
    state.pg_temp.insert(pgid, osds.to_vec());
    Ok(())
}

fn add_monitor(state: &mut MapState, monitor: MonitorInfo) -> Result<(), ChangeError> {
    check_name("monitor name", &monitor.name)?;
    if monitor.address.trim().is_empty() {
        return Err(ChangeError::InvalidArgument {
            argument: "monitor address",
            value: monitor.address,
            reason: "must not be empty".to_string(),
        });
    }
    if let Some(existing) = state
        .monitors
        .iter()
        .find(|mon| mon.name == monitor.name || mon.address == monitor.address)
    {
        return Err(ChangeError::MonitorExists {
            name: existing.name.clone(),
        });
    }
    state.monitors.push(monitor);
    Ok(())
}
