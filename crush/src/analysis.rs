//! Previews of what a CRUSH change does, computed by running a rule over a range of inputs:
//! [`movement`] compares two maps (or two reweight vectors) input by input, [`utilization`]
//! compares how often each device is chosen with its share of the CRUSH weight.
//!
//! The results are plain data for the CLI to print. Inputs are the `x` values given to
//! `do_rule` (for pools, `crush_hash32_2(ps, pool)`; for `crushtool --test`, `0..N`). Maps are
//! compiled as `crushtool --test` does, with `choose_args 0` when the map has it, unless a
//! [`Placement`] says otherwise. Slots an `indep` rule leaves empty ([`ITEM_NONE`]) are not
//! counted as placements.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use thiserror::Error;

use crate::mapper::{Mapper, Workspace};
use crate::model::{ChooseArgs, CrushMap, Step, ITEM_NONE, WEIGHT_ONE};

/// Why an analysis could not run.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AnalysisError {
    /// The map has no rule with this id.
    #[error("the {which} map has no rule {rule}")]
    UnknownRule {
        /// The rule id asked for.
        rule: u32,
        /// Which map lacks it (`old`, `new` or `the`).
        which: &'static str,
    },
}

/// A map with the per-device reweights (16.16; index = device id; missing ids are out) and
/// the `choose_args` set to map with.
#[derive(Clone, Debug)]
pub struct Placement<'a> {
    /// The CRUSH map.
    pub map: &'a CrushMap,
    /// OSD reweights (`0x10000` = in, 0 = out).
    pub reweights: Cow<'a, [u32]>,
    /// The `choose_args` set applied, if any.
    pub choose_args: Option<&'a ChooseArgs>,
}

impl<'a> Placement<'a> {
    /// The map as `crushtool --test` runs it: every device in a bucket at 1.0, `choose_args
    /// 0` if present.
    pub fn new(map: &'a CrushMap) -> Placement<'a> {
        Placement {
            map,
            reweights: Cow::Owned(map.default_reweights()),
            choose_args: map.choose_args.get(&0),
        }
    }

    /// The map with given reweights (and `choose_args 0` if present).
    pub fn with_reweights(map: &'a CrushMap, reweights: &'a [u32]) -> Placement<'a> {
        Placement {
            map,
            reweights: Cow::Borrowed(reweights),
            choose_args: map.choose_args.get(&0),
        }
    }

    fn mapper(&self, rule: u32, which: &'static str) -> Result<Mapper, AnalysisError> {
        let mapper = Mapper::with_choose_args(self.map, self.choose_args);
        if mapper.has_rule(rule) {
            Ok(mapper)
        } else {
            Err(AnalysisError::UnknownRule { rule, which })
        }
    }
}

/// How one device's load changes between two placements.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceMovement {
    /// Device id.
    pub device: i32,
    /// Placements on the device before.
    pub before: u64,
    /// Placements on the device after.
    pub after: u64,
    /// `before` over all placements before (0 when there are none).
    pub share_before: f64,
    /// `after` over all placements after.
    pub share_after: f64,
}

/// What changes between two placements over a range of inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Movement {
    /// The rule run in both.
    pub rule: u32,
    /// Results asked for per input.
    pub num_rep: usize,
    /// Number of inputs compared.
    pub inputs: u64,
    /// Inputs whose set of devices changed (order ignored).
    pub changed_inputs: u64,
    /// `changed_inputs / inputs`.
    pub changed_fraction: f64,
    /// Inputs with the same devices in a different order (a new primary, moved EC shards).
    pub reordered_inputs: u64,
    /// Devices chosen over all inputs before (empty slots excluded).
    pub placements_before: u64,
    /// Devices chosen over all inputs after.
    pub placements_after: u64,
    /// Devices that are new in an input's set: replicas that must be copied.
    pub moved_replicas: u64,
    /// `moved_replicas / placements_after`.
    pub moved_fraction: f64,
    /// Positions whose device differs (what matters for erasure-coded shards).
    pub changed_slots: u64,
    /// Per device, in id order: every device that is chosen before or after.
    pub devices: Vec<DeviceMovement>,
}

/// One device's load against its weight.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceUtilization {
    /// Device id.
    pub device: i32,
    /// How many times the device was chosen.
    pub mappings: u64,
    /// `mappings` over all placements.
    pub mapping_share: f64,
    /// CRUSH weight under the rule's `take` buckets (sum if listed more than once), 16.16.
    pub crush_weight: u32,
    /// Reweight applied (16.16, `0x10000` = in).
    pub reweight: u32,
    /// Share of the effective weight (`crush_weight * reweight`) of all devices the rule
    /// can reach.
    pub weight_share: f64,
    /// `mapping_share / weight_share`: 1.0 is a perfectly fair share; `None` when the
    /// device has no effective weight.
    pub ratio: Option<f64>,
}

