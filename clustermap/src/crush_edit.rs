//! CRUSH edits made through the cluster map: the typed [`CrushEdit`] passthrough to
//! [`crush::builder`] (`shoal osd crush add-bucket|move|reweight|rm|rule ...`), placing a new
//! OSD under its host and taking a removed one out, and the structural checks a
//! replacement CRUSH map must pass.
//!
//! The builder does the work (all-or-nothing, with Ceph's `insert_item` location rules and
//! shadow-tree rebuilds); this module adds what only the cluster map knows: that an OSD
//! must exist before it is placed, and that no pool may lose its rule.

use std::collections::{BTreeMap, BTreeSet};

use crush::{CrushMap, Step};
use serde::{Deserialize, Serialize};

use crate::change::{ChangeError, MAX_OSD_ID};
use crate::map::MapState;
use crate::types::OsdId;

/// A location: `(bucket type, bucket name)` pairs such as `[("host", "node1"), ("root",
/// "default")]`, in any order (the builder sorts them by type).
pub type Location = Vec<(String, String)>;

/// One edit of the CRUSH map, as the admin CLI asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrushEdit {
    /// `osd crush add-bucket NAME TYPE [LOCATION]`.
    AddBucket {
        /// The new bucket's name.
        name: String,
        /// Its type (`host`, `rack`, ...).
        type_name: String,
        /// Where to hang it; empty: a new root.
        location: Location,
    },
    /// `osd crush add osd.N WEIGHT LOCATION`: place an existing OSD that CRUSH lacks.
    AddOsd {
        /// The OSD (must exist in the cluster map).
        id: OsdId,
        /// CRUSH weight, 16.16.
        weight: u32,
        /// Device class.
        class: Option<String>,
        /// Where to place it (at least one pair).
        location: Location,
    },
    /// `osd crush move NAME LOCATION`: move a device or bucket.
    Move {
        /// The device or bucket.
        name: String,
        /// The new location.
        location: Location,
    },
    /// `osd crush reweight NAME WEIGHT`: the weight its parents list for it.
    Reweight {
        /// The device or bucket.
        name: String,
        /// 16.16 weight.
        weight: u32,
    },
    /// `osd crush rm NAME`: remove a device from CRUSH (the OSD stays in the map) or an
    /// empty bucket.
    Remove {
        /// The device or bucket.
        name: String,
    },
    /// `osd crush set-device-class` / `rm-device-class`.
    SetDeviceClass {
        /// The device.
        name: String,
        /// The class, or `None` to clear it.
        class: Option<String>,
    },
    /// `osd crush rule create-replicated NAME ROOT TYPE [CLASS]`.
    CreateReplicatedRule {
        /// The rule's name.
        name: String,
        /// The bucket to take.
        root: String,
        /// The failure-domain type.
        failure_domain: String,
        /// Restrict to a device class.
        class: Option<String>,
    },
    /// An erasure rule as `osd pool create ... erasure` makes one.
    CreateErasureRule {
        /// The rule's name.
        name: String,
        /// The bucket to take.
        root: String,
        /// The failure-domain type.
        failure_domain: String,
        /// Restrict to a device class.
        class: Option<String>,
        /// k + m.
        chunk_count: u32,
    },
    /// `osd crush rule rm NAME` (refused while a pool uses it).
    RemoveRule {
        /// The rule's name.
        name: String,
    },
}

/// Applies a [`CrushEdit`] to the map's CRUSH map.
pub(crate) fn apply_edit(state: &mut MapState, edit: &CrushEdit) -> Result<(), ChangeError> {
    let crush = &mut state.crush;
    match edit {
        CrushEdit::AddBucket {
            name,
            type_name,
            location,
        } => {
            crush.add_bucket(name, type_name, location)?;
        }
        CrushEdit::AddOsd {
            id,
            weight,
            class,
            location,
        } => {
            if !state.osds.contains_key(id) {
                return Err(ChangeError::OsdNotFound { id: *id });
            }
            let name = device_name(crush, *id);
            crush.add_device(*id, &name, class.as_deref(), *weight, location)?;
        }
        CrushEdit::Move { name, location } => crush.move_item(name, location)?,
        CrushEdit::Reweight { name, weight } => crush.reweight_item(name, *weight)?,
        CrushEdit::Remove { name } => {
            if crush.device_by_name(name).is_some() {
                crush.remove_device(name)?;
            } else {
                crush.remove_bucket(name)?;
            }
        }
        CrushEdit::SetDeviceClass { name, class } => {
            crush.set_device_class(name, class.as_deref())?
        }
        CrushEdit::CreateReplicatedRule {
            name,
            root,
            failure_domain,
            class,
        } => {
            crush.add_replicated_rule(name, root, failure_domain, class.as_deref())?;
        }
        CrushEdit::CreateErasureRule {
            name,
            root,
            failure_domain,
            class,
            chunk_count,
        } => {
            crush.add_erasure_rule(name, root, failure_domain, class.as_deref(), *chunk_count)?;
        }
        CrushEdit::RemoveRule { name } => {
            if let Some(rule) = crush.rule_by_name(name) {
                if let Some(pool) = state.pools.values().find(|p| p.crush_rule == rule.id) {
                    return Err(ChangeError::RuleInUse {
                        rule: rule.id,
                        pool: pool.name.clone(),
                    });
                }
            }
            crush.remove_rule(name)?;
        }
    }
    Ok(())
}

/// The CRUSH name of device `id`: the one the map already has, else `osd.N`.
fn device_name(crush: &CrushMap, id: OsdId) -> String {
    crush
        .devices
        .get(&id)
        .map_or_else(|| format!("osd.{id}"), |device| device.name.clone())
}

