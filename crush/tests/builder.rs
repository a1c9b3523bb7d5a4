//! Tests of the builder API (`crush::builder`): every operation, every refusal (and that a
//! refused edit leaves the map untouched), weight propagation, device classes and the rules
//! the builder writes.

use std::collections::BTreeSet;

use crush::builder::{weight_from_f64, BuildError, STANDARD_TYPES};
use crush::*;

const ONE: u32 = WEIGHT_ONE;

/// Runs an edit that must fail, checks the error and that the map did not change.
fn refused<T: std::fmt::Debug>(
    map: &mut CrushMap,
    edit: impl FnOnce(&mut CrushMap) -> Result<T, BuildError>,
    expected: BuildError,
) {
    let before = map.clone();
    let result = edit(map);
    assert_eq!(result.unwrap_err(), expected);
    assert_eq!(*map, before, "a refused edit changed the map");
}

fn bucket<'a>(map: &'a CrushMap, name: &str) -> &'a Bucket {
    map.bucket_by_name(name)
        .unwrap_or_else(|| panic!("no bucket {name}"))
}

fn id_of(map: &CrushMap, name: &str) -> i32 {
    map.item_id(name)
        .unwrap_or_else(|| panic!("no item {name}"))
}

/// The weight `parent` lists for `child`.
fn listed(map: &CrushMap, parent: &str, child: &str) -> u32 {
    let child = id_of(map, child);
    bucket(map, parent)
        .items
        .iter()
        .find(|i| i.id == child)
        .unwrap_or_else(|| panic!("{parent} does not list {child}"))
        .weight
}

fn item_ids(map: &CrushMap, name: &str) -> Vec<i32> {
    bucket(map, name).items.iter().map(|i| i.id).collect()
}

fn osd(id: i32) -> String {
    format!("osd.{id}")
}

/// Two hosts under `default`: host0 = osd.0 (1.0, hdd) + osd.1 (2.0, ssd),
/// host1 = osd.2 (1.0, hdd).
fn two_hosts() -> CrushMap {
    let mut map = CrushMap::new_default();
    let place = |h: &str| [("host", h.to_string()), ("root", "default".to_string())];
    map.add_device(0, "osd.0", Some("hdd"), ONE, &place("host0"))
        .unwrap();
    map.add_device(1, "osd.1", Some("ssd"), 2 * ONE, &place("host0"))
        .unwrap();
    map.add_device(2, "osd.2", Some("hdd"), ONE, &place("host1"))
        .unwrap();
    map
}

// ---- new_default ------------------------------------------------------------------------

#[test]
fn new_default_is_a_fresh_ceph_cluster_map() {
    let map = CrushMap::new_default();
    assert_eq!(map.tunables, Tunables::jewel());
    let types: Vec<(i32, &str)> = map.types.iter().map(|(i, n)| (*i, n.as_str())).collect();
    assert_eq!(types, STANDARD_TYPES.to_vec());
    assert_eq!(map.types[&11], "root");
    let root = &map.buckets[&-1];
    assert_eq!(
        (root.name.as_str(), root.type_id, root.alg, root.items.len()),
        ("default", 11, BucketAlg::Straw2, 0)
    );
    assert_eq!(map.buckets.len(), 1);
    let rule = &map.rules[&0];
    assert_eq!(rule.name, "replicated_rule");
    assert_eq!(rule.rule_type, RuleType::Replicated);
    assert_eq!((rule.min_size, rule.max_size), (1, 10));
    assert_eq!(
        rule.steps,
        vec![
            Step::Take(-1),
            Step::ChooseLeafFirstN { n: 0, type_id: 1 },
            Step::Emit
        ]
    );
    assert!(map.devices.is_empty() && map.classes.is_empty());
}

// ---- add_device -------------------------------------------------------------------------

#[test]
fn add_device_creates_missing_buckets_and_propagates_weights() {
    let map = two_hosts();
    // host0 took the first free id; host1 one that no shadow copy holds.
    assert_eq!(bucket(&map, "host0").id, -2);
    let shadow_ids: BTreeSet<i32> = map.class_buckets.values().copied().collect();
    assert!(!shadow_ids.contains(&bucket(&map, "host1").id));
    assert_eq!(bucket(&map, "host0").type_id, 1);
    assert_eq!(bucket(&map, "host0").alg, BucketAlg::Straw2);
    assert_eq!(item_ids(&map, "host0"), vec![0, 1]);
    assert_eq!(item_ids(&map, "host1"), vec![2]);
    assert_eq!(listed(&map, "host0", "osd.1"), 2 * ONE);
    assert_eq!(listed(&map, "default", "host0"), 3 * ONE);
    assert_eq!(listed(&map, "default", "host1"), ONE);
    assert_eq!(bucket(&map, "default").weight(), 4 * ONE);
    assert_eq!(map.devices[&1].class.as_deref(), Some("ssd"));
    assert_eq!(map.devices[&1].name, "osd.1");
}

