//! Editing a [`CrushMap`] the way Ceph's monitors do (`CrushWrapper` semantics): a fresh
//! cluster map, adding and removing devices and buckets, moving and reweighting items,
//! device classes, and the simple replicated and erasure rules of
//! `ceph osd crush rule create-replicated` / `create-erasure`.
//!
//! Every edit is all-or-nothing: it runs on a copy of the map, rebuilds the device-class
//! shadow trees ([`crate::shadow::rebuild`]) so `take B class C` rules stay valid, and only
//! then replaces the map. On error the map is unchanged and the error names what was wrong.
//!
//! Weights are 16.16 fixed point (`0x10000` = 1.0); [`weight_from_f64`] converts a weight
//! typed by a user exactly as Ceph does. A bucket lists each child with a weight; after an
//! edit below a bucket, every parent's entry for it becomes the bucket's new total, up to
//! the root (Ceph's `adjust_item_weight`). `choose_args` weight sets follow the same edits
//! position by position, as Ceph keeps them.
//!
//! Locations are lists of `(type name, bucket name)` pairs, like `root=default host=node1`.
//! As in `CrushWrapper::insert_item`, the pairs are applied from the lowest type up: a missing
//! bucket is created (straw2) holding the item, and the first bucket that already exists
//! receives it, which ends the walk; pairs above that bucket are checked but not applied.

use std::collections::BTreeSet;

use thiserror::Error;

use crate::model::{
    Bucket, BucketAlg, BucketItem, CrushMap, Device, Rule, RuleType, Step, Tunables, WEIGHT_ONE,
};
use crate::shadow::{self, ShadowError};

/// Ceph's standard bucket types, as a new cluster has them.
pub const STANDARD_TYPES: [(i32, &str); 12] = [
    (0, "osd"),
    (1, "host"),
    (2, "chassis"),
    (3, "rack"),
    (4, "row"),
    (5, "pdu"),
    (6, "pod"),
    (7, "room"),
    (8, "datacenter"),
    (9, "zone"),
    (10, "region"),
    (11, "root"),
];

/// Name of the root bucket of a new cluster.
pub const DEFAULT_ROOT: &str = "default";

/// Name of the rule of a new cluster.
pub const DEFAULT_RULE: &str = "replicated_rule";

/// Ceph's `min_size` / `max_size` for replicated rules it creates.
const REPLICATED_SIZES: (u32, u32) = (1, 10);

/// Ceph's `min_size` for erasure rules it creates (`max_size` is the chunk count).
const ERASURE_MIN_SIZE: u32 = 3;

