//! The CRUSH map as Ceph models it: devices, bucket types, buckets, rules, tunables,
//! device classes (with their shadow trees) and `choose_args` weight sets.
//!
//! Names live here and in the text format; the mapper works on a compiled copy
//! ([`crate::Mapper`]) that holds numbers only.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A slot that CRUSH could not fill in an `indep` result (Ceph's `CRUSH_ITEM_NONE`).
pub const ITEM_NONE: i32 = 0x7fff_ffff;

/// Internal "not chosen yet" marker of the `indep` loop (Ceph's `CRUSH_ITEM_UNDEF`).
pub const ITEM_UNDEF: i32 = 0x7fff_fffe;

/// 1.0 in CRUSH's 16.16 fixed point.
pub const WEIGHT_ONE: u32 = 0x10000;

/// Bucket algorithm, with Ceph's numeric codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BucketAlg {
    /// All items equal; a hashed permutation picks one.
    Uniform = 1,
    /// Items tried from the last one added back to the first.
    List = 2,
    /// A binary tree of weights.
    Tree = 3,
    /// The original straw (straw lengths precomputed from the weights).
    Straw = 4,
    /// straw2: independent draws scaled by weight (what every current cluster uses).
    Straw2 = 5,
}

impl BucketAlg {
    /// The name used in Ceph's text format (`alg straw2`).
    pub fn name(self) -> &'static str {
        match self {
            BucketAlg::Uniform => "uniform",
            BucketAlg::List => "list",
            BucketAlg::Tree => "tree",
            BucketAlg::Straw => "straw",
            BucketAlg::Straw2 => "straw2",
        }
    }

    /// Parses a name of the text format.
    pub fn from_name(name: &str) -> Option<BucketAlg> {
        Some(match name {
            "uniform" => BucketAlg::Uniform,
            "list" => BucketAlg::List,
            "tree" => BucketAlg::Tree,
            "straw" => BucketAlg::Straw,
            "straw2" => BucketAlg::Straw2,
            _ => return None,
        })
    }
}

/// A device (an OSD). Device ids are `>= 0`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// The OSD id.
    pub id: i32,
    /// Its name, `osd.N` by convention.
    pub name: String,
    /// Its device class (`hdd`, `ssd`, ...), if any.
    pub class: Option<String>,
}

/// One entry of a bucket: a device or a child bucket with the weight this bucket gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketItem {
    /// Device id (`>= 0`) or bucket id (`< 0`).
    pub id: i32,
    /// 16.16 fixed-point weight, as listed in this bucket (for a child bucket this is the
    /// number written in the parent, which may differ from the child's own total).
    pub weight: u32,
}

/// Where a shadow bucket comes from: `default~ssd` is the `ssd` copy of `default`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowOf {
    /// The id of the original (non-shadow) bucket.
    pub original: i32,
    /// The device class this copy keeps.
    pub class: String,
}

/// A bucket: an interior node of the hierarchy. Bucket ids are `<= -1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Negative id.
    pub id: i32,
    /// Unique name (`host1`, `default~ssd`).
    pub name: String,
    /// Bucket type id (see [`CrushMap::types`]).
    pub type_id: i32,
    /// Algorithm.
    pub alg: BucketAlg,
    /// Hash function id; only 0 (rjenkins1) exists.
    pub hash: u8,
    /// Items in the order the map lists them (the order matters to every algorithm).
    pub items: Vec<BucketItem>,
    /// `Some` for a device-class shadow copy; such buckets are not printed in the text format.
    pub shadow: Option<ShadowOf>,
}

impl Bucket {
    /// The bucket's own total weight: the sum of its item weights.
    pub fn weight(&self) -> u32 {
        self.items
            .iter()
            .fold(0u32, |acc, item| acc.wrapping_add(item.weight))
    }
}

/// What a rule is for; it does not influence the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuleType {
    /// `type replicated` (1).
    Replicated,
    /// `type erasure` (3).
    Erasure,
    /// Any other numeric type, kept as written.
    Other(u32),
}

impl RuleType {
    /// Ceph's numeric code.
    pub fn code(self) -> u32 {
        match self {
            RuleType::Replicated => 1,
            RuleType::Erasure => 3,
            RuleType::Other(n) => n,
        }
    }
}

