//! The typed change layer: every validated change makes exactly one new epoch; every
//! invalid one is refused with an error naming the bad argument.

mod common;

use clustermap::{
    ChangeError, ClusterFlag, ClusterMap, CrushEdit, Fullness, Incremental, MapChange, MonitorInfo,
    NewOsd, PgId, PoolSetting, PoolSpec, PoolType, Uuid,
};
use common::*;
use crush::builder::BuildError;
use crush::{CrushMap, ITEM_NONE, WEIGHT_ONE};

fn new_osd(uuid: Uuid, host: &str) -> NewOsd {
    NewOsd {
        uuid,
        id: None,
        host: host.to_string(),
        location: Vec::new(),
        crush_weight: WEIGHT_ONE,
        device_class: None,
    }
}

/// A 3-host cluster with a replicated pool `rep` (id 1, size 3, 64 PGs) and an erasure rule.
fn cluster() -> ClusterMap {
    small_cluster(3, 2)
        .apply(
            &[
                MapChange::CreatePool(PoolSpec::replicated("rep", 3, 64)),
                MapChange::Crush(CrushEdit::CreateErasureRule {
                    name: "ec".into(),
                    root: "default".into(),
                    failure_domain: "osd".into(),
                    class: None,
                    chunk_count: 4,
                }),
            ],
            3_000,
        )
        .unwrap()
}

#[test]
fn a_new_map_starts_at_epoch_one_and_each_batch_adds_one() {
    let map = ClusterMap::new(fsid(), 1_000, monitors(&["a"]), CrushMap::new_default()).unwrap();
    assert_eq!(map.epoch(), 1);
    assert_eq!(map.format_version(), clustermap::FORMAT_VERSION);
    assert_eq!(map.created_ms(), 1_000);
    assert_eq!(map.monitors().len(), 1);
    assert!(map.osds().is_empty() && map.pools().is_empty());
    assert_eq!(map.next_pool_id(), 1);

    let next = map
        .apply(
            &[
                MapChange::SetFlag(ClusterFlag::NoOut),
                MapChange::CreatePool(PoolSpec::replicated("a", 2, 8)),
                MapChange::CreatePool(PoolSpec::replicated("b", 2, 8)),
            ],
            5_000,
        )
        .unwrap();
    assert_eq!(next.epoch(), 2, "one batch, one epoch");
    assert_eq!(next.modified_ms(), 5_000);
    assert_eq!(next.created_ms(), 1_000);
    assert_eq!(map.epoch(), 1, "the old map is untouched");
    assert!(map.pools().is_empty());
    assert_eq!(next.pools().len(), 2);
    // An empty batch still makes an epoch (callers skip empty incrementals if they like).
    assert_eq!(next.apply(&[], 6_000).unwrap().epoch(), 3);
}

#[test]
fn new_map_arguments_are_checked() {
    let err = ClusterMap::new(Uuid::NIL, 0, monitors(&["a"]), CrushMap::new_default()).unwrap_err();
    assert!(
        matches!(
            err,
            ChangeError::InvalidArgument {
                argument: "fsid",
                ..
            }
        ),
        "{err}"
    );
    let err = ClusterMap::new(fsid(), 0, vec![], CrushMap::new_default()).unwrap_err();
    assert!(
        matches!(
            err,
            ChangeError::InvalidArgument {
                argument: "monitors",
                ..
            }
        ),
        "{err}"
    );
    let twice = vec![
        MonitorInfo {
            name: "a".into(),
            address: "x:1".into(),
        },
        MonitorInfo {
            name: "a".into(),
            address: "x:2".into(),
        },
    ];
    let err = ClusterMap::new(fsid(), 0, twice, CrushMap::new_default()).unwrap_err();
    assert_eq!(err, ChangeError::MonitorExists { name: "a".into() });
    let mut broken = CrushMap::new_default();
    broken
        .buckets
        .get_mut(&-1)
        .unwrap()
        .items
        .push(crush::BucketItem { id: -9, weight: 1 });
    let err = ClusterMap::new(fsid(), 0, monitors(&["a"]), broken).unwrap_err();
    assert!(matches!(err, ChangeError::InvalidCrushMap { .. }), "{err}");
}

#[test]
fn a_location_without_a_root_hangs_under_the_default_root() {
    let map = ClusterMap::new(fsid(), 0, monitors(&["a"]), CrushMap::new_default()).unwrap();
    let mut spec = new_osd(osd_uuid(0), "node1");
    spec.location = vec![("rack".into(), "r1".into())];
    let map = map.apply(&[MapChange::NewOsd(spec)], 10).unwrap();
    let mut spec = new_osd(osd_uuid(1), "node2");
    spec.location = vec![("rack".into(), "r1".into())];
    let map = map.apply(&[MapChange::NewOsd(spec)], 11).unwrap();
    let crush = map.crush();
    let rack = crush.bucket_by_name("r1").unwrap();
    assert_eq!(crush.parent_of(rack.id).unwrap().name, "default");
    for host in ["node1", "node2"] {
        let bucket = crush.bucket_by_name(host).unwrap();
        assert_eq!(crush.parent_of(bucket.id).unwrap().name, "r1", "{host}");
    }
    // A rule from the default root reaches both.
    let mapper = crush::Mapper::new(crush);
    let placed: std::collections::BTreeSet<i32> = (0..64)
        .flat_map(|x| mapper.do_rule(0, x, 2, &[WEIGHT_ONE; 2]))
        .collect();
    assert_eq!(placed, [0, 1].into());
}