/// Why an edit of the CRUSH map was refused. The map is unchanged when one is returned.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum BuildError {
    /// No device or bucket has this name.
    #[error("no device or bucket is named `{name}`")]
    UnknownName {
        /// The name asked for.
        name: String,
    },
    /// No bucket type has this name.
    #[error("no bucket type is named `{name}`")]
    UnknownType {
        /// The type name asked for.
        name: String,
    },
    /// No device class has this name.
    #[error("no device class is named `{name}`")]
    UnknownClass {
        /// The class name asked for.
        name: String,
    },
    /// No rule has this name.
    #[error("no rule is named `{name}`")]
    UnknownRule {
        /// The rule name asked for.
        name: String,
    },
    /// A device or bucket with this id already exists.
    #[error("id {id} is already used")]
    DuplicateId {
        /// The id.
        id: i32,
    },
    /// A device or bucket with this name already exists.
    #[error("the name `{name}` is already used by {existing}")]
    DuplicateName {
        /// The name.
        name: String,
        /// What has it (`device 3`, `bucket -2`).
        existing: String,
    },
    /// A rule with this name already exists.
    #[error("a rule named `{name}` already exists (id {id})")]
    DuplicateRule {
        /// The rule name.
        name: String,
        /// The existing rule's id.
        id: u32,
    },
    /// The name is empty or has characters other than letters, digits, `-`, `_` and `.`
    /// (Ceph's `is_valid_crush_name`).
    #[error("`{name}` is not a valid name (use letters, digits, `-`, `_` and `.`)")]
    InvalidName {
        /// The rejected name.
        name: String,
    },
    /// Device ids must be `>= 0`.
    #[error("device id {id} is negative")]
    InvalidDeviceId {
        /// The rejected id.
        id: i32,
    },
    /// Buckets cannot have the device type (type id 0).
    #[error("`{type_name}` is the device type; a bucket needs a bucket type")]
    DeviceTypeForBucket {
        /// The type name given.
        type_name: String,
    },
    /// The location is unusable.
    #[error("invalid location: {reason}")]
    InvalidLocation {
        /// What is wrong with it.
        reason: String,
    },
    /// A location names an existing bucket under a different type.
    #[error("bucket `{bucket}` has type `{actual}`, but the location says `{expected}`")]
    TypeMismatch {
        /// The bucket.
        bucket: String,
        /// The type the location gave.
        expected: String,
        /// The bucket's type.
        actual: String,
    },
    /// The edit would put a bucket inside itself.
    #[error("moving `{item}` under `{target}` would make a cycle: `{target}` is `{item}` or lies beneath it")]
    Cycle {
        /// The bucket being moved.
        item: String,
        /// The bucket it would be put under.
        target: String,
    },
    /// Only empty buckets can be removed.
    #[error("bucket `{name}` is not empty ({items} items)")]
    BucketNotEmpty {
        /// The bucket.
        name: String,
        /// How many items it still has.
        items: usize,
    },
    /// A rule's `take` step refers to the item (or one of its device-class copies).
    #[error("`{name}` is used by rule `{rule}`")]
    InUseByRule {
        /// The item.
        name: String,
        /// The rule that takes it.
        rule: String,
    },
    /// A weight typed by a user is negative, not a number or too large.
    #[error("invalid weight {weight}: {reason}")]
    InvalidWeight {
        /// The weight as given.
        weight: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A bucket's weights would add up to more than 16.16 fixed point can hold.
    #[error("the weights in bucket `{bucket}` would add up to more than 65535.99998")]
    WeightOverflow {
        /// The bucket.
        bucket: String,
    },
    /// The name belongs to a device-class shadow bucket, which only the map maintains.
    #[error("`{name}` is a device-class shadow bucket and cannot be edited")]
    ShadowBucket {
        /// The name.
        name: String,
    },
    /// The operation needs a device, and the name is a bucket's.
    #[error("`{name}` is a bucket, not a device")]
    NotADevice {
        /// The name.
        name: String,
    },
    /// The operation needs a bucket, and the name is a device's.
    #[error("`{name}` is a device, not a bucket")]
    NotABucket {
        /// The name.
        name: String,
    },
    /// The item is in no bucket, so it has no weight to change.
    #[error("`{name}` is not in any bucket")]
    NotPlaced {
        /// The item.
        name: String,
    },
    /// The root has no device-class copy for this class (its subtree holds a uniform bucket).
    #[error("bucket `{root}` has no shadow tree for class `{class}`")]
    ClassNotInRoot {
        /// The root.
        root: String,
        /// The class.
        class: String,
    },
    /// An erasure rule needs at least one chunk.
    #[error("an erasure rule needs a chunk count (k+m) of at least 1")]
    ZeroChunkCount,
    /// Every bucket id (or rule id) is taken.
    #[error("no free {what} id is left")]
    NoFreeId {
        /// `bucket` or `rule`.
        what: &'static str,
    },
    /// The device-class shadow trees could not be rebuilt after the edit.
    #[error("cannot rebuild the device-class shadow trees: {0}")]
    Shadow(#[from] ShadowError),
}

/// Converts a weight as a user types it (`1.5`) to 16.16 fixed point exactly as Ceph's
/// `insert_item` does: `(int)(weight * (float)0x10000)`, in `f32`.
pub fn weight_from_f64(weight: f64) -> Result<u32, BuildError> {
    let invalid = |reason| BuildError::InvalidWeight {
        weight: weight.to_string(),
        reason,
    };
    if !weight.is_finite() {
        return Err(invalid("not a finite number"));
    }
    if weight < 0.0 {
        return Err(invalid("negative"));
    }
    let scaled = weight as f32 * WEIGHT_ONE as f32;
    if scaled >= 4_294_967_296.0 {
        return Err(invalid("larger than 65535.99998"));
    }
    Ok(scaled as u32)
}

/// Whether `name` is acceptable as a device, bucket, class or rule name
/// (Ceph's `is_valid_crush_name`: letters, digits, `-`, `_`, `.`; not empty).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn check_name(name: &str) -> Result<(), BuildError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(BuildError::InvalidName {
            name: name.to_string(),
        })
    }
}