#[test]
fn add_device_orders_the_location_by_type_and_stops_at_the_first_existing_bucket() {
    let mut map = CrushMap::new_default();
    // Given top-down; applied bottom-up: host, then rack, then the existing root.
    map.add_device(
        0,
        "osd.0",
        None,
        ONE,
        &[("root", "default"), ("rack", "rack0"), ("host", "host0")],
    )
    .unwrap();
    assert_eq!(bucket(&map, "host0").id, -2);
    assert_eq!(bucket(&map, "rack0").id, -3);
    assert_eq!(item_ids(&map, "rack0"), vec![-2]);
    assert_eq!(item_ids(&map, "default"), vec![-3]);
    assert_eq!(listed(&map, "default", "rack0"), ONE);
    // host0 exists now: the walk stops there, the `root=other` pair is not applied.
    map.add_device(
        1,
        "osd.1",
        None,
        ONE,
        &[("host", "host0"), ("root", "other")],
    )
    .unwrap();
    assert!(map.bucket_by_name("other").is_none());
    assert_eq!(listed(&map, "default", "rack0"), 2 * ONE);
    // A location whose buckets are all new makes a new root.
    map.add_device(2, "osd.2", None, ONE, &[("host", "lonely")])
        .unwrap();
    assert!(map.parent_of(id_of(&map, "lonely")).is_none());
}