/// One step of a rule, with Ceph's semantics (ALGORITHM-NOTES §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Does nothing (opcode 0).
    Noop,
    /// `step take B` (or `take B class C`, already resolved to the shadow bucket's id).
    Take(i32),
    /// `step choose firstn N type T`.
    ChooseFirstN {
        /// Count; `<= 0` means `result_max + n`.
        n: i32,
        /// Bucket type id to choose.
        type_id: i32,
    },
    /// `step choose indep N type T`.
    ChooseIndep {
        /// Count; `<= 0` means `result_max + n`.
        n: i32,
        /// Bucket type id to choose.
        type_id: i32,
    },
    /// `step chooseleaf firstn N type T`.
    ChooseLeafFirstN {
        /// Count; `<= 0` means `result_max + n`.
        n: i32,
        /// Failure-domain type id.
        type_id: i32,
    },
    /// `step chooseleaf indep N type T`.
    ChooseLeafIndep {
        /// Count; `<= 0` means `result_max + n`.
        n: i32,
        /// Failure-domain type id.
        type_id: i32,
    },
    /// `step emit`.
    Emit,
    /// `step set_choose_tries N`.
    SetChooseTries(i32),
    /// `step set_chooseleaf_tries N`.
    SetChooseLeafTries(i32),
    /// `step set_choose_local_tries N`.
    SetChooseLocalTries(i32),
    /// `step set_choose_local_fallback_tries N`.
    SetChooseLocalFallbackTries(i32),
    /// `step set_chooseleaf_vary_r N`.
    SetChooseLeafVaryR(i32),
    /// `step set_chooseleaf_stable N`.
    SetChooseLeafStable(i32),
}

/// A placement rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Rule id (`--rule R`, a pool's `crush_rule`).
    pub id: u32,
    /// Unique name.
    pub name: String,
    /// Replicated or erasure.
    pub rule_type: RuleType,
    /// Smallest pool size the rule is meant for (informational).
    pub min_size: u32,
    /// Largest pool size the rule is meant for (informational).
    pub max_size: u32,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// CRUSH tunables. [`Tunables::default`] gives the legacy (argonaut) values, which is what
/// a text map without `tunable` lines means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunables {
    /// Collision retries inside the same bucket.
    pub choose_local_tries: u32,
    /// Retries through the permutation fallback.
    pub choose_local_fallback_tries: u32,
    /// Retries of a whole descent (the mapper makes this + 1 tries).
    pub choose_total_tries: u32,
    /// Leaf recursion of `chooseleaf firstn` gets one try.
    pub chooseleaf_descend_once: u32,
    /// Leaf recursion's `r` follows the parent's.
    pub chooseleaf_vary_r: u32,
    /// Leaf recursion starts at replica 0 (stable mappings).
    pub chooseleaf_stable: u32,
    /// Which straw (v1) length formula buckets were built with.
    pub straw_calc_version: u32,
    /// Bit mask of the algorithms new buckets may use (no effect on mapping).
    pub allowed_bucket_algs: u32,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables::argonaut()
    }
}

impl Tunables {
    /// The legacy profile (and the text compiler's starting point).
    pub fn argonaut() -> Self {
        Tunables {
            choose_local_tries: 2,
            choose_local_fallback_tries: 5,
            choose_total_tries: 19,
            chooseleaf_descend_once: 0,
            chooseleaf_vary_r: 0,
            chooseleaf_stable: 0,
            straw_calc_version: 0,
            allowed_bucket_algs: 22,
        }
    }

    /// The bobtail profile.
    pub fn bobtail() -> Self {
        Tunables {
            choose_local_tries: 0,
            choose_local_fallback_tries: 0,
            choose_total_tries: 50,
            chooseleaf_descend_once: 1,
            ..Tunables::argonaut()
        }
    }

    /// The firefly profile.
    pub fn firefly() -> Self {
        Tunables {
            chooseleaf_vary_r: 1,
            ..Tunables::bobtail()
        }
    }

    /// The hammer profile (new clusters also set `straw_calc_version 1`).
    pub fn hammer() -> Self {
        Tunables {
            allowed_bucket_algs: 54,
            straw_calc_version: 1,
            ..Tunables::firefly()
        }
    }

    /// The jewel profile: Ceph 16's optimal one, and what `crushtool --build` and a new
    /// cluster use.
    pub fn jewel() -> Self {
        Tunables {
            chooseleaf_stable: 1,
            ..Tunables::hammer()
        }
    }
}

/// Per-bucket override of a `choose_args` set: straw2 weights per position and substitute
/// hash ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChooseArg {
    /// One weight list per position (each as long as the bucket); positions past the last
    /// use the last. Empty means "use the bucket's weights".
    pub weight_set: Vec<Vec<u32>>,
    /// Substitute ids for the straw2 hash, one per item, if given.
    pub ids: Option<Vec<i32>>,
}