/// Keeps the entries of `values` whose flag in `keep` is true (same positions).
fn retain_flagged<T>(values: &mut Vec<T>, keep: &[bool]) {
    let mut flags = keep.iter();
    values.retain(|_| flags.next().copied().unwrap_or(true));
}

/// One location pair resolved against the map's types.
struct LocationStep {
    type_id: i32,
    bucket_name: String,
}

impl CrushMap {
    /// A map like a new Ceph cluster's: jewel tunables, Ceph's standard types
    /// ([`STANDARD_TYPES`]), an empty straw2 root `default` (id -1) and rule 0
    /// `replicated_rule` (take default, chooseleaf firstn 0 type host, emit).
    pub fn new_default() -> CrushMap {
        let mut map = CrushMap {
            tunables: Tunables::jewel(),
            types: STANDARD_TYPES
                .iter()
                .map(|(id, name)| (*id, (*name).to_string()))
                .collect(),
            ..CrushMap::default()
        };
        let root_type = 11;
        map.buckets.insert(
            -1,
            Bucket {
                id: -1,
                name: DEFAULT_ROOT.to_string(),
                type_id: root_type,
                alg: BucketAlg::Straw2,
                hash: 0,
                items: Vec::new(),
                shadow: None,
            },
        );
        map.rules.insert(
            0,
            Rule {
                id: 0,
                name: DEFAULT_RULE.to_string(),
                rule_type: RuleType::Replicated,
                min_size: REPLICATED_SIZES.0,
                max_size: REPLICATED_SIZES.1,
                steps: vec![
                    Step::Take(-1),
                    Step::ChooseLeafFirstN { n: 0, type_id: 1 },
                    Step::Emit,
                ],
            },
        );
        map
    }