#[test]
fn add_device_refusals() {
    let mut map = two_hosts();
    let at = [("host", "host0")];
    refused(
        &mut map,
        |m| m.add_device(1, "osd.9", None, ONE, &at),
        BuildError::DuplicateId { id: 1 },
    );
    refused(
        &mut map,
        |m| m.add_device(-3, "osd.9", None, ONE, &at),
        BuildError::InvalidDeviceId { id: -3 },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.0", None, ONE, &at),
        BuildError::DuplicateName {
            name: "osd.0".into(),
            existing: "device 0".into(),
        },
    );
    let host1 = id_of(&map, "host1");
    refused(
        &mut map,
        |m| m.add_device(9, "host1", None, ONE, &at),
        BuildError::DuplicateName {
            name: "host1".into(),
            existing: format!("bucket {host1}"),
        },
    );
    for bad in ["", "osd 9", "osd~9", "a/b"] {
        refused(
            &mut map,
            |m| m.add_device(9, bad, None, ONE, &at),
            BuildError::InvalidName { name: bad.into() },
        );
    }
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", Some("fast disk"), ONE, &at),
        BuildError::InvalidName {
            name: "fast disk".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", None, ONE, &[("shelf", "s0")]),
        BuildError::UnknownType {
            name: "shelf".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", None, ONE, &[("osd", "x")]),
        BuildError::DeviceTypeForBucket {
            type_name: "osd".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device::<&str, &str>(9, "osd.9", None, ONE, &[]),
        BuildError::InvalidLocation {
            reason: "a device needs at least one `type=bucket` pair".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", None, ONE, &[("host", "a"), ("host", "b")]),
        BuildError::InvalidLocation {
            reason: "type `host` is given twice".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", None, ONE, &[("host", "a"), ("rack", "a")]),
        BuildError::InvalidLocation {
            reason: "bucket `a` is given twice".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", None, ONE, &[("host", "osd.9")]),
        BuildError::InvalidLocation {
            reason: "`osd.9` cannot be placed inside itself".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", None, ONE, &[("host", "osd.2")]),
        BuildError::InvalidLocation {
            reason: "`osd.2` is a device, not a bucket".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", None, ONE, &[("rack", "default")]),
        BuildError::TypeMismatch {
            bucket: "default".into(),
            expected: "rack".into(),
            actual: "root".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", None, ONE, &[("root", "default~hdd")]),
        BuildError::ShadowBucket {
            name: "default~hdd".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_device(9, "osd.9", None, u32::MAX, &at),
        BuildError::WeightOverflow {
            bucket: "host0".into(),
        },
    );
}

#[test]
fn add_device_with_a_class_builds_shadow_trees() {
    let map = two_hosts();
    let classes: BTreeSet<&str> = map.classes.values().map(String::as_str).collect();
    assert_eq!(classes, BTreeSet::from(["hdd", "ssd"]));
    let hdd_root = bucket(&map, "default~hdd");
    assert_eq!(hdd_root.weight(), 2 * ONE);
    assert_eq!(item_ids(&map, "host0~hdd"), vec![0]);
    assert_eq!(item_ids(&map, "host0~ssd"), vec![1]);
    assert_eq!(bucket(&map, "host1~ssd").items.len(), 0);
    assert_eq!(bucket(&map, "default~ssd").weight(), 2 * ONE);
}

// ---- remove_device ----------------------------------------------------------------------

#[test]
fn remove_device_unlinks_and_forgets_it() {
    let mut map = two_hosts();
    map.remove_device("osd.1").unwrap();
    assert!(!map.devices.contains_key(&1));
    assert_eq!(item_ids(&map, "host0"), vec![0]);
    assert_eq!(listed(&map, "default", "host0"), ONE);
    // The last ssd is gone and no rule takes ssd: the class and its trees go too.
    assert!(map.class_id("ssd").is_none());
    assert!(map.bucket_by_name("default~ssd").is_none());
    assert_eq!(bucket(&map, "default~hdd").weight(), 2 * ONE);
}

#[test]
fn remove_device_refusals() {
    let mut map = two_hosts();
    refused(
        &mut map,
        |m| m.remove_device("osd.7"),
        BuildError::UnknownName {
            name: "osd.7".into(),
        },
    );
    refused(
        &mut map,
        |m| m.remove_device("host0"),
        BuildError::NotADevice {
            name: "host0".into(),
        },
    );
    // A rule that takes the device directly keeps it.
    map.rules.insert(
        5,
        Rule {
            id: 5,
            name: "pin".into(),
            rule_type: RuleType::Replicated,
            min_size: 1,
            max_size: 1,
            steps: vec![Step::Take(2), Step::Emit],
        },
    );
    refused(
        &mut map,
        |m| m.remove_device("osd.2"),
        BuildError::InUseByRule {
            name: "osd.2".into(),
            rule: "pin".into(),
        },
    );
}

// ---- add_bucket / remove_bucket ---------------------------------------------------------

/// The id a new bucket must get: the first from -1 down that no bucket has and no shadow
/// record reserves (computed here independently of the builder).
fn expected_free_id(map: &CrushMap) -> i32 {
    let reserved: BTreeSet<i32> = map.class_buckets.values().copied().collect();
    (1..)
        .map(|n: i32| -n)
        .find(|id| !map.buckets.contains_key(id) && !reserved.contains(id))
        .unwrap()
}

#[test]
fn add_bucket_takes_the_first_free_id_and_may_be_placed() {
    let mut map = two_hosts();
    let expected = expected_free_id(&map);
    assert!(map.buckets.len() > 3, "shadow buckets exist and hold ids");
    let rack = map.add_bucket::<&str, &str>("rack0", "rack", &[]).unwrap();
    assert_eq!(rack, expected);
    assert!(map.buckets[&rack].items.is_empty());
    assert!(map.parent_of(rack).is_none(), "no location: a new root");
    // With a location it is linked (weight 0 while empty).
    let row = map
        .add_bucket("row0", "row", &[("root", "default")])
        .unwrap();
    assert_eq!(map.parent_of(row).map(|b| b.id), Some(-1));
    assert_eq!(listed(&map, "default", "row0"), 0);
    assert_ne!(row, rack);
    // A removed bucket's id is free again.
    map.remove_bucket("rack0").unwrap();
    assert!(!map.buckets.contains_key(&rack));
    assert_eq!(expected_free_id(&map), rack);
    let again = map.add_bucket::<&str, &str>("rack1", "rack", &[]).unwrap();
    assert_eq!(again, rack);
    // The new buckets got their shadow copies too.
    assert!(map.bucket_by_name("row0~hdd").is_some());
}

#[test]
fn add_bucket_refusals() {
    let mut map = two_hosts();
    let none: [(&str, &str); 0] = [];
    refused(
        &mut map,
        |m| m.add_bucket("host0", "host", &none),
        BuildError::DuplicateName {
            name: "host0".into(),
            existing: "bucket -2".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_bucket("default~hdd", "root", &none),
        BuildError::InvalidName {
            name: "default~hdd".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_bucket("x", "shelf", &none),
        BuildError::UnknownType {
            name: "shelf".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_bucket("x", "osd", &none),
        BuildError::DeviceTypeForBucket {
            type_name: "osd".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_bucket("x", "rack", &[("row", "r"), ("row", "s")]),
        BuildError::InvalidLocation {
            reason: "type `row` is given twice".into(),
        },
    );
}

#[test]
fn add_bucket_refuses_to_contain_itself() {
    let mut map = two_hosts();
    refused(
        &mut map,
        |m| m.add_bucket("x", "rack", &[("row", "x")]),
        BuildError::InvalidLocation {
            reason: "`x` cannot be placed inside itself".into(),
        },
    );
}

#[test]
fn remove_bucket_refusals() {
    let mut map = two_hosts();
    refused(
        &mut map,
        |m| m.remove_bucket("host0"),
        BuildError::BucketNotEmpty {
            name: "host0".into(),
            items: 2,
        },
    );
    refused(
        &mut map,
        |m| m.remove_bucket("nowhere"),
        BuildError::UnknownName {
            name: "nowhere".into(),
        },
    );
    refused(
        &mut map,
        |m| m.remove_bucket("osd.0"),
        BuildError::NotABucket {
            name: "osd.0".into(),
        },
    );
    refused(
        &mut map,
        |m| m.remove_bucket("host0~hdd"),
        BuildError::ShadowBucket {
            name: "host0~hdd".into(),
        },
    );
    // An empty root that a rule takes (through its class copy) stays.
    map.add_bucket::<&str, &str>("fast", "root", &[]).unwrap();
    map.add_replicated_rule("fast-ssd", "fast", "host", Some("ssd"))
        .unwrap();
    refused(
        &mut map,
        |m| m.remove_bucket("fast"),
        BuildError::InUseByRule {
            name: "fast".into(),
            rule: "fast-ssd".into(),
        },
    );
    // Emptying `default` is not enough either: replicated_rule takes it.
    for id in 0..3 {
        map.remove_device(&osd(id)).unwrap();
    }
    map.remove_bucket("host0").unwrap();
    map.remove_bucket("host1").unwrap();
    refused(
        &mut map,
        |m| m.remove_bucket("default"),
        BuildError::InUseByRule {
            name: "default".into(),
            rule: "replicated_rule".into(),
        },
    );
    map.remove_rule("replicated_rule").unwrap();
    map.remove_bucket("default").unwrap();
    assert!(map.bucket_by_name("default").is_none());
}

#[test]
fn remove_bucket_unlinks_from_its_parent() {
    let mut map = two_hosts();
    map.add_bucket("spare", "host", &[("root", "default")])
        .unwrap();
    let spare = id_of(&map, "spare");
    assert!(item_ids(&map, "default").contains(&spare));
    map.remove_bucket("spare").unwrap();
    assert!(!item_ids(&map, "default").contains(&spare));
    assert!(map.bucket_by_name("spare~hdd").is_none());
    assert!(!map
        .class_buckets
        .keys()
        .any(|(original, _)| *original == spare));
}

// ---- move_item --------------------------------------------------------------------------

#[test]
fn move_bucket_updates_weights_on_both_sides() {
    let mut map = two_hosts();
    map.move_item("host1", &[("rack", "rack0"), ("root", "default")])
        .unwrap();
    assert_eq!(item_ids(&map, "rack0"), vec![id_of(&map, "host1")]);
    assert_eq!(
        item_ids(&map, "default"),
        vec![id_of(&map, "host0"), id_of(&map, "rack0")]
    );
    assert_eq!(listed(&map, "default", "rack0"), ONE);
    assert_eq!(listed(&map, "rack0", "host1"), ONE);
    assert_eq!(bucket(&map, "default").weight(), 4 * ONE);
    // Move host0 under the rack too: default now lists only the rack, with the sum.
    map.move_item_under("host0", "rack0").unwrap();
    assert_eq!(item_ids(&map, "default"), vec![id_of(&map, "rack0")]);
    assert_eq!(listed(&map, "default", "rack0"), 4 * ONE);
    assert_eq!(listed(&map, "rack0", "host0"), 3 * ONE);
    // Shadow trees follow.
    assert_eq!(
        item_ids(&map, "default~hdd"),
        vec![id_of(&map, "rack0~hdd")]
    );
    assert_eq!(bucket(&map, "rack0~ssd").weight(), 2 * ONE);
}

#[test]
fn move_device_keeps_its_weight() {
    let mut map = two_hosts();
    map.move_item("osd.1", &[("host", "host1")]).unwrap();
    assert_eq!(item_ids(&map, "host0"), vec![0]);
    assert_eq!(item_ids(&map, "host1"), vec![2, 1]);
    assert_eq!(listed(&map, "host1", "osd.1"), 2 * ONE);
    assert_eq!(listed(&map, "default", "host0"), ONE);
    assert_eq!(listed(&map, "default", "host1"), 3 * ONE);
    assert_eq!(item_ids(&map, "host1~ssd"), vec![1]);
}

#[test]
fn move_to_where_it_already_is_changes_nothing() {
    let mut map = two_hosts();
    let before = map.clone();
    map.move_item("osd.0", &[("host", "host0"), ("root", "default")])
        .unwrap();
    map.move_item_under("host1", "default").unwrap();
    assert_eq!(map, before, "item order must not change");
}

#[test]
fn move_refusals() {
    let mut map = two_hosts();
    map.move_item("host0", &[("rack", "rack0"), ("root", "default")])
        .unwrap();
    refused(
        &mut map,
        |m| m.move_item_under("rack0", "host0"),
        BuildError::Cycle {
            item: "rack0".into(),
            target: "host0".into(),
        },
    );
    refused(
        &mut map,
        |m| m.move_item("rack0", &[("rack", "rack0")]),
        BuildError::Cycle {
            item: "rack0".into(),
            target: "rack0".into(),
        },
    );
    refused(
        &mut map,
        |m| m.move_item_under("default", "host1"),
        BuildError::Cycle {
            item: "default".into(),
            target: "host1".into(),
        },
    );
    refused(
        &mut map,
        |m| m.move_item("ghost", &[("root", "default")]),
        BuildError::UnknownName {
            name: "ghost".into(),
        },
    );
    refused(
        &mut map,
        |m| m.move_item_under("osd.0", "nowhere"),
        BuildError::UnknownName {
            name: "nowhere".into(),
        },
    );
    refused(
        &mut map,
        |m| m.move_item_under("osd.0", "osd.2"),
        BuildError::NotABucket {
            name: "osd.2".into(),
        },
    );
    refused(
        &mut map,
        |m| m.move_item("host0~hdd", &[("root", "default")]),
        BuildError::ShadowBucket {
            name: "host0~hdd".into(),
        },
    );
    refused(
        &mut map,
        |m| m.move_item::<&str, &str>("osd.0", &[]),
        BuildError::InvalidLocation {
            reason: "moving needs at least one `type=bucket` pair".into(),
        },
    );
}

#[test]
fn a_cycle_found_after_creating_buckets_leaves_no_trace() {
    let mut map = CrushMap::new_default();
    map.add_device(
        0,
        "osd.0",
        None,
        ONE,
        &[
            ("host", "host0"),
            ("chassis", "chassis0"),
            ("rack", "rack0"),
            ("root", "default"),
        ],
    )
    .unwrap();
    // `newhost` would be created around rack0 before chassis0 (under rack0) is reached.
    refused(
        &mut map,
        |m| m.move_item("rack0", &[("host", "newhost"), ("chassis", "chassis0")]),
        BuildError::Cycle {
            item: "rack0".into(),
            target: "chassis0".into(),
        },
    );
    assert!(map.bucket_by_name("newhost").is_none());
}

// ---- reweight_item ----------------------------------------------------------------------

#[test]
fn reweight_device_propagates_to_the_root() {
    let mut map = two_hosts();
    map.move_item("host0", &[("rack", "rack0"), ("root", "default")])
        .unwrap();
    map.reweight_item("osd.0", 5 * ONE).unwrap();
    assert_eq!(listed(&map, "host0", "osd.0"), 5 * ONE);
    assert_eq!(listed(&map, "rack0", "host0"), 7 * ONE);
    assert_eq!(listed(&map, "default", "rack0"), 7 * ONE);
    assert_eq!(bucket(&map, "default~hdd").weight(), 6 * ONE);
    // Weight 0 is allowed (drain).
    map.reweight_item("osd.0", 0).unwrap();
    assert_eq!(listed(&map, "default", "rack0"), 2 * ONE);
}

#[test]
fn reweight_bucket_sets_its_listed_weight_until_something_below_changes() {
    let mut map = two_hosts();
    map.reweight_item("host0", 10 * ONE).unwrap();
    assert_eq!(listed(&map, "default", "host0"), 10 * ONE);
    assert_eq!(bucket(&map, "host0").weight(), 3 * ONE, "its items stay");
    assert_eq!(bucket(&map, "default").weight(), 11 * ONE);
    // Ceph semantics: an edit beneath recomputes the entry from the items.
    map.reweight_item("osd.0", 2 * ONE).unwrap();
    assert_eq!(listed(&map, "default", "host0"), 4 * ONE);
}

#[test]
fn reweight_refusals() {
    let mut map = two_hosts();
    map.add_bucket::<&str, &str>("island", "root", &[]).unwrap();
    refused(
        &mut map,
        |m| m.reweight_item("island", ONE),
        BuildError::NotPlaced {
            name: "island".into(),
        },
    );
    refused(
        &mut map,
        |m| m.reweight_item("osd.42", ONE),
        BuildError::UnknownName {
            name: "osd.42".into(),
        },
    );
    refused(
        &mut map,
        |m| m.reweight_item("osd.1", u32::MAX),
        BuildError::WeightOverflow {
            bucket: "host0".into(),
        },
    );
}

#[test]
fn weights_typed_by_users_convert_like_ceph() {
    assert_eq!(weight_from_f64(1.0), Ok(0x10000));
    assert_eq!(weight_from_f64(1.5), Ok(0x18000));
    assert_eq!(weight_from_f64(0.0), Ok(0));
    // f32 arithmetic, truncated: 3.638 TB disk as Ceph stores it.
    assert_eq!(weight_from_f64(3.638), Ok((3.638f32 * 65536.0f32) as u32));
    assert_eq!(weight_from_f64(3.638).ok(), text::weight_from_text("3.638"));
    for bad in [-1.0, f64::NAN, f64::INFINITY, 65536.0, 1e30] {
        let err = weight_from_f64(bad).unwrap_err();
        assert!(
            matches!(err, BuildError::InvalidWeight { .. }),
            "{bad}: {err:?}"
        );
    }
}

// ---- device classes ---------------------------------------------------------------------

#[test]
fn set_device_class_moves_the_device_between_shadow_trees() {
    let mut map = two_hosts();
    map.set_device_class("osd.2", Some("ssd")).unwrap();
    assert_eq!(map.devices[&2].class.as_deref(), Some("ssd"));
    assert_eq!(item_ids(&map, "host1~ssd"), vec![2]);
    assert!(bucket(&map, "host1~hdd").items.is_empty());
    assert_eq!(bucket(&map, "default~ssd").weight(), 3 * ONE);
    // A brand-new class is registered.
    map.set_device_class("osd.0", Some("nvme")).unwrap();
    assert!(map.class_id("nvme").is_some());
    assert_eq!(item_ids(&map, "host0~nvme"), vec![0]);
    // No hdd device is left, and no rule takes hdd: the class is forgotten.
    assert!(map.class_id("hdd").is_none());
    map.set_device_class("osd.0", None).unwrap();
    assert_eq!(map.devices[&0].class, None);
    assert!(map.class_id("nvme").is_none());
}

#[test]
fn set_device_class_refusals() {
    let mut map = two_hosts();
    refused(
        &mut map,
        |m| m.set_device_class("host0", Some("ssd")),
        BuildError::NotADevice {
            name: "host0".into(),
        },
    );
    refused(
        &mut map,
        |m| m.set_device_class("osd.9", Some("ssd")),
        BuildError::UnknownName {
            name: "osd.9".into(),
        },
    );
    refused(
        &mut map,
        |m| m.set_device_class("osd.0", Some("a~b")),
        BuildError::InvalidName { name: "a~b".into() },
    );
}

#[test]
fn a_class_that_a_rule_takes_survives_its_last_device() {
    let mut map = two_hosts();
    map.add_replicated_rule("ssd-only", "default", "host", Some("ssd"))
        .unwrap();
    map.set_device_class("osd.1", Some("hdd")).unwrap();
    assert!(map.class_id("ssd").is_some());
    let take = map.rule_by_name("ssd-only").unwrap().steps[0];
    assert_eq!(take, Step::Take(id_of(&map, "default~ssd")));
    assert!(bucket(&map, "default~ssd").weight() == 0);
}

// ---- rules ------------------------------------------------------------------------------

#[test]
fn replicated_rules_as_ceph_writes_them() {
    let mut map = two_hosts();
    let id = map
        .add_replicated_rule("fast", "default", "host", Some("ssd"))
        .unwrap();
    assert_eq!(id, 1);
    let rule = map.rules[&id].clone();
    assert_eq!(rule.name, "fast");
    assert_eq!(rule.rule_type, RuleType::Replicated);
    assert_eq!((rule.min_size, rule.max_size), (1, 10));
    assert_eq!(
        rule.steps,
        vec![
            Step::Take(id_of(&map, "default~ssd")),
            Step::ChooseLeafFirstN { n: 0, type_id: 1 },
            Step::Emit
        ]
    );
    let id = map
        .add_replicated_rule("per-osd", "host0", "osd", None)
        .unwrap();
    assert_eq!(
        map.rules[&id].steps,
        vec![
            Step::Take(id_of(&map, "host0")),
            Step::ChooseFirstN { n: 0, type_id: 0 },
            Step::Emit
        ]
    );
}

#[test]
fn erasure_rules_as_ceph_writes_them() {
    let mut map = two_hosts();
    let id = map
        .add_erasure_rule("ec42", "default", "host", Some("hdd"), 6)
        .unwrap();
    let rule = &map.rules[&id];
    assert_eq!(rule.rule_type, RuleType::Erasure);
    assert_eq!((rule.min_size, rule.max_size), (3, 6));
    assert_eq!(
        rule.steps,
        vec![
            Step::SetChooseLeafTries(5),
            Step::SetChooseTries(100),
            Step::Take(id_of(&map, "default~hdd")),
            Step::ChooseLeafIndep { n: 0, type_id: 1 },
            Step::Emit
        ]
    );
    let id = map
        .add_erasure_rule("ec-osd", "default", "osd", None, 3)
        .unwrap();
    assert_eq!(
        map.rules[&id].steps[3],
        Step::ChooseIndep { n: 0, type_id: 0 }
    );
}

#[test]
fn rule_ids_fill_gaps_and_removal_works() {
    let mut map = two_hosts();
    assert_eq!(map.add_replicated_rule("a", "default", "host", None), Ok(1));
    assert_eq!(map.add_replicated_rule("b", "default", "host", None), Ok(2));
    map.remove_rule("a").unwrap();
    assert!(map.rule_by_name("a").is_none());
    assert_eq!(map.add_replicated_rule("c", "default", "rack", None), Ok(1));
    refused(
        &mut map,
        |m| m.remove_rule("a"),
        BuildError::UnknownRule { name: "a".into() },
    );
}

#[test]
fn rule_refusals() {
    let mut map = two_hosts();
    refused(
        &mut map,
        |m| m.add_replicated_rule("replicated_rule", "default", "host", None),
        BuildError::DuplicateRule {
            name: "replicated_rule".into(),
            id: 0,
        },
    );
    refused(
        &mut map,
        |m| m.add_replicated_rule("r", "nowhere", "host", None),
        BuildError::UnknownName {
            name: "nowhere".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_replicated_rule("r", "osd.0", "host", None),
        BuildError::NotABucket {
            name: "osd.0".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_replicated_rule("r", "default~ssd", "host", None),
        BuildError::ShadowBucket {
            name: "default~ssd".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_replicated_rule("r", "default", "shelf", None),
        BuildError::UnknownType {
            name: "shelf".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_erasure_rule("r", "default", "host", Some("nvme"), 4),
        BuildError::UnknownClass {
            name: "nvme".into(),
        },
    );
    refused(
        &mut map,
        |m| m.add_erasure_rule("r", "default", "host", None, 0),
        BuildError::ZeroChunkCount,
    );
    refused(
        &mut map,
        |m| m.add_replicated_rule("my rule", "default", "host", None),
        BuildError::InvalidName {
            name: "my rule".into(),
        },
    );
}

#[test]
fn a_root_without_shadow_trees_refuses_class_rules() {
    let mut map = two_hosts();
    // Ceph makes no shadow trees over uniform buckets; make host1 uniform by hand.
    let host1 = id_of(&map, "host1");
    map.buckets.get_mut(&host1).unwrap().alg = BucketAlg::Uniform;
    shadow::rebuild(&mut map).unwrap();
    assert!(map.bucket_by_name("default~hdd").is_none());
    refused(
        &mut map,
        |m| m.add_replicated_rule("r", "default", "host", Some("hdd")),
        BuildError::ClassNotInRoot {
            root: "default".into(),
            class: "hdd".into(),
        },
    );
}

// ---- whole maps -------------------------------------------------------------------------

/// Four hosts with a mix of hdd and ssd devices, in two racks.
fn mixed_cluster() -> CrushMap {
    let mut map = CrushMap::new_default();
    let mut id = 0;
    for host in 0..4 {
        let rack = format!("rack{}", host % 2);
        let host_name = format!("host{host}");
        for slot in 0..4 {
            let class = if (host + slot) % 3 == 0 { "ssd" } else { "hdd" };
            let weight = ONE + (slot as u32) * ONE / 4;
            map.add_device(
                id,
                &osd(id),
                Some(class),
                weight,
                &[
                    ("host", host_name.as_str()),
                    ("rack", rack.as_str()),
                    ("root", "default"),
                ],
            )
            .unwrap();
            id += 1;
        }
    }
    map
}

#[test]
fn class_rules_map_only_onto_devices_of_their_class() {
    let mut map = mixed_cluster();
    let ssd = map
        .add_replicated_rule("ssd", "default", "host", Some("ssd"))
        .unwrap();
    let hdd_ec = map
        .add_erasure_rule("hdd-ec", "default", "host", Some("hdd"), 4)
        .unwrap();
    let mapper = Mapper::new(&map);
    let reweights = map.default_reweights();
    let class_of = |d: i32| map.devices[&d].class.clone().unwrap();
    let host_of = |d: i32| map.parent_of(d).unwrap().id;
    for x in 0..2000 {
        for (rule, class, num_rep) in [(ssd, "ssd", 3), (hdd_ec, "hdd", 4)] {
            let out = mapper.do_rule(rule, x, num_rep, &reweights);
            assert_eq!(out.len(), num_rep, "rule {rule} x {x}: {out:?}");
            assert!(!out.contains(&ITEM_NONE), "rule {rule} x {x}: {out:?}");
            for d in &out {
                assert_eq!(class_of(*d), class, "rule {rule} x {x}: {out:?}");
            }
            let hosts: BTreeSet<i32> = out.iter().map(|d| host_of(*d)).collect();
            assert_eq!(hosts.len(), num_rep, "rule {rule} x {x}: {out:?}");
        }
    }
}

#[test]
fn class_rules_stay_valid_across_edits() {
    let mut map = mixed_cluster();
    let ssd = map
        .add_replicated_rule("ssd", "default", "host", Some("ssd"))
        .unwrap();
    let take_before = map.rules[&ssd].steps[0];
    map.add_device(
        16,
        "osd.16",
        Some("ssd"),
        ONE,
        &[("host", "host4"), ("rack", "rack2"), ("root", "default")],
    )
    .unwrap();
    map.move_item_under("host1", "rack0").unwrap();
    map.remove_device("osd.0").unwrap();
    // The rule still takes the same shadow root, which now reaches the new device.
    assert_eq!(map.rules[&ssd].steps[0], take_before);
    let Step::Take(root) = take_before else {
        panic!("first step is not take")
    };
    assert_eq!(map.buckets[&root].name, "default~ssd");
    let mapper = Mapper::new(&map);
    let reweights = map.default_reweights();
    let reached: BTreeSet<i32> = (0..2000)
        .flat_map(|x| mapper.do_rule(ssd, x, 3, &reweights))
        .collect();
    assert!(reached.contains(&16));
    assert!(reached
        .iter()
        .all(|d| map.devices[d].class.as_deref() == Some("ssd")));
}

#[test]
fn builder_maps_survive_the_text_format() {
    let mut map = mixed_cluster();
    map.add_replicated_rule("ssd", "default", "host", Some("ssd"))
        .unwrap();
    map.add_erasure_rule("hdd-ec", "default", "rack", Some("hdd"), 3)
        .unwrap();
    map.reweight_item("host2", 3 * ONE).unwrap();
    let text = text::print(&map);
    let parsed = text::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed, map, "{text}");
}

#[test]
fn choose_args_weight_sets_follow_edits() {
    let mut map = two_hosts();
    let host0 = id_of(&map, "host0");
    let set = map.choose_args.entry(0).or_default();
    set.insert(
        host0,
        ChooseArg {
            weight_set: vec![vec![ONE, 2 * ONE], vec![3 * ONE, 4 * ONE]],
            ids: Some(vec![100, 101]),
        },
    );
    set.insert(
        -1,
        ChooseArg {
            weight_set: vec![vec![5 * ONE, ONE]],
            ids: None,
        },
    );
    map.add_device(3, "osd.3", Some("hdd"), ONE / 2, &[("host", "host0")])
        .unwrap();
    let arg = &map.choose_args[&0][&host0];
    assert_eq!(
        arg.weight_set,
        vec![vec![ONE, 2 * ONE, ONE / 2], vec![3 * ONE, 4 * ONE, ONE / 2]]
    );
    assert_eq!(arg.ids, Some(vec![100, 101, 3]));
    // The root's set position for host0 now carries host0's new total.
    assert_eq!(
        map.choose_args[&0][&-1].weight_set,
        vec![vec![3 * ONE + ONE / 2, ONE]]
    );

    map.reweight_item("osd.1", ONE).unwrap();
    assert_eq!(
        map.choose_args[&0][&host0].weight_set,
        vec![vec![ONE, ONE, ONE / 2], vec![3 * ONE, ONE, ONE / 2]]
    );

    map.remove_device("osd.0").unwrap();
    let arg = &map.choose_args[&0][&host0];
    assert_eq!(arg.weight_set, vec![vec![ONE, ONE / 2], vec![ONE, ONE / 2]]);
    assert_eq!(arg.ids, Some(vec![101, 3]));
    assert_eq!(
        map.choose_args[&0][&-1].weight_set,
        vec![vec![ONE + ONE / 2, ONE]]
    );
}

#[test]
fn crush_map_round_trips_through_json() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/maps/classes.txt"),
    )
    .unwrap();
    let map = crush::text::parse(&text).unwrap();
    assert!(!map.class_buckets.is_empty());
    let json = serde_json::to_string(&map).unwrap();
    let back: crush::CrushMap = serde_json::from_str(&json).unwrap();
    assert_eq!(back, map);
}