#[test]
fn new_osds_are_placed_under_their_host_down_and_out() {
    let map = ClusterMap::new(fsid(), 0, monitors(&["a"]), CrushMap::new_default()).unwrap();
    let mut spec = new_osd(osd_uuid(0), "node1");
    spec.crush_weight = 2 * WEIGHT_ONE;
    spec.device_class = Some("ssd".into());
    spec.location = vec![
        ("rack".into(), "r1".into()),
        ("root".into(), "default".into()),
    ];
    let map = map.apply(&[MapChange::NewOsd(spec)], 10).unwrap();
    let osd = map.osd(0).unwrap();
    assert!(!osd.up && !osd.is_in);
    assert_eq!(osd.reweight, WEIGHT_ONE);
    assert_eq!(osd.host, "node1");
    assert_eq!(osd.in_changed_at, 2);
    assert_eq!(map.crush_weight(0), Some(2 * WEIGHT_ONE));
    let crush = map.crush();
    let host = crush.bucket_by_name("node1").unwrap();
    let rack = crush.bucket_by_name("r1").unwrap();
    assert_eq!(crush.parent_of(0).unwrap().name, "node1");
    assert_eq!(crush.parent_of(host.id).unwrap().name, "r1");
    assert_eq!(crush.parent_of(rack.id).unwrap().name, "default");
    assert_eq!(
        crush.bucket_by_name("default").unwrap().weight(),
        2 * WEIGHT_ONE
    );
    assert_eq!(crush.devices[&0].class.as_deref(), Some("ssd"));
    assert!(
        crush.bucket_by_name("default~ssd").is_some(),
        "shadow trees are rebuilt"
    );
    // Out OSDs get weight 0 in CRUSH.
    assert_eq!(map.crush_weights(), vec![0]);

    // Ids are the lowest free ones; a second OSD on the same host joins it.
    let map = map
        .apply(&[MapChange::NewOsd(new_osd(osd_uuid(1), "node1"))], 20)
        .unwrap();
    assert!(map.exists(1));
    assert_eq!(map.crush().bucket_by_name("node1").unwrap().items.len(), 2);
    assert_eq!(
        map.crush().bucket_by_name("default").unwrap().weight(),
        3 * WEIGHT_ONE
    );
}

#[test]
fn osd_lifecycle_records_the_epochs_of_each_change() {
    let map = ClusterMap::new(fsid(), 0, monitors(&["a"]), CrushMap::new_default()).unwrap();
    let map = map
        .apply(&[MapChange::NewOsd(new_osd(osd_uuid(0), "h"))], 100)
        .unwrap(); // e2
    let boot = MapChange::BootOsd {
        id: 0,
        uuid: osd_uuid(0),
        address: "10.0.0.9:7200".into(),
    };
    let map = map
        .apply(&[boot.clone(), MapChange::MarkIn { id: 0 }], 200)
        .unwrap(); // e3
    let osd = map.osd(0).unwrap();
    assert!(osd.up && osd.is_in);
    assert_eq!((osd.up_from, osd.in_changed_at, osd.down_at), (3, 3, 0));
    assert_eq!(osd.address.as_deref(), Some("10.0.0.9:7200"));
    assert_eq!(map.crush_weights(), vec![WEIGHT_ONE]);

    let map = map
        .apply(&[MapChange::SetUpThru { id: 0, up_thru: 3 }], 250)
        .unwrap(); // e4
    assert_eq!(map.osd(0).unwrap().up_thru, 3);
    let map = map.apply(&[MapChange::MarkDown { id: 0 }], 300).unwrap(); // e5
    let osd = map.osd(0).unwrap();
    assert!(!osd.up && osd.is_in);
    assert_eq!((osd.down_at, osd.down_since_ms), (5, Some(300)));
    // Marking a down OSD down again changes nothing about it.
    let again = map.apply(&[MapChange::MarkDown { id: 0 }], 350).unwrap();
    assert_eq!(again.osd(0), map.osd(0));
    let map = map.apply(std::slice::from_ref(&boot), 400).unwrap(); // e6
    let osd = map.osd(0).unwrap();
    assert!(osd.up);
    assert_eq!((osd.up_from, osd.down_at, osd.down_since_ms), (6, 5, None));
    // Booting while still up is a restart: down and up in the same epoch.
    let map = map.apply(&[boot], 500).unwrap(); // e7
    let osd = map.osd(0).unwrap();
    assert_eq!((osd.up_from, osd.down_at), (7, 7));
    let map = map
        .apply(
            &[MapChange::Reweight {
                id: 0,
                weight: WEIGHT_ONE / 2,
            }],
            600,
        )
        .unwrap();
    assert_eq!(map.crush_weights(), vec![WEIGHT_ONE / 2]);
    let map = map.apply(&[MapChange::MarkOut { id: 0 }], 700).unwrap();
    assert_eq!(map.osd(0).unwrap().in_changed_at, 9);
    assert_eq!(map.crush_weights(), vec![0]);
    let map = map
        .apply(
            &[
                MapChange::MarkDown { id: 0 },
                MapChange::RemoveOsd { id: 0 },
            ],
            800,
        )
        .unwrap();
    assert!(!map.exists(0));
    assert!(map.crush().devices.is_empty());
    assert!(map.crush().bucket_by_name("h").unwrap().items.is_empty());
    // The freed id is reused.
    let map = map
        .apply(&[MapChange::NewOsd(new_osd(osd_uuid(9), "h"))], 900)
        .unwrap();
    assert_eq!(map.osd_by_uuid(osd_uuid(9)).unwrap().id, 0);
}