    /// Adds device `id` named `name` (conventionally `osd.<id>`) with an optional class,
    /// placed with `weight` at `location` (like `ceph osd crush add`): buckets of the
    /// location that do not exist yet are created. The location must not be empty.
    pub fn add_device<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        id: i32,
        name: &str,
        class: Option<&str>,
        weight: u32,
        location: &[(K, V)],
    ) -> Result<(), BuildError> {
        if id < 0 {
            return Err(BuildError::InvalidDeviceId { id });
        }
        let used_in_bucket = self
            .buckets
            .values()
            .any(|b| b.items.iter().any(|i| i.id == id));
        if self.devices.contains_key(&id) || used_in_bucket {
            return Err(BuildError::DuplicateId { id });
        }
        check_name(name)?;
        self.check_name_free(name)?;
        if let Some(class) = class {
            check_name(class)?;
        }
        let location = self.resolve_location(name, location)?;
        if location.is_empty() {
            return Err(BuildError::InvalidLocation {
                reason: "a device needs at least one `type=bucket` pair".to_string(),
            });
        }
        self.edit(|map| {
            map.devices.insert(
                id,
                Device {
                    id,
                    name: name.to_string(),
                    class: class.map(str::to_string),
                },
            );
            map.insert_item(id, weight, &location)
        })
    }

    /// Removes a device from every bucket that lists it and from the device list (like
    /// `ceph osd crush remove osd.N`). Ancestors' weights drop accordingly.
    pub fn remove_device(&mut self, name: &str) -> Result<(), BuildError> {
        let id = self.device_id(name)?;
        self.check_not_taken_by_rule(id, name)?;
        self.edit(|map| {
            for parent in map.ordinary_parents(id) {
                map.unlink(parent, id)?;
            }
            map.devices.remove(&id);
            Ok(())
        })
    }

    /// Adds an empty straw2 bucket of type `type_name` with the first free id from -1
    /// down, placed at `location`, or left as a new root when `location` is empty (like
    /// `ceph osd crush add-bucket`). Returns its id.
    pub fn add_bucket<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        name: &str,
        type_name: &str,
        location: &[(K, V)],
    ) -> Result<i32, BuildError> {
        check_name(name)?;
        self.check_name_free(name)?;
        let type_id = self.bucket_type_id(type_name)?;
        let location = self.resolve_location(name, location)?;
        self.edit(|map| {
            let id = map.free_bucket_id()?;
            map.buckets.insert(
                id,
                Bucket {
                    id,
                    name: name.to_string(),
                    type_id,
                    alg: BucketAlg::Straw2,
                    hash: 0,
                    items: Vec::new(),
                    shadow: None,
                },
            );
            if !location.is_empty() {
                map.insert_item(id, 0, &location)?;
            }
            Ok(id)
        })
    }

    /// Moves a device or bucket to `location` (like `ceph osd crush move` / `set`): it is
    /// unlinked from every bucket that lists it and placed at the location, keeping its
    /// weight (a device's weight in its first parent, 0 if it had none; a bucket's own
    /// total). Nothing changes when the location's lowest bucket already lists the item.
    pub fn move_item<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        name: &str,
        location: &[(K, V)],
    ) -> Result<(), BuildError> {
        let id = self.ordinary_item_id(name)?;
        let location = self.resolve_location(name, location)?;
        let Some(lowest) = location.first() else {
            return Err(BuildError::InvalidLocation {
                reason: "moving needs at least one `type=bucket` pair".to_string(),
            });
        };
        let already_there = self
            .bucket_by_name(&lowest.bucket_name)
            .is_some_and(|b| b.shadow.is_none() && b.items.iter().any(|i| i.id == id));
        if already_there {
            return Ok(());
        }
        let weight = if id >= 0 {
            self.ordinary_parents(id)
                .first()
                .and_then(|parent| self.buckets.get(parent))
                .and_then(|b| b.items.iter().find(|i| i.id == id))
                .map_or(0, |i| i.weight)
        } else {
            self.bucket_total(id)?
        };
        self.edit(|map| {
            for parent in map.ordinary_parents(id) {
                map.unlink(parent, id)?;
            }
            map.insert_item(id, weight, &location)
        })
    }

    /// Moves a device or bucket directly under the bucket `parent` (a one-pair
    /// [`CrushMap::move_item`]).
    pub fn move_item_under(&mut self, name: &str, parent: &str) -> Result<(), BuildError> {
        let parent_id = self.ordinary_bucket_id(parent)?;
        let type_id = self.buckets.get(&parent_id).map_or(0, |b| b.type_id);
        // A parsed map could use a type id it never named; say which number is unknown.
        let type_name =
            self.types
                .get(&type_id)
                .cloned()
                .ok_or_else(|| BuildError::UnknownType {
                    name: type_id.to_string(),
                })?;
        self.move_item(name, &[(type_name.as_str(), parent)])
    }

    /// Removes an empty bucket (like `ceph osd crush rm`): refused while it has items or
    /// a rule takes it or one of its device-class copies.
    pub fn remove_bucket(&mut self, name: &str) -> Result<(), BuildError> {
        let id = self.ordinary_bucket_id(name)?;
        let items = self.buckets.get(&id).map_or(0, |b| b.items.len());
        if items > 0 {
            return Err(BuildError::BucketNotEmpty {
                name: name.to_string(),
                items,
            });
        }
        self.check_not_taken_by_rule(id, name)?;
        self.edit(|map| {
            for parent in map.ordinary_parents(id) {
                map.unlink(parent, id)?;
            }
            map.buckets.remove(&id);
            for set in map.choose_args.values_mut() {
                set.remove(&id);
            }
            map.class_buckets.retain(|(original, _), _| *original != id);
            Ok(())
        })
    }

    /// Sets the weight every parent lists for a device or bucket (like
    /// `ceph osd crush reweight`); each ancestor's entry then becomes its child's new
    /// total, up to the root. A bucket's listed weight may so differ from its own total
    /// until an edit beneath it recomputes it.
    pub fn reweight_item(&mut self, name: &str, weight: u32) -> Result<(), BuildError> {
        let id = self.ordinary_item_id(name)?;
        let parents = self.ordinary_parents(id);
        if parents.is_empty() {
            return Err(BuildError::NotPlaced {
                name: name.to_string(),
            });
        }
        self.edit(|map| {
            for parent in parents {
                map.set_listed_weight(parent, id, weight)?;
            }
            Ok(())
        })
    }

    /// Sets (or with `None` clears) a device's class (like `ceph osd crush
    /// set-device-class` / `rm-device-class`). A class no device has any more is forgotten
    /// unless a rule takes it.
    pub fn set_device_class(&mut self, name: &str, class: Option<&str>) -> Result<(), BuildError> {
        let id = self.device_id(name)?;
        if let Some(class) = class {
            check_name(class)?;
        }
        self.edit(|map| {
            if let Some(device) = map.devices.get_mut(&id) {
                device.class = class.map(str::to_string);
            }
            Ok(())
        })
    }

    /// Adds a replicated rule like `ceph osd crush rule create-replicated NAME ROOT TYPE
    /// [CLASS]`: take `root` (or its `class` copy), `chooseleaf firstn 0 type T` (or
    /// `choose firstn 0 type osd` when T is the device type), emit. Returns the rule id:
    /// the lowest free one.
    pub fn add_replicated_rule(
        &mut self,
        name: &str,
        root: &str,
        failure_domain: &str,
        class: Option<&str>,
    ) -> Result<u32, BuildError> {
        let (take, type_id) = self.resolve_rule_args(name, root, failure_domain, class)?;
        let choose = if type_id == 0 {
            Step::ChooseFirstN { n: 0, type_id: 0 }
        } else {
            Step::ChooseLeafFirstN { n: 0, type_id }
        };
        let steps = vec![Step::Take(take), choose, Step::Emit];
        self.add_rule(name, RuleType::Replicated, REPLICATED_SIZES, steps)
    }

    /// Adds an erasure-code rule as Ceph writes them for `ceph osd pool create ... erasure`:
    /// `set_chooseleaf_tries 5`, `set_choose_tries 100`, take `root` (or its `class` copy),
    /// `chooseleaf indep 0 type T` (or `choose indep 0 type osd`), emit; `max_size` is the
    /// chunk count k+m. Returns the rule id: the lowest free one.
    pub fn add_erasure_rule(
        &mut self,
        name: &str,
        root: &str,
        failure_domain: &str,
        class: Option<&str>,
        chunk_count: u32,
    ) -> Result<u32, BuildError> {
        if chunk_count == 0 {
            return Err(BuildError::ZeroChunkCount);
        }
        let (take, type_id) = self.resolve_rule_args(name, root, failure_domain, class)?;
        let choose = if type_id == 0 {
            Step::ChooseIndep { n: 0, type_id: 0 }
        } else {
            Step::ChooseLeafIndep { n: 0, type_id }
        };
        let steps = vec![
            Step::SetChooseLeafTries(5),
            Step::SetChooseTries(100),
            Step::Take(take),
            choose,
            Step::Emit,
        ];
        self.add_rule(
            name,
            RuleType::Erasure,
            (ERASURE_MIN_SIZE, chunk_count),
            steps,
        )
    }

    /// Removes a rule by name. (Whether a pool still uses it is the cluster map's concern.)
    pub fn remove_rule(&mut self, name: &str) -> Result<(), BuildError> {
        let id = self
            .rule_by_name(name)
            .map(|r| r.id)
            .ok_or_else(|| BuildError::UnknownRule {
                name: name.to_string(),
            })?;
        self.edit(|map| {
            map.rules.remove(&id);
            Ok(())
        })
    }

    // ---- helpers -------------------------------------------------------------------------

    /// Runs `change` on a copy, rebuilds the shadow trees, and keeps the copy only if both
    /// succeed: every public edit is all-or-nothing.
    fn edit<T>(
        &mut self,
        change: impl FnOnce(&mut CrushMap) -> Result<T, BuildError>,
    ) -> Result<T, BuildError> {
        let mut draft = self.clone();
        let out = change(&mut draft)?;
        shadow::rebuild(&mut draft)?;
        *self = draft;
        Ok(out)
    }

    /// Refuses a name any device or bucket (shadow copies included) already has.
    fn check_name_free(&self, name: &str) -> Result<(), BuildError> {
        let existing = if let Some(device) = self.device_by_name(name) {
            format!("device {}", device.id)
        } else if let Some(bucket) = self.bucket_by_name(name) {
            format!("bucket {}", bucket.id)
        } else {
            return Ok(());
        };
        Err(BuildError::DuplicateName {
            name: name.to_string(),
            existing,
        })
    }

    /// The id of a device or non-shadow bucket.
    fn ordinary_item_id(&self, name: &str) -> Result<i32, BuildError> {
        if let Some(device) = self.device_by_name(name) {
            return Ok(device.id);
        }
        match self.bucket_by_name(name) {
            Some(bucket) if bucket.shadow.is_some() => Err(BuildError::ShadowBucket {
                name: name.to_string(),
            }),
            Some(bucket) => Ok(bucket.id),
            None => Err(BuildError::UnknownName {
                name: name.to_string(),
            }),
        }
    }

    /// The id of a device.
    fn device_id(&self, name: &str) -> Result<i32, BuildError> {
        let id = self.ordinary_item_id(name)?;
        if id < 0 {
            return Err(BuildError::NotADevice {
                name: name.to_string(),
            });
        }
        Ok(id)
    }

    /// The id of a non-shadow bucket.
    fn ordinary_bucket_id(&self, name: &str) -> Result<i32, BuildError> {
        let id = self.ordinary_item_id(name)?;
        if id >= 0 {
            return Err(BuildError::NotABucket {
                name: name.to_string(),
            });
        }
        Ok(id)
    }

    /// A bucket type id (not the device type) by name.
    fn bucket_type_id(&self, type_name: &str) -> Result<i32, BuildError> {
        let type_id = self
            .type_id(type_name)
            .ok_or_else(|| BuildError::UnknownType {
                name: type_name.to_string(),
            })?;
        if type_id == 0 {
            return Err(BuildError::DeviceTypeForBucket {
                type_name: type_name.to_string(),
            });
        }
        Ok(type_id)
    }

    /// Checks every pair of a location and orders them by type id, lowest first.
    /// `item_name` is the name of what is being placed, which the location must not name.
    fn resolve_location<K: AsRef<str>, V: AsRef<str>>(
        &self,
        item_name: &str,
        location: &[(K, V)],
    ) -> Result<Vec<LocationStep>, BuildError> {
        let mut steps: Vec<LocationStep> = Vec::with_capacity(location.len());
        for (type_name, bucket_name) in location {
            let (type_name, bucket_name) = (type_name.as_ref(), bucket_name.as_ref());
            let type_id = self.bucket_type_id(type_name)?;
            // An existing (shadow) bucket's name is judged below; only new names need checking.
            if self.bucket_by_name(bucket_name).is_none() {
                check_name(bucket_name)?;
            }
            if steps.iter().any(|s| s.type_id == type_id) {
                return Err(BuildError::InvalidLocation {
                    reason: format!("type `{type_name}` is given twice"),
                });
            }
            if steps.iter().any(|s| s.bucket_name == bucket_name) {
                return Err(BuildError::InvalidLocation {
                    reason: format!("bucket `{bucket_name}` is given twice"),
                });
            }
            if bucket_name == item_name && self.bucket_by_name(bucket_name).is_none() {
                // An existing bucket naming itself is caught as a cycle when it is placed.
                return Err(BuildError::InvalidLocation {
                    reason: format!("`{item_name}` cannot be placed inside itself"),
                });
            }
            if self.device_by_name(bucket_name).is_some() {
                return Err(BuildError::InvalidLocation {
                    reason: format!("`{bucket_name}` is a device, not a bucket"),
                });
            }
            if let Some(bucket) = self.bucket_by_name(bucket_name) {
                if bucket.shadow.is_some() {
                    return Err(BuildError::ShadowBucket {
                        name: bucket_name.to_string(),
                    });
                }
                if bucket.type_id != type_id {
                    return Err(BuildError::TypeMismatch {
                        bucket: bucket_name.to_string(),
                        expected: type_name.to_string(),
                        actual: self
                            .types
                            .get(&bucket.type_id)
                            .cloned()
                            .unwrap_or_else(|| bucket.type_id.to_string()),
                    });
                }
            }
            steps.push(LocationStep {
                type_id,
                bucket_name: bucket_name.to_string(),
            });
        }
        steps.sort_by_key(|s| s.type_id);
        Ok(steps)
    }

    /// Places `item` with `weight` at an already resolved location (Ceph's `insert_item`):
    /// from the lowest type up, missing buckets are created around the item; the first
    /// existing bucket receives it and ends the walk.
    fn insert_item(
        &mut self,
        item: i32,
        weight: u32,
        location: &[LocationStep],
    ) -> Result<(), BuildError> {
        // A new bucket holds only `current`, so its total stays `weight` all the way up.
        let mut current = item;
        for step in location {
            let Some(existing) = self.bucket_by_name(&step.bucket_name).map(|b| b.id) else {
                let id = self.free_bucket_id()?;
                self.buckets.insert(
                    id,
                    Bucket {
                        id,
                        name: step.bucket_name.clone(),
                        type_id: step.type_id,
                        alg: BucketAlg::Straw2,
                        hash: 0,
                        items: vec![BucketItem {
                            id: current,
                            weight,
                        }],
                        shadow: None,
                    },
                );
                current = id;
                continue;
            };
            if existing == current || (current < 0 && self.subtree_contains(current, existing)) {
                return Err(BuildError::Cycle {
                    item: self.item_name(item).unwrap_or("?").to_string(),
                    target: step.bucket_name.clone(),
                });
            }
            return self.add_to_bucket(existing, current, weight);
        }
        // Every bucket of the location was new: the top one is a new root.
        Ok(())
    }

    /// Whether `item` lies anywhere beneath bucket `root` (ordinary hierarchy).
    fn subtree_contains(&self, root: i32, item: i32) -> bool {
        let mut seen: BTreeSet<i32> = BTreeSet::new();
        let mut stack = vec![root];
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(bucket) = self.buckets.get(&id) else {
                continue;
            };
            for child in &bucket.items {
                if child.id == item {
                    return true;
                }
                if child.id < 0 {
                    stack.push(child.id);
                }
            }
        }
        false
    }

    /// Every non-shadow bucket that lists `id`, in id order (-1 first, as Ceph scans).
    fn ordinary_parents(&self, id: i32) -> Vec<i32> {
        self.buckets
            .values()
            .rev()
            .filter(|b| b.shadow.is_none() && b.items.iter().any(|i| i.id == id))
            .map(|b| b.id)
            .collect()
    }

    /// The first id from -1 down that no bucket has and no shadow record reserves.
    fn free_bucket_id(&self) -> Result<i32, BuildError> {
        let reserved: BTreeSet<i32> = self.class_buckets.values().copied().collect();
        let mut id: i32 = -1;
        while self.buckets.contains_key(&id) || reserved.contains(&id) {
            id = id
                .checked_sub(1)
                .ok_or(BuildError::NoFreeId { what: "bucket" })?;
        }
        Ok(id)
    }

    /// A bucket's total, refusing overflow.
    fn bucket_total(&self, id: i32) -> Result<u32, BuildError> {
        let Some(bucket) = self.buckets.get(&id) else {
            return Ok(0);
        };
        bucket
            .items
            .iter()
            .try_fold(0u32, |sum, item| sum.checked_add(item.weight))
            .ok_or_else(|| BuildError::WeightOverflow {
                bucket: bucket.name.clone(),
            })
    }

    /// Appends `item` to `bucket` (and to its `choose_args` rows), then updates ancestors.
    fn add_to_bucket(&mut self, bucket: i32, item: i32, weight: u32) -> Result<(), BuildError> {
        let Some(target) = self.buckets.get_mut(&bucket) else {
            return Ok(());
        };
        let old_len = target.items.len();
        target.items.push(BucketItem { id: item, weight });
        for set in self.choose_args.values_mut() {
            if let Some(arg) = set.get_mut(&bucket) {
                for row in arg.weight_set.iter_mut().filter(|r| r.len() == old_len) {
                    row.push(weight);
                }
                if let Some(ids) = arg.ids.as_mut().filter(|ids| ids.len() == old_len) {
                    ids.push(item);
                }
            }
        }
        self.propagate_total(bucket, &mut Vec::new())
    }

    /// Removes every entry of `item` from `parent` (and its `choose_args` positions), then
    /// updates ancestors.
    fn unlink(&mut self, parent: i32, item: i32) -> Result<(), BuildError> {
        let Some(bucket) = self.buckets.get_mut(&parent) else {
            return Ok(());
        };
        let old_len = bucket.items.len();
        let keep: Vec<bool> = bucket.items.iter().map(|i| i.id != item).collect();
        bucket.items.retain(|i| i.id != item);
        for set in self.choose_args.values_mut() {
            if let Some(arg) = set.get_mut(&parent) {
                for row in arg.weight_set.iter_mut().filter(|r| r.len() == old_len) {
                    retain_flagged(row, &keep);
                }
                if let Some(ids) = arg.ids.as_mut().filter(|ids| ids.len() == old_len) {
                    retain_flagged(ids, &keep);
                }
            }
        }
        self.propagate_total(parent, &mut Vec::new())
    }

    /// Sets the weight `parent` lists for `child` (every entry, every `choose_args`
    /// position), then updates ancestors.
    fn set_listed_weight(
        &mut self,
        parent: i32,
        child: i32,
        weight: u32,
    ) -> Result<(), BuildError> {
        self.set_listed_weight_on_path(parent, child, weight, &mut Vec::new())
    }

    fn set_listed_weight_on_path(
        &mut self,
        parent: i32,
        child: i32,
        weight: u32,
        path: &mut Vec<i32>,
    ) -> Result<(), BuildError> {
        let Some(bucket) = self.buckets.get_mut(&parent) else {
            return Ok(());
        };
        let positions: Vec<usize> = bucket
            .items
            .iter()
            .enumerate()
            .filter(|(_, i)| i.id == child)
            .map(|(p, _)| p)
            .collect();
        for p in &positions {
            bucket.items[*p].weight = weight;
        }
        for set in self.choose_args.values_mut() {
            if let Some(arg) = set.get_mut(&parent) {
                for row in &mut arg.weight_set {
                    for p in &positions {
                        if let Some(w) = row.get_mut(*p) {
                            *w = weight;
                        }
                    }
                }
            }
        }
        self.propagate_total(parent, path)
    }

    /// Makes every parent of `bucket` list it with its current total, recursively up to
    /// the roots. `path` holds the buckets being updated below, to stop on a cycle.
    fn propagate_total(&mut self, bucket: i32, path: &mut Vec<i32>) -> Result<(), BuildError> {
        if path.contains(&bucket) {
            let name = self.item_name(bucket).unwrap_or("?").to_string();
            return Err(BuildError::Cycle {
                item: name.clone(),
                target: name,
            });
        }
        let total = self.bucket_total(bucket)?;
        path.push(bucket);
        for parent in self.ordinary_parents(bucket) {
            self.set_listed_weight_on_path(parent, bucket, total, path)?;
        }
        path.pop();
        Ok(())
    }

    /// Refuses to remove an item that a rule takes, directly or through a class copy.
    fn check_not_taken_by_rule(&self, id: i32, name: &str) -> Result<(), BuildError> {
        let copies: BTreeSet<i32> = self
            .class_buckets
            .iter()
            .filter(|((original, _), _)| *original == id)
            .map(|(_, copy)| *copy)
            .collect();
        for rule in self.rules.values() {
            let takes_it = rule.steps.iter().any(
                |step| matches!(step, Step::Take(taken) if *taken == id || copies.contains(taken)),
            );
            if takes_it {
                return Err(BuildError::InUseByRule {
                    name: name.to_string(),
                    rule: rule.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// Validates a new rule's name, root, failure domain and class; returns the bucket id
    /// to take and the failure-domain type id.
    fn resolve_rule_args(
        &self,
        name: &str,
        root: &str,
        failure_domain: &str,
        class: Option<&str>,
    ) -> Result<(i32, i32), BuildError> {
        check_name(name)?;
        if let Some(existing) = self.rule_by_name(name) {
            return Err(BuildError::DuplicateRule {
                name: name.to_string(),
                id: existing.id,
            });
        }
        let root_id = self.ordinary_bucket_id(root)?;
        let type_id = self
            .type_id(failure_domain)
            .ok_or_else(|| BuildError::UnknownType {
                name: failure_domain.to_string(),
            })?;
        let take = match class {
            None => root_id,
            Some(class) => {
                let class_id = self
                    .class_id(class)
                    .ok_or_else(|| BuildError::UnknownClass {
                        name: class.to_string(),
                    })?;
                *self
                    .class_buckets
                    .get(&(root_id, class_id))
                    .filter(|copy| self.buckets.contains_key(copy))
                    .ok_or_else(|| BuildError::ClassNotInRoot {
                        root: root.to_string(),
                        class: class.to_string(),
                    })?
            }
        };
        Ok((take, type_id))
    }

    /// Inserts a rule under the lowest free id.
    fn add_rule(
        &mut self,
        name: &str,
        rule_type: RuleType,
        (min_size, max_size): (u32, u32),
        steps: Vec<Step>,
    ) -> Result<u32, BuildError> {
        let id = (0..=u32::MAX)
            .find(|id| !self.rules.contains_key(id))
            .ok_or(BuildError::NoFreeId { what: "rule" })?;
        self.edit(|map| {
            map.rules.insert(
                id,
                Rule {
                    id,
                    name: name.to_string(),
                    rule_type,
                    min_size,
                    max_size,
                    steps,
                },
            );
            Ok(id)
        })
    }
}