/// How evenly a rule spreads inputs over devices, relative to their weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Utilization {
    /// The rule run.
    pub rule: u32,
    /// Results asked for per input.
    pub num_rep: usize,
    /// Number of inputs.
    pub inputs: u64,
    /// Devices chosen over all inputs (empty slots excluded).
    pub placements: u64,
    /// Per device, in id order: devices the rule can reach, and any other that was chosen.
    pub devices: Vec<DeviceUtilization>,
    /// Smallest ratio among devices with effective weight.
    pub min_ratio: Option<f64>,
    /// Largest ratio among devices with effective weight.
    pub max_ratio: Option<f64>,
    /// Population standard deviation of those ratios.
    pub stddev_ratio: Option<f64>,
}

fn fraction(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Compares `old` and `new` as `crushtool --test` maps them (every device in a bucket at
/// full reweight, `choose_args 0`): see [`movement_between`].
pub fn movement(
    old: &CrushMap,
    new: &CrushMap,
    rule: u32,
    num_rep: usize,
    xs: Range<u32>,
) -> Result<Movement, AnalysisError> {
    movement_between(
        &Placement::new(old),
        &Placement::new(new),
        rule,
        num_rep,
        xs,
    )
}

/// Runs `rule` for every input of `xs` in both placements and reports what changed.
pub fn movement_between(
    old: &Placement<'_>,
    new: &Placement<'_>,
    rule: u32,
    num_rep: usize,
    xs: Range<u32>,
) -> Result<Movement, AnalysisError> {
    let old_mapper = old.mapper(rule, "old")?;
    let new_mapper = new.mapper(rule, "new")?;
    let mut workspace = Workspace::new();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut counts: BTreeMap<i32, (u64, u64)> = BTreeMap::new();
    let mut result = Movement {
        rule,
        num_rep,
        inputs: 0,
        changed_inputs: 0,
        changed_fraction: 0.0,
        reordered_inputs: 0,
        placements_before: 0,
        placements_after: 0,
        moved_replicas: 0,
        moved_fraction: 0.0,
        changed_slots: 0,
        devices: Vec::new(),
    };
    for x in xs {
        old_mapper.do_rule_into(
            rule,
            x,
            num_rep,
            &old.reweights,
            &mut workspace,
            &mut before,
        );
        new_mapper.do_rule_into(rule, x, num_rep, &new.reweights, &mut workspace, &mut after);
        result.inputs += 1;
        let old_set: BTreeSet<i32> = before.iter().copied().filter(|d| *d != ITEM_NONE).collect();
        let new_set: BTreeSet<i32> = after.iter().copied().filter(|d| *d != ITEM_NONE).collect();
        for device in &old_set {
            counts.entry(*device).or_default().0 += 1;
        }
        for device in &new_set {
            counts.entry(*device).or_default().1 += 1;
        }
        result.placements_before += old_set.len() as u64;
        result.placements_after += new_set.len() as u64;
        let moved = new_set.difference(&old_set).count() as u64;
        result.moved_replicas += moved;
        if old_set != new_set {
            result.changed_inputs += 1;
        } else if before != after {
            result.reordered_inputs += 1;
        }
        let longest = before.len().max(after.len());
        result.changed_slots += (0..longest)
            .filter(|i| {
                let slot_after = after.get(*i).copied().unwrap_or(ITEM_NONE);
                slot_after != ITEM_NONE && before.get(*i).copied() != Some(slot_after)
            })
            .count() as u64;
    }
    result.changed_fraction = fraction(result.changed_inputs, result.inputs);
    result.moved_fraction = fraction(result.moved_replicas, result.placements_after);
    result.devices = counts
        .into_iter()
        .map(|(device, (before, after))| DeviceMovement {
            device,
            before,
            after,
            share_before: fraction(before, result.placements_before),
            share_after: fraction(after, result.placements_after),
        })
        .collect();
    Ok(result)
}

/// Runs `rule` over `xs` with `reweights` (and `choose_args 0` if present): see
/// [`utilization_of`].
pub fn utilization(
    map: &CrushMap,
    rule: u32,
    num_rep: usize,
    xs: Range<u32>,
    reweights: &[u32],
) -> Result<Utilization, AnalysisError> {
    utilization_of(
        &Placement::with_reweights(map, reweights),
        rule,
        num_rep,
        xs,
    )
}

/// Runs `rule` over `xs` and compares each device's share of the placements with its share
/// of the effective weight the rule can reach (devices under the rule's `take` buckets).
pub fn utilization_of(
    placement: &Placement<'_>,
    rule: u32,
    num_rep: usize,
    xs: Range<u32>,
) -> Result<Utilization, AnalysisError> {
    let mapper = placement.mapper(rule, "the")?;
    let mut workspace = Workspace::new();
    let mut out = Vec::new();
    let mut mappings: BTreeMap<i32, u64> = BTreeMap::new();
    let mut inputs = 0u64;
    let mut placements = 0u64;
    for x in xs {
        mapper.do_rule_into(
            rule,
            x,
            num_rep,
            &placement.reweights,
            &mut workspace,
            &mut out,
        );
        inputs += 1;
        for device in out.iter().filter(|d| **d != ITEM_NONE) {
            *mappings.entry(*device).or_default() += 1;
            placements += 1;
        }
    }
    let weights = reachable_device_weights(placement.map, rule);
    let reweight_of = |device: i32| -> u32 {
        usize::try_from(device)
            .ok()
            .and_then(|i| placement.reweights.get(i))
            .copied()
            .unwrap_or(0)
            .min(WEIGHT_ONE)
    };
    let effective = |device: i32, crush_weight: u32| -> f64 {
        crush_weight as f64 * reweight_of(device) as f64 / WEIGHT_ONE as f64
    };
    let total_effective: f64 = weights.iter().map(|(d, w)| effective(*d, *w)).sum();
    let ids: BTreeSet<i32> = weights.keys().chain(mappings.keys()).copied().collect();
    let devices: Vec<DeviceUtilization> = ids
        .into_iter()
        .map(|device| {
            let crush_weight = weights.get(&device).copied().unwrap_or(0);
            let count = mappings.get(&device).copied().unwrap_or(0);
            let mapping_share = fraction(count, placements);
            let weight_share = if total_effective > 0.0 {
                effective(device, crush_weight) / total_effective
            } else {
                0.0
            };
            DeviceUtilization {
                device,
                mappings: count,
                mapping_share,
                crush_weight,
                reweight: reweight_of(device),
                weight_share,
                ratio: (weight_share > 0.0).then(|| mapping_share / weight_share),
            }
        })
        .collect();
    let ratios: Vec<f64> = devices.iter().filter_map(|d| d.ratio).collect();
    let (min_ratio, max_ratio, stddev_ratio) = if ratios.is_empty() {
        (None, None, None)
    } else {
        let n = ratios.len() as f64;
        let mean = ratios.iter().sum::<f64>() / n;
        let variance = ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
        (
            ratios.iter().copied().reduce(f64::min),
            ratios.iter().copied().reduce(f64::max),
            Some(variance.sqrt()),
        )
    };
    Ok(Utilization {
        rule,
        num_rep,
        inputs,
        placements,
        devices,
        min_ratio,
        max_ratio,
        stddev_ratio,
    })
}

/// The CRUSH weight of every device under the buckets `rule` takes, as listed by the
/// buckets that hold them (summed if a device is listed more than once). Each bucket is
/// visited once, so a malformed map with cycles cannot loop.
fn reachable_device_weights(map: &CrushMap, rule: u32) -> BTreeMap<i32, u32> {
    let mut weights: BTreeMap<i32, u32> = BTreeMap::new();
    let Some(rule) = map.rules.get(&rule) else {
        return weights;
    };
    let mut seen: BTreeSet<i32> = BTreeSet::new();
    let mut stack: Vec<i32> = Vec::new();
    for step in &rule.steps {
        if let Step::Take(id) = step {
            if *id >= 0 {
                // `take osd.N`: the device with full weight.
                weights.entry(*id).or_insert(WEIGHT_ONE);
            } else {
                stack.push(*id);
            }
        }
    }
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(bucket) = map.buckets.get(&id) else {
            continue;
        };
        for item in &bucket.items {
            if item.id >= 0 {
                let entry = weights.entry(item.id).or_default();
                *entry = entry.saturating_add(item.weight);
            } else {
                stack.push(item.id);
            }
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flat map of `n` devices of weight 1.0 with rule 1 choosing OSDs.
    fn flat(n: i32) -> CrushMap {
        let mut map = CrushMap::new_default();
        for id in 0..n {
            map.add_device(
                id,
                &format!("osd.{id}"),
                None,
                WEIGHT_ONE,
                &[("root", "default")],
            )
            .expect("add");
        }
        map.add_replicated_rule("by-osd", "default", "osd", None)
            .expect("rule");
        map
    }

    #[test]
    fn identical_maps_move_nothing() {
        let map = flat(6);
        let m = movement(&map, &map, 1, 3, 0..500).expect("movement");
        assert_eq!(m.inputs, 500);
        assert_eq!(
            (m.changed_inputs, m.reordered_inputs, m.moved_replicas),
            (0, 0, 0)
        );
        assert_eq!(m.changed_slots, 0);
        assert_eq!(m.placements_before, 1500);
        assert_eq!(m.placements_after, 1500);
        assert_eq!(m.devices.len(), 6);
        assert!(m.devices.iter().all(|d| d.before == d.after));
        let shares: f64 = m.devices.iter().map(|d| d.share_after).sum();
        assert!((shares - 1.0).abs() < 1e-9);
    }

    #[test]
    fn marking_a_device_out_moves_exactly_its_inputs() {
        let map = flat(6);
        let all_in = map.default_reweights();
        let mut one_out = all_in.clone();
        one_out[2] = 0;
        let m = movement_between(
            &Placement::with_reweights(&map, &all_in),
            &Placement::with_reweights(&map, &one_out),
            1,
            1,
            0..3000,
        )
        .expect("movement");
        let dev2 = m.devices.iter().find(|d| d.device == 2).expect("osd.2");
        assert!(
            dev2.before > 300,
            "osd.2 had about a sixth: {}",
            dev2.before
        );
        assert_eq!(dev2.after, 0);
        assert_eq!(m.changed_inputs, dev2.before);
        assert_eq!(m.moved_replicas, dev2.before);
        assert!((m.changed_fraction - dev2.before as f64 / 3000.0).abs() < 1e-12);
        assert!((m.moved_fraction - dev2.share_before).abs() < 1e-12);
    }

    #[test]
    fn unknown_rules_are_reported() {
        let map = flat(3);
        let err = movement(&map, &map, 9, 1, 0..1).unwrap_err();
        assert_eq!(
            err,
            AnalysisError::UnknownRule {
                rule: 9,
                which: "old"
            }
        );
        let mut without = map.clone();
        without.remove_rule("by-osd").expect("remove");
        let err = movement(&map, &without, 1, 1, 0..1).unwrap_err();
        assert_eq!(
            err,
            AnalysisError::UnknownRule {
                rule: 1,
                which: "new"
            }
        );
        let err = utilization(&map, 7, 1, 0..1, &[]).unwrap_err();
        assert_eq!(
            err,
            AnalysisError::UnknownRule {
                rule: 7,
                which: "the"
            }
        );
    }

    #[test]
    fn utilization_compares_mappings_with_weights() {
        let mut map = flat(8);
        map.reweight_item("osd.0", 2 * WEIGHT_ONE)
            .expect("reweight");
        let mut reweights = map.default_reweights();
        reweights[7] = 0;
        let u = utilization(&map, 1, 1, 0..20_000, &reweights).expect("utilization");
        assert_eq!((u.inputs, u.placements), (20_000, 20_000));
        assert_eq!(u.devices.len(), 8);
        // Effective weights: osd.0 2, osd.1-6 1, osd.7 out: shares 2/8 and 1/8.
        let d0 = &u.devices[0];
        assert_eq!(d0.crush_weight, 2 * WEIGHT_ONE);
        assert!((d0.weight_share - 0.25).abs() < 1e-12);
        let d7 = &u.devices[7];
        assert_eq!((d7.mappings, d7.reweight, d7.ratio), (0, 0, None));
        for d in &u.devices[..7] {
            let ratio = d.ratio.expect("weighted");
            assert!((0.9..1.1).contains(&ratio), "osd.{}: {ratio}", d.device);
        }
        let (min, max) = (u.min_ratio.expect("min"), u.max_ratio.expect("max"));
        assert!(min <= max && min > 0.9 && max < 1.1);
        assert!(u.stddev_ratio.expect("stddev") < 0.05);
    }

    #[test]
    fn utilization_of_a_class_rule_counts_only_that_class() {
        let mut map = CrushMap::new_default();
        for id in 0..6 {
            let class = if id % 2 == 0 { "ssd" } else { "hdd" };
            let host = format!("host{}", id / 2);
            map.add_device(
                id,
                &format!("osd.{id}"),
                Some(class),
                WEIGHT_ONE,
                &[("host", host.as_str()), ("root", "default")],
            )
            .expect("add");
        }
        let rule = map
            .add_replicated_rule("ssd", "default", "host", Some("ssd"))
            .expect("rule");
        let u = utilization(&map, rule, 2, 0..3000, &map.default_reweights()).expect("run");
        let ids: Vec<i32> = u.devices.iter().map(|d| d.device).collect();
        assert_eq!(ids, vec![0, 2, 4]);
        assert_eq!(u.placements, 6000);
        assert!(u
            .devices
            .iter()
            .all(|d| (d.weight_share - 1.0 / 3.0).abs() < 1e-12));
    }
}