#[test]
fn osd_fullness_is_recorded_only_when_it_changes() {
    let map = cluster();
    assert_eq!(
        map.osd(1).unwrap().fullness,
        Fullness::Ok,
        "new OSDs start ok"
    );
    let before = map.osd(1).unwrap().last_change;

    let same = map
        .apply(
            &[MapChange::SetOsdFullness {
                id: 1,
                fullness: Fullness::Ok,
            }],
            4_000,
        )
        .unwrap();
    assert_eq!(same.osd(1), map.osd(1));
    assert!(Incremental::diff(&map, &same).unwrap().is_empty());

    let full = map
        .apply(
            &[MapChange::SetOsdFullness {
                id: 1,
                fullness: Fullness::Full,
            }],
            4_000,
        )
        .unwrap();
    let osd = full.osd(1).unwrap();
    assert_eq!(osd.fullness, Fullness::Full);
    assert_eq!(osd.last_change, full.epoch());
    assert_ne!(osd.last_change, before);
    assert_eq!(full.osd(0), map.osd(0), "other OSDs are untouched");

    // A down OSD can be judged too (its last beacon may have said full).
    let down = full.apply(&[MapChange::MarkDown { id: 1 }], 5_000).unwrap();
    let nearfull = down
        .apply(
            &[MapChange::SetOsdFullness {
                id: 1,
                fullness: Fullness::Nearfull,
            }],
            6_000,
        )
        .unwrap();
    assert_eq!(nearfull.osd(1).unwrap().fullness, Fullness::Nearfull);
    assert!(!nearfull.osd(1).unwrap().up);

    assert_eq!(
        map.validate(&[MapChange::SetOsdFullness {
            id: 77,
            fullness: Fullness::Full,
        }])
        .unwrap_err(),
        ChangeError::OsdNotFound { id: 77 }
    );
}

#[test]
fn pools_get_ceph_defaults_and_settings_apply() {
    let map = cluster();
    let pool = map.pool_by_name("rep").unwrap();
    assert_eq!((pool.id, pool.size, pool.min_size), (1, 3, 2));
    assert_eq!((pool.pg_num, pool.pgp_num, pool.crush_rule), (64, 64, 0));
    assert!(pool.flags.hashpspool && !pool.flags.nodelete);
    assert_eq!(pool.created_at, map.epoch());
    assert_eq!(map.next_pool_id(), 2);

    let set = |map: &ClusterMap, setting| {
        map.apply(
            &[MapChange::SetPool {
                name: "rep".into(),
                setting,
            }],
            9_000,
        )
        .unwrap()
    };
    let smaller = set(&map, PoolSetting::Size(1));
    let pool = smaller.pool_by_name("rep").unwrap();
    assert_eq!(
        (pool.size, pool.min_size, pool.last_change),
        (1, 1, smaller.epoch())
    );
    let map2 = set(&map, PoolSetting::MinSize(3));
    assert_eq!(map2.pool_by_name("rep").unwrap().min_size, 3);
    let map2 = set(&map, PoolSetting::PgNum(100));
    let pool = map2.pool_by_name("rep").unwrap();
    assert_eq!((pool.pg_num, pool.pgp_num), (100, 100));
    let map2 = set(&map2, PoolSetting::PgpNum(50));
    assert_eq!(map2.pool_by_name("rep").unwrap().pgp_num, 50);
    let ec_rule = map.crush().rule_by_name("ec").unwrap().id;
    let err = map
        .apply(
            &[MapChange::SetPool {
                name: "rep".into(),
                setting: PoolSetting::CrushRule(ec_rule),
            }],
            1,
        )
        .unwrap_err();
    assert_eq!(
        err,
        ChangeError::RuleTypeMismatch {
            rule: ec_rule,
            pool_type: PoolType::Replicated
        }
    );

    // A smaller pg_num takes the overrides of merged-away PGs with it.
    let temps = map
        .apply(
            &[
                MapChange::SetPgTemp {
                    pgid: PgId::new(1, 40),
                    osds: vec![0, 2, 4],
                },
                MapChange::SetPrimaryTemp {
                    pgid: PgId::new(1, 41),
                    osd: Some(2),
                },
                MapChange::SetPgTemp {
                    pgid: PgId::new(1, 3),
                    osds: vec![0, 2, 4],
                },
            ],
            9_000,
        )
        .unwrap();
    let shrunk = set(&temps, PoolSetting::PgNum(32));
    assert_eq!(
        shrunk.pg_temp().keys().copied().collect::<Vec<_>>(),
        vec![PgId::new(1, 3)]
    );
    assert!(shrunk.primary_temp().is_empty());
    // Removing the pool takes the rest.
    let removed = temps
        .apply(&[MapChange::RemovePool { name: "rep".into() }], 9_500)
        .unwrap();
    assert!(removed.pools().is_empty() && removed.pg_temp().is_empty());
    assert!(removed.primary_temp().is_empty());
    assert_eq!(removed.next_pool_id(), 2, "pool ids are never reused");
}