/// A `choose_args` set: overrides per bucket id.
pub type ChooseArgs = BTreeMap<i32, ChooseArg>;

/// The whole CRUSH map.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrushMap {
    /// Tunables in effect.
    pub tunables: Tunables,
    /// Devices by id.
    pub devices: BTreeMap<i32, Device>,
    /// Bucket type names by type id (0 is the device type, `osd`).
    pub types: BTreeMap<i32, String>,
    /// Every bucket by id, shadow copies included.
    pub buckets: BTreeMap<i32, Bucket>,
    /// Rules by id.
    pub rules: BTreeMap<u32, Rule>,
    /// Device class names by class id (ids in order of first appearance, as Ceph assigns).
    pub classes: BTreeMap<i32, String>,
    /// Shadow bucket ids: `(original bucket id, class id) -> shadow bucket id`. Includes ids
    /// reserved by `id N class C` lines. Serialized as a list of entries so that formats
    /// with string-only map keys (JSON) can carry it.
    #[serde(with = "class_bucket_entries")]
    pub class_buckets: BTreeMap<(i32, i32), i32>,
    /// `choose_args` sets by key (`choose_args 0` is what crushtool applies).
    pub choose_args: BTreeMap<i64, ChooseArgs>,
}

impl CrushMap {
    /// One more than the highest device id declared or used in a bucket: the length a
    /// reweight vector needs.
    pub fn max_devices(&self) -> i32 {
        let declared = self.devices.keys().next_back().map_or(0, |id| id + 1);
        let used = self
            .buckets
            .values()
            .flat_map(|b| b.items.iter())
            .filter(|i| i.id >= 0)
            .map(|i| i.id + 1)
            .max()
            .unwrap_or(0);
        declared.max(used)
    }

    /// The reweight vector crushtool uses by default: 1.0 for every device that appears in
    /// a bucket (even with crush weight 0), 0 for every other id.
    pub fn default_reweights(&self) -> Vec<u32> {
        let mut weights = vec![0u32; self.max_devices() as usize];
        for item in self.buckets.values().flat_map(|b| b.items.iter()) {
            if item.id >= 0 {
                weights[item.id as usize] = WEIGHT_ONE;
            }
        }
        weights
    }

    /// A bucket by name.
    pub fn bucket_by_name(&self, name: &str) -> Option<&Bucket> {
        self.buckets.values().find(|b| b.name == name)
    }

    /// A device by name.
    pub fn device_by_name(&self, name: &str) -> Option<&Device> {
        self.devices.values().find(|d| d.name == name)
    }

    /// A type id by name.
    pub fn type_id(&self, name: &str) -> Option<i32> {
        self.types
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| *id)
    }

    /// A class id by name.
    pub fn class_id(&self, name: &str) -> Option<i32> {
        self.classes
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| *id)
    }

    /// A rule by name.
    pub fn rule_by_name(&self, name: &str) -> Option<&Rule> {
        self.rules.values().find(|r| r.name == name)
    }

    /// The name of an item (device or bucket), if it exists.
    pub fn item_name(&self, id: i32) -> Option<&str> {
        if id >= 0 {
            self.devices.get(&id).map(|d| d.name.as_str())
        } else {
            self.buckets.get(&id).map(|b| b.name.as_str())
        }
    }

    /// The id of a named item (device or bucket).
    pub fn item_id(&self, name: &str) -> Option<i32> {
        self.device_by_name(name)
            .map(|d| d.id)
            .or_else(|| self.bucket_by_name(name).map(|b| b.id))
    }

    /// The bucket that lists `id` among its items (ignoring shadow buckets), if any.
    pub fn parent_of(&self, id: i32) -> Option<&Bucket> {
        self.buckets
            .values()
            .filter(|b| b.shadow.is_none())
            .find(|b| b.items.iter().any(|i| i.id == id))
    }
}

/// Serde adapter writing `class_buckets` as `[[original, class, shadow], ...]`.
mod class_bucket_entries {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<(i32, i32), i32>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let entries: Vec<[i32; 3]> = map.iter().map(|(&(b, c), &s)| [b, c, s]).collect();
        entries.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<(i32, i32), i32>, D::Error> {
        let entries = Vec::<[i32; 3]>::deserialize(deserializer)?;
        Ok(entries.into_iter().map(|[b, c, s]| ((b, c), s)).collect())
    }
}