/// Places a new OSD under `host` and the ancestors `above_host` (default `root=default`).
/// A device CRUSH already holds (an imported map) keeps its place; only its class is set.
pub(crate) fn place_new_osd(
    crush: &mut CrushMap,
    id: OsdId,
    class: Option<&str>,
    weight: u32,
    host: &str,
    above_host: &[(String, String)],
) -> Result<(), ChangeError> {
    let name = device_name(crush, id);
    let placed = crush.parent_of(id).is_some();
    if crush.devices.contains_key(&id) || placed {
        if class.is_some() {
            crush.set_device_class(&name, class)?;
        }
        if !placed {
            // Declared but in no bucket: put it where a new OSD would go.
            crush.move_item(&name, &location(host, above_host))?;
            crush.reweight_item(&name, weight)?;
        }
        return Ok(());
    }
    crush.add_device(id, &name, class, weight, &location(host, above_host))?;
    Ok(())
}

fn location(host: &str, above_host: &[(String, String)]) -> Location {
    let mut location = vec![("host".to_string(), host.to_string())];
    location.extend(above_host.iter().cloned());
    // A location that names no root hangs under the default one, as a lone host does:
    // `rack=r1` alone would otherwise make `r1` a root of its own, which no rule starting
    // at `default` reaches, so the OSD would get no data. Where a named bucket exists
    // already, placement stops there and the root is not looked at.
    if !above_host.iter().any(|(kind, _)| kind == "root") {
        location.push(("root".to_string(), crush::builder::DEFAULT_ROOT.to_string()));
    }
    location
}

/// Takes a removed OSD's device out of CRUSH, if CRUSH has it.
pub(crate) fn remove_osd(crush: &mut CrushMap, id: OsdId) -> Result<(), ChangeError> {
    if crush.devices.contains_key(&id) {
        let name = device_name(crush, id);
        crush.remove_device(&name)?;
    } else if crush.parent_of(id).is_some() {
        // Listed in a bucket without a device entry (a hand-made map): unlinking needs a
        // name, so give it one first.
        return Err(ChangeError::InvalidCrushMap {
            reason: format!("device {id} is in a bucket but not declared"),
        });
    }
    Ok(())
}

/// The highest rule id a CRUSH map may use (the mapper keeps a table indexed by rule id).
pub const MAX_RULE_ID: u32 = 65_535;

/// Structural checks for a CRUSH map that replaces the current one: ids within bounds
/// (devices `0..=MAX_OSD_ID`, buckets `-1..=-(MAX_OSD_ID + 1)`, rules up to
/// [`MAX_RULE_ID`]: the mapper and the weight vector are tables indexed by them), every item
/// a bucket lists exists and appears once, every `take` names an existing item, and the
/// shadow trees can be built (no cycles, no dangling ids).
pub(crate) fn validate(map: &CrushMap) -> Result<(), String> {
    let device_ok = |id: i32| (0..=MAX_OSD_ID).contains(&id);
    if let Some(id) = map.devices.keys().find(|id| !device_ok(**id)) {
        return Err(format!("device id {id} is outside 0..={MAX_OSD_ID}"));
    }
    if let Some(id) = map.rules.keys().find(|id| **id > MAX_RULE_ID) {
        return Err(format!("rule id {id} is above {MAX_RULE_ID}"));
    }
    for bucket in map.buckets.values() {
        if bucket.id >= 0 || bucket.id < -MAX_OSD_ID - 1 {
            return Err(format!(
                "bucket `{}` has id {}, outside -1..={}",
                bucket.name,
                bucket.id,
                -MAX_OSD_ID - 1
            ));
        }
        if let Some(item) = bucket.items.iter().find(|i| i.id >= 0 && !device_ok(i.id)) {
            return Err(format!(
                "bucket `{}` lists device id {}, outside 0..={MAX_OSD_ID}",
                bucket.name, item.id
            ));
        }
        let mut seen = BTreeSet::new();
        for item in &bucket.items {
            if item.id < 0 && !map.buckets.contains_key(&item.id) {
                return Err(format!(
                    "bucket `{}` lists bucket id {}, which does not exist",
                    bucket.name, item.id
                ));
            }
            if !seen.insert(item.id) {
                return Err(format!(
                    "bucket `{}` lists item {} twice",
                    bucket.name, item.id
                ));
            }
        }
    }
    for rule in map.rules.values() {
        for step in &rule.steps {
            if let Step::Take(id) = step {
                let exists = if *id >= 0 {
                    map.devices.contains_key(id)
                } else {
                    map.buckets.contains_key(id)
                };
                if !exists {
                    return Err(format!(
                        "rule `{}` takes item {id}, which does not exist",
                        rule.name
                    ));
                }
            }
        }
    }
    let mut copy = map.clone();
    crush::shadow::rebuild(&mut copy).map_err(|err| err.to_string())
}

/// Hosts and their OSDs as the ordinary hierarchy has them (`host` buckets only), for
/// health's "host down" check.
pub(crate) fn osds_by_host(map: &CrushMap) -> BTreeMap<String, Vec<OsdId>> {
    let Some(host_type) = map.type_id("host") else {
        return BTreeMap::new();
    };
    map.buckets
        .values()
        .filter(|b| b.shadow.is_none() && b.type_id == host_type)
        .map(|b| {
            let osds = b.items.iter().filter(|i| i.id >= 0).map(|i| i.id).collect();
            (b.name.clone(), osds)
        })
        .collect()
}