#[test]
fn batches_apply_in_order() {
    let map = cluster()
        .apply(
            &[
                MapChange::CreatePool(PoolSpec::replicated("new", 3, 8)),
                MapChange::SetPool {
                    name: "new".into(),
                    setting: PoolSetting::NoDelete(true),
                },
            ],
            9_000,
        )
        .unwrap();
    assert!(map.pool_by_name("new").unwrap().flags.nodelete);
}

#[test]
fn pool_settings_parse_like_the_cli() {
    let map = cluster();
    let crush = map.crush();
    assert_eq!(
        PoolSetting::parse("size", "2", crush).unwrap(),
        PoolSetting::Size(2)
    );
    assert_eq!(
        PoolSetting::parse("crush_rule", "replicated_rule", crush).unwrap(),
        PoolSetting::CrushRule(0)
    );
    assert_eq!(
        PoolSetting::parse("crush_rule", "1", crush).unwrap(),
        PoolSetting::CrushRule(1)
    );
    assert_eq!(
        PoolSetting::parse("nodelete", "true", crush).unwrap(),
        PoolSetting::NoDelete(true)
    );
    for (key, value, argument) in [
        ("size", "three", "size"),
        ("nodelete", "yes", "nodelete"),
        ("colour", "red", "key"),
        ("crush_rule", "nope", "crush_rule"),
    ] {
        match PoolSetting::parse(key, value, crush).unwrap_err() {
            ChangeError::InvalidArgument { argument: a, .. } => assert_eq!(a, argument),
            other => panic!("{key}: {other}"),
        }
    }
    let pool = map.pool_by_name("rep").unwrap();
    assert_eq!(pool.get("size").as_deref(), Some("3"));
    assert_eq!(pool.get("object_hash").as_deref(), Some("rjenkins"));
    assert_eq!(pool.get("hashpspool").as_deref(), Some("true"));
    assert_eq!(pool.get("nothing"), None);
    assert_eq!(PoolSetting::Size(1).key(), "size");
}

#[test]
fn crush_edits_pass_through_the_builder() {
    let map = cluster();
    let map = map
        .apply(
            &[
                MapChange::Crush(CrushEdit::AddBucket {
                    name: "r1".into(),
                    type_name: "rack".into(),
                    location: vec![("root".into(), "default".into())],
                }),
                MapChange::Crush(CrushEdit::Move {
                    name: "h0".into(),
                    location: vec![("rack".into(), "r1".into())],
                }),
                MapChange::Crush(CrushEdit::Reweight {
                    name: "osd.0".into(),
                    weight: 3 * WEIGHT_ONE,
                }),
                MapChange::Crush(CrushEdit::SetDeviceClass {
                    name: "osd.1".into(),
                    class: Some("ssd".into()),
                }),
                MapChange::Crush(CrushEdit::CreateReplicatedRule {
                    name: "by_rack".into(),
                    root: "default".into(),
                    failure_domain: "rack".into(),
                    class: None,
                }),
            ],
            9_000,
        )
        .unwrap();
    let crush = map.crush();
    assert_eq!(
        crush
            .parent_of(crush.bucket_by_name("h0").unwrap().id)
            .unwrap()
            .name,
        "r1"
    );
    assert_eq!(map.crush_weight(0), Some(3 * WEIGHT_ONE));
    assert_eq!(crush.bucket_by_name("r1").unwrap().weight(), 4 * WEIGHT_ONE);
    assert_eq!(crush.devices[&1].class.as_deref(), Some("ssd"));
    let rule = crush.rule_by_name("by_rack").unwrap().id;
    let map = map
        .apply(
            &[MapChange::Crush(CrushEdit::RemoveRule {
                name: "by_rack".into(),
            })],
            9_100,
        )
        .unwrap();
    assert!(!map.crush().rules.contains_key(&rule));
    // Removing a device from CRUSH keeps the OSD; adding it back places it again.
    let map = map
        .apply(
            &[MapChange::Crush(CrushEdit::Remove {
                name: "osd.5".into(),
            })],
            9_200,
        )
        .unwrap();
    assert!(map.exists(5) && map.crush_weight(5).is_none());
    let map = map
        .apply(
            &[MapChange::Crush(CrushEdit::AddOsd {
                id: 5,
                weight: WEIGHT_ONE,
                class: None,
                location: vec![("host".into(), "h2".into())],
            })],
            9_300,
        )
        .unwrap();
    assert_eq!(map.crush_weight(5), Some(WEIGHT_ONE));
}

#[test]
fn flags_set_and_clear() {
    let map = cluster()
        .apply(
            &[
                MapChange::SetFlag(ClusterFlag::NoOut),
                MapChange::SetFlag(ClusterFlag::NoScrub),
            ],
            1,
        )
        .unwrap();
    assert!(map.is_flag_set(ClusterFlag::NoOut) && map.is_flag_set(ClusterFlag::NoScrub));
    let map = map
        .apply(&[MapChange::UnsetFlag(ClusterFlag::NoOut)], 2)
        .unwrap();
    assert!(!map.is_flag_set(ClusterFlag::NoOut));
    assert_eq!(map.flags().len(), 1);
}

#[test]
fn monitors_are_added_and_removed_in_rank_order() {
    let map = cluster();
    let map = map
        .apply(
            &[MapChange::AddMonitor(MonitorInfo {
                name: "d".into(),
                address: "10.0.0.4:7100".into(),
            })],
            1,
        )
        .unwrap();
    assert_eq!(map.monitor("d").unwrap().0, 3);
    let map = map
        .apply(&[MapChange::RemoveMonitor { name: "a".into() }], 2)
        .unwrap();
    assert_eq!(map.monitor("d").unwrap().0, 2);
    assert_eq!(
        map.monitors()
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["b", "c", "d"]
    );
}

/// Every refusal, with the error it must give. The map is immutable, so "unchanged" is
/// checked by applying the same batch with a valid change in front: nothing of it lands.
#[test]
fn every_invalid_change_is_refused_with_a_named_error() {
    let map = cluster();
    let ec_rule = map.crush().rule_by_name("ec").unwrap().id;
    let pool = |f: &dyn Fn(&mut PoolSpec)| {
        let mut spec = PoolSpec::replicated("p", 3, 8);
        f(&mut spec);
        MapChange::CreatePool(spec)
    };
    let set = |setting| MapChange::SetPool {
        name: "rep".into(),
        setting,
    };
    let invalid = |argument: &'static str| move |err: &ChangeError| matches!(err, ChangeError::InvalidArgument { argument: a, .. } if *a == argument);
    let mut nodelete = map.clone();
    nodelete = nodelete
        .apply(
            &[
                set(PoolSetting::NoDelete(true)),
                set(PoolSetting::NoPgChange(true)),
                set(PoolSetting::NoSizeChange(true)),
                MapChange::CreatePool(clustermap::PoolSpec {
                    crush_rule: Some(ec_rule),
                    pool_type: PoolType::Erasure,
                    ..PoolSpec::replicated("ecpool", 4, 8)
                }),
            ],
            1,
        )
        .unwrap();
    let mut broken_crush = map.crush().clone();
    broken_crush
        .buckets
        .get_mut(&-1)
        .unwrap()
        .items
        .push(crush::BucketItem { id: -99, weight: 1 });
    let mut huge_device = map.crush().clone();
    huge_device.devices.insert(
        1 << 30,
        crush::Device {
            id: 1 << 30,
            name: "osd.huge".into(),
            class: None,
        },
    );
    let mut huge_rule = map.crush().clone();
    let mut rule = huge_rule.rules[&0].clone();
    rule.id = 70_000;
    rule.name = "far".into();
    huge_rule.rules.insert(70_000, rule);
    let mut ruleless_crush = map.crush().clone();
    ruleless_crush.rules.remove(&0);
    let tiny = small_cluster(1, 1);
    let osd1_down = map.apply(&[MapChange::MarkDown { id: 1 }], 1).unwrap();
    let one_monitor = tiny
        .apply(
            &[
                MapChange::RemoveMonitor { name: "a".into() },
                MapChange::RemoveMonitor { name: "b".into() },
            ],
            1,
        )
        .unwrap();

    type Check = Box<dyn Fn(&ChangeError) -> bool>;
    let cases: Vec<(&ClusterMap, MapChange, Check)> = vec![
        (
            &map,
            pool(&|s| s.name = String::new()),
            Box::new(invalid("name")),
        ),
        (
            &map,
            pool(&|s| s.name = "a\nb".into()),
            Box::new(invalid("name")),
        ),
        (
            &map,
            pool(&|s| s.name = " p".into()),
            Box::new(invalid("name")),
        ),
        (
            &map,
            pool(&|s| s.name = "x".repeat(129)),
            Box::new(invalid("name")),
        ),
        (
            &map,
            pool(&|s| s.name = "rep".into()),
            Box::new(|e| *e == ChangeError::PoolExists { name: "rep".into() }),
        ),
        (&map, pool(&|s| s.size = 0), Box::new(invalid("size"))),
        (&map, pool(&|s| s.size = 11), Box::new(invalid("size"))),
        (
            &map,
            pool(&|s| s.min_size = Some(0)),
            Box::new(invalid("min_size")),
        ),
        (
            &map,
            pool(&|s| s.min_size = Some(4)),
            Box::new(invalid("min_size")),
        ),
        (&map, pool(&|s| s.pg_num = 0), Box::new(invalid("pg_num"))),
        (
            &map,
            pool(&|s| s.pg_num = 65_537),
            Box::new(invalid("pg_num")),
        ),
        (
            &map,
            pool(&|s| s.pgp_num = Some(9)),
            Box::new(invalid("pgp_num")),
        ),
        (
            &map,
            pool(&|s| s.pgp_num = Some(0)),
            Box::new(invalid("pgp_num")),
        ),
        (
            &map,
            pool(&|s| s.crush_rule = Some(42)),
            Box::new(|e| *e == ChangeError::RuleNotFound { rule: 42 }),
        ),
        (
            &map,
            pool(&|s| s.crush_rule = Some(ec_rule)),
            Box::new(move |e| {
                *e == ChangeError::RuleTypeMismatch {
                    rule: ec_rule,
                    pool_type: PoolType::Replicated,
                }
            }),
        ),
        (
            &tiny,
            pool(&|s| s.pool_type = PoolType::Erasure),
            Box::new(|e| {
                matches!(
                    e,
                    ChangeError::NoRuleForPoolType {
                        pool_type: PoolType::Erasure,
                        ..
                    }
                )
            }),
        ),
        (
            &map,
            MapChange::RemovePool {
                name: "nope".into(),
            },
            Box::new(|e| {
                *e == ChangeError::PoolNotFound {
                    name: "nope".into(),
                }
            }),
        ),
        (
            &nodelete,
            MapChange::RemovePool { name: "rep".into() },
            Box::new(|e| {
                *e == ChangeError::PoolFlagForbids {
                    name: "rep".into(),
                    flag: "nodelete",
                }
            }),
        ),
        (
            &map,
            MapChange::SetPool {
                name: "nope".into(),
                setting: PoolSetting::Size(2),
            },
            Box::new(|e| matches!(e, ChangeError::PoolNotFound { .. })),
        ),
        (&map, set(PoolSetting::Size(0)), Box::new(invalid("size"))),
        (&map, set(PoolSetting::Size(11)), Box::new(invalid("size"))),
        (
            &map,
            set(PoolSetting::MinSize(0)),
            Box::new(invalid("min_size")),
        ),
        (
            &map,
            set(PoolSetting::MinSize(4)),
            Box::new(invalid("min_size")),
        ),
        (
            &map,
            set(PoolSetting::PgNum(0)),
            Box::new(invalid("pg_num")),
        ),
        (
            &map,
            set(PoolSetting::PgNum(70_000)),
            Box::new(invalid("pg_num")),
        ),
        (
            &map,
            set(PoolSetting::PgpNum(65)),
            Box::new(invalid("pgp_num")),
        ),
        (
            &map,
            set(PoolSetting::CrushRule(42)),
            Box::new(|e| *e == ChangeError::RuleNotFound { rule: 42 }),
        ),
        (
            &nodelete,
            set(PoolSetting::Size(2)),
            Box::new(|e| {
                *e == ChangeError::PoolFlagForbids {
                    name: "rep".into(),
                    flag: "nosizechange",
                }
            }),
        ),
        (
            &nodelete,
            set(PoolSetting::MinSize(1)),
            Box::new(|e| {
                *e == ChangeError::PoolFlagForbids {
                    name: "rep".into(),
                    flag: "nosizechange",
                }
            }),
        ),
        (
            &nodelete,
            set(PoolSetting::PgNum(128)),
            Box::new(|e| {
                *e == ChangeError::PoolFlagForbids {
                    name: "rep".into(),
                    flag: "nopgchange",
                }
            }),
        ),
        (
            &nodelete,
            set(PoolSetting::PgpNum(32)),
            Box::new(|e| {
                *e == ChangeError::PoolFlagForbids {
                    name: "rep".into(),
                    flag: "nopgchange",
                }
            }),
        ),
        (
            &nodelete,
            MapChange::SetPool {
                name: "ecpool".into(),
                setting: PoolSetting::Size(5),
            },
            Box::new(|e| {
                matches!(
                    e,
                    ChangeError::NotForPoolType {
                        setting: "size",
                        pool_type: PoolType::Erasure,
                        ..
                    }
                )
            }),
        ),
        (
            &map,
            MapChange::NewOsd(new_osd(Uuid::NIL, "h0")),
            Box::new(invalid("uuid")),
        ),
        (
            &map,
            MapChange::NewOsd(new_osd(osd_uuid(3), "h0")),
            Box::new(|e| {
                *e == ChangeError::OsdUuidExists {
                    uuid: osd_uuid(3),
                    id: 3,
                }
            }),
        ),
        (
            &map,
            MapChange::NewOsd(NewOsd {
                id: Some(2),
                ..new_osd(osd_uuid(99), "h0")
            }),
            Box::new(|e| *e == ChangeError::OsdExists { id: 2 }),
        ),
        (
            &map,
            MapChange::NewOsd(NewOsd {
                id: Some(-2),
                ..new_osd(osd_uuid(99), "h0")
            }),
            Box::new(invalid("id")),
        ),
        (
            &map,
            MapChange::NewOsd(new_osd(osd_uuid(99), "")),
            Box::new(invalid("host")),
        ),
        (
            &map,
            MapChange::NewOsd(new_osd(osd_uuid(99), "bad host")),
            Box::new(|e| matches!(e, ChangeError::Crush(BuildError::InvalidName { .. }))),
        ),
        (
            &map,
            MapChange::NewOsd(NewOsd {
                location: vec![("galaxy".into(), "m31".into())],
                ..new_osd(osd_uuid(99), "h9")
            }),
            Box::new(|e| matches!(e, ChangeError::Crush(BuildError::UnknownType { .. }))),
        ),
        (
            &map,
            MapChange::NewOsd(NewOsd {
                device_class: Some(String::new()),
                ..new_osd(osd_uuid(99), "h9")
            }),
            Box::new(invalid("device_class")),
        ),
        (
            &map,
            MapChange::BootOsd {
                id: 77,
                uuid: osd_uuid(77),
                address: "x:1".into(),
            },
            Box::new(|e| *e == ChangeError::OsdNotFound { id: 77 }),
        ),
        (
            &map,
            MapChange::BootOsd {
                id: 1,
                uuid: osd_uuid(2),
                address: "x:1".into(),
            },
            Box::new(|e| {
                *e == ChangeError::OsdUuidMismatch {
                    id: 1,
                    expected: osd_uuid(1),
                    given: osd_uuid(2),
                }
            }),
        ),
        (
            &map,
            MapChange::BootOsd {
                id: 1,
                uuid: osd_uuid(1),
                address: " ".into(),
            },
            Box::new(invalid("address")),
        ),
        (
            &map,
            MapChange::MarkDown { id: 77 },
            Box::new(|e| *e == ChangeError::OsdNotFound { id: 77 }),
        ),
        (
            &map,
            MapChange::MarkOut { id: 77 },
            Box::new(|e| *e == ChangeError::OsdNotFound { id: 77 }),
        ),
        (
            &map,
            MapChange::MarkIn { id: 77 },
            Box::new(|e| *e == ChangeError::OsdNotFound { id: 77 }),
        ),
        (
            &map,
            MapChange::Reweight { id: 77, weight: 1 },
            Box::new(|e| *e == ChangeError::OsdNotFound { id: 77 }),
        ),
        (
            &map,
            MapChange::Reweight { id: 1, weight: 0 },
            Box::new(invalid("weight")),
        ),
        (
            &map,
            MapChange::Reweight {
                id: 1,
                weight: WEIGHT_ONE + 1,
            },
            Box::new(invalid("weight")),
        ),
        (
            &map,
            MapChange::SetUpThru {
                id: 1,
                up_thru: 999,
            },
            Box::new(invalid("up_thru")),
        ),
        (
            &osd1_down,
            MapChange::SetUpThru { id: 1, up_thru: 2 },
            Box::new(|e| *e == ChangeError::OsdNotUp { id: 1 }),
        ),
        (
            &map,
            MapChange::RemoveOsd { id: 1 },
            Box::new(|e| *e == ChangeError::OsdIsUp { id: 1 }),
        ),
        (
            &map,
            MapChange::RemoveOsd { id: 77 },
            Box::new(|e| *e == ChangeError::OsdNotFound { id: 77 }),
        ),
        (
            &map,
            MapChange::SetPgTemp {
                pgid: PgId::new(9, 0),
                osds: vec![0],
            },
            Box::new(|e| {
                *e == ChangeError::PgNotFound {
                    pgid: PgId::new(9, 0),
                }
            }),
        ),
        (
            &map,
            MapChange::SetPgTemp {
                pgid: PgId::new(1, 64),
                osds: vec![0],
            },
            Box::new(|e| {
                *e == ChangeError::PgNotFound {
                    pgid: PgId::new(1, 64),
                }
            }),
        ),
        (
            &map,
            MapChange::SetPgTemp {
                pgid: PgId::new(1, 0),
                osds: vec![0, 77],
            },
            Box::new(|e| *e == ChangeError::OsdNotFound { id: 77 }),
        ),
        (
            &map,
            MapChange::SetPgTemp {
                pgid: PgId::new(1, 0),
                osds: vec![0, 0],
            },
            Box::new(|e| matches!(e, ChangeError::InvalidPgTemp { .. })),
        ),
        (
            &map,
            MapChange::SetPgTemp {
                pgid: PgId::new(1, 0),
                osds: vec![0, 1, 2, 3],
            },
            Box::new(|e| matches!(e, ChangeError::InvalidPgTemp { .. })),
        ),
        (
            &map,
            MapChange::SetPgTemp {
                pgid: PgId::new(1, 0),
                osds: vec![0, ITEM_NONE],
            },
            Box::new(|e| matches!(e, ChangeError::InvalidPgTemp { .. })),
        ),
        (
            &nodelete,
            MapChange::SetPgTemp {
                pgid: PgId::new(2, 0),
                osds: vec![ITEM_NONE, ITEM_NONE],
            },
            Box::new(|e| matches!(e, ChangeError::InvalidPgTemp { .. })),
        ),
        (
            &map,
            MapChange::SetPrimaryTemp {
                pgid: PgId::new(1, 0),
                osd: Some(77),
            },
            Box::new(|e| *e == ChangeError::OsdNotFound { id: 77 }),
        ),
        (
            &map,
            MapChange::SetPrimaryTemp {
                pgid: PgId::new(1, 99),
                osd: Some(0),
            },
            Box::new(|e| matches!(e, ChangeError::PgNotFound { .. })),
        ),
        (
            &map,
            MapChange::SetCrushMap(Box::new(broken_crush)),
            Box::new(|e| matches!(e, ChangeError::InvalidCrushMap { .. })),
        ),
        (
            &map,
            MapChange::SetCrushMap(Box::new(huge_device)),
            Box::new(|e| matches!(e, ChangeError::InvalidCrushMap { .. })),
        ),
        (
            &map,
            MapChange::SetCrushMap(Box::new(huge_rule)),
            Box::new(|e| matches!(e, ChangeError::InvalidCrushMap { .. })),
        ),
        (
            &map,
            MapChange::NewOsd(NewOsd {
                id: Some(clustermap::change::MAX_OSD_ID + 1),
                ..new_osd(osd_uuid(99), "h0")
            }),
            Box::new(invalid("id")),
        ),
        (
            &map,
            MapChange::SetCrushMap(Box::new(ruleless_crush)),
            Box::new(|e| {
                *e == ChangeError::RuleInUse {
                    rule: 0,
                    pool: "rep".into(),
                }
            }),
        ),
        (
            &map,
            MapChange::Crush(CrushEdit::RemoveRule {
                name: "replicated_rule".into(),
            }),
            Box::new(|e| {
                *e == ChangeError::RuleInUse {
                    rule: 0,
                    pool: "rep".into(),
                }
            }),
        ),
        (
            &map,
            MapChange::Crush(CrushEdit::RemoveRule {
                name: "nope".into(),
            }),
            Box::new(|e| matches!(e, ChangeError::Crush(BuildError::UnknownRule { .. }))),
        ),
        (
            &map,
            MapChange::Crush(CrushEdit::AddOsd {
                id: 77,
                weight: 1,
                class: None,
                location: vec![("host".into(), "h0".into())],
            }),
            Box::new(|e| *e == ChangeError::OsdNotFound { id: 77 }),
        ),
        (
            &map,
            MapChange::Crush(CrushEdit::Move {
                name: "h0".into(),
                location: vec![("galaxy".into(), "x".into())],
            }),
            Box::new(|e| matches!(e, ChangeError::Crush(BuildError::UnknownType { .. }))),
        ),
        (
            &map,
            MapChange::Crush(CrushEdit::Remove { name: "h0".into() }),
            Box::new(|e| matches!(e, ChangeError::Crush(BuildError::BucketNotEmpty { .. }))),
        ),
        (
            &map,
            MapChange::AddMonitor(MonitorInfo {
                name: "a".into(),
                address: "y:1".into(),
            }),
            Box::new(|e| *e == ChangeError::MonitorExists { name: "a".into() }),
        ),
        (
            &map,
            MapChange::AddMonitor(MonitorInfo {
                name: "z".into(),
                address: "10.0.0.1:7100".into(),
            }),
            Box::new(|e| *e == ChangeError::MonitorExists { name: "a".into() }),
        ),
        (
            &map,
            MapChange::AddMonitor(MonitorInfo {
                name: "z".into(),
                address: "".into(),
            }),
            Box::new(invalid("monitor address")),
        ),
        (
            &map,
            MapChange::AddMonitor(MonitorInfo {
                name: "".into(),
                address: "q:1".into(),
            }),
            Box::new(invalid("monitor name")),
        ),
        (
            &map,
            MapChange::RemoveMonitor { name: "zz".into() },
            Box::new(|e| *e == ChangeError::MonitorNotFound { name: "zz".into() }),
        ),
        (
            &one_monitor,
            MapChange::RemoveMonitor { name: "c".into() },
            Box::new(|e| *e == ChangeError::LastMonitor { name: "c".into() }),
        ),
    ];
    for (i, (base, change, check)) in cases.into_iter().enumerate() {
        let marker = MapChange::SetFlag(ClusterFlag::NoScrub);
        let result = base.apply(&[marker, change.clone()], 42);
        let err = result.expect_err(&format!("case {i}: {change:?} was accepted"));
        assert!(check(&err), "case {i}: {change:?} gave {err:?}");
        // The message names the argument for InvalidArgument.
        if let ChangeError::InvalidArgument { argument, .. } = &err {
            assert!(err.to_string().contains(argument), "{err}");
        }
        assert!(base.validate(&[change]).is_err());
        assert!(!base.is_flag_set(ClusterFlag::NoScrub));
    }
}

#[test]
fn changes_serialize_for_the_raft_log() {
    let map = cluster_from_crush(crush_map("racks3"));
    assert!(!map.crush().class_buckets.is_empty());
    let changes = vec![
        MapChange::CreatePool(PoolSpec::replicated("rep", 3, 64)),
        MapChange::SetCrushMap(Box::new(map.crush().clone())),
        MapChange::SetPgTemp {
            pgid: PgId::new(1, 0x1f),
            osds: vec![1, 2, ITEM_NONE],
        },
        MapChange::SetFlag(ClusterFlag::NoDeepScrub),
        MapChange::Crush(CrushEdit::Reweight {
            name: "osd.1".into(),
            weight: 7,
        }),
        MapChange::NewOsd(new_osd(osd_uuid(5), "h")),
        MapChange::SetOsdFullness {
            id: 1,
            fullness: Fullness::Nearfull,
        },
    ];
    let json = serde_json::to_string(&changes).unwrap();
    let back: Vec<MapChange> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, changes);
}
