//! Incrementals: `diff(old, new).apply_to(old) == new` for maps built by random change
//! sequences, serialization round trips, and the checks that refuse a wrong base map.

mod common;

use clustermap::{
    ClusterFlag, ClusterMap, CrushEdit, Fullness, Incremental, IncrementalError, MapChange,
    MonitorInfo, NewOsd, PgId, PoolSetting, PoolSpec,
};
use common::*;
use proptest::prelude::*;

/// A random edit, interpreted against the current map (ids are taken modulo what exists).
#[derive(Clone, Debug)]
enum Op {
    Down(u8),
    Out(u8),
    In(u8),
    Boot(u8),
    Reweight(u8, u32),
    Fullness(u8, u8),
    CrushReweight(u8, u32),
    NewOsd(u8),
    RemoveOsd(u8),
    CreatePool(u8, u32, u32),
    RemovePool(u8),
    PoolSize(u8, u32),
    PoolPgNum(u8, u32),
    PgTemp(u8, u32, Vec<u8>),
    PrimaryTemp(u8, u32, Option<u8>),
    Flag(u8, bool),
    AddMonitor(u8),
    RemoveMonitor(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(Op::Down),
        any::<u8>().prop_map(Op::Out),
        any::<u8>().prop_map(Op::In),
        any::<u8>().prop_map(Op::Boot),
        (any::<u8>(), 1u32..=0x10000).prop_map(|(o, w)| Op::Reweight(o, w)),
        (any::<u8>(), 0u8..3).prop_map(|(o, f)| Op::Fullness(o, f)),
        (any::<u8>(), 0u32..0x40000).prop_map(|(o, w)| Op::CrushReweight(o, w)),
        any::<u8>().prop_map(Op::NewOsd),
        any::<u8>().prop_map(Op::RemoveOsd),
        (any::<u8>(), 1u32..5, 1u32..40).prop_map(|(n, s, p)| Op::CreatePool(n, s, p)),
        any::<u8>().prop_map(Op::RemovePool),
        (any::<u8>(), 1u32..5).prop_map(|(p, s)| Op::PoolSize(p, s)),
        (any::<u8>(), 1u32..40).prop_map(|(p, n)| Op::PoolPgNum(p, n)),
        (
            any::<u8>(),
            0u32..40,
            proptest::collection::vec(any::<u8>(), 0..4)
        )
            .prop_map(|(p, ps, o)| Op::PgTemp(p, ps, o)),
        (any::<u8>(), 0u32..40, proptest::option::of(any::<u8>()))
            .prop_map(|(p, ps, o)| Op::PrimaryTemp(p, ps, o)),
        (0u8..11, any::<bool>()).prop_map(|(f, on)| Op::Flag(f, on)),
        any::<u8>().prop_map(Op::AddMonitor),
        any::<u8>().prop_map(Op::RemoveMonitor),
    ]
}

fn nth<T: Copy>(items: &[T], n: u8) -> Option<T> {
    (!items.is_empty()).then(|| items[n as usize % items.len()])
}

fn to_change(map: &ClusterMap, op: &Op) -> Option<MapChange> {
    let osds: Vec<i32> = map.osds().keys().copied().collect();
    let pools: Vec<String> = map.pools().values().map(|p| p.name.clone()).collect();
    let pool_ids: Vec<i64> = map.pools().keys().copied().collect();
    Some(match op {
        Op::Down(o) => MapChange::MarkDown {
            id: nth(&osds, *o)?,
        },
        Op::Out(o) => MapChange::MarkOut {
            id: nth(&osds, *o)?,
        },
        Op::In(o) => MapChange::MarkIn {
            id: nth(&osds, *o)?,
        },
        Op::Boot(o) => {
            let id = nth(&osds, *o)?;
            MapChange::BootOsd {
                id,
                uuid: map.osd(id)?.uuid,
                address: format!("10.9.0.{o}:7200"),
            }
        }
        Op::Reweight(o, w) => MapChange::Reweight {
            id: nth(&osds, *o)?,
            weight: *w,
        },
        Op::Fullness(o, f) => MapChange::SetOsdFullness {
            id: nth(&osds, *o)?,
            fullness: [Fullness::Ok, Fullness::Nearfull, Fullness::Full][usize::from(*f)],
        },
        Op::CrushReweight(o, w) => MapChange::Crush(CrushEdit::Reweight {
            name: format!("osd.{}", nth(&osds, *o)?),
            weight: *w,
        }),
        Op::NewOsd(n) => MapChange::NewOsd(NewOsd {
            uuid: osd_uuid(1000 + i32::from(*n)),
            id: None,
            host: format!("h{}", n % 4),
            location: Vec::new(),
            crush_weight: crush::WEIGHT_ONE,
            device_class: None,
        }),
        Op::RemoveOsd(o) => MapChange::RemoveOsd {
            id: nth(&osds, *o)?,
        },
        Op::CreatePool(n, size, pg_num) => {
            MapChange::CreatePool(PoolSpec::replicated(&format!("pool{n}"), *size, *pg_num))
        }
        Op::RemovePool(p) => MapChange::RemovePool {
            name: nth_string(&pools, *p)?,
        },
        Op::PoolSize(p, s) => MapChange::SetPool {
            name: nth_string(&pools, *p)?,
            setting: PoolSetting::Size(*s),
        },
        Op::PoolPgNum(p, n) => MapChange::SetPool {
            name: nth_string(&pools, *p)?,
            setting: PoolSetting::PgNum(*n),
        },
        Op::PgTemp(p, ps, members) => MapChange::SetPgTemp {
            pgid: PgId::new(nth(&pool_ids, *p)?, *ps),
            osds: members.iter().filter_map(|m| nth(&osds, *m)).collect(),
        },
        Op::PrimaryTemp(p, ps, osd) => MapChange::SetPrimaryTemp {
            pgid: PgId::new(nth(&pool_ids, *p)?, *ps),
            osd: match osd {
                Some(o) => Some(nth(&osds, *o)?),
                None => None,
            },
        },
        Op::Flag(f, on) => {
            let flag = ClusterFlag::ALL[*f as usize % ClusterFlag::ALL.len()];
            if *on {
                MapChange::SetFlag(flag)
            } else {
                MapChange::UnsetFlag(flag)
            }
        }
        Op::AddMonitor(n) => MapChange::AddMonitor(MonitorInfo {
            name: format!("m{n}"),
            address: format!("10.8.0.{n}:7100"),
        }),
        Op::RemoveMonitor(n) => {
            let names: Vec<String> = map.monitors().iter().map(|m| m.name.clone()).collect();
            MapChange::RemoveMonitor {
                name: nth_string(&names, *n)?,
            }
        }
    })
}

fn nth_string(items: &[String], n: u8) -> Option<String> {
    (!items.is_empty()).then(|| items[n as usize % items.len()].clone())
}

/// Applies batches of random ops; refused batches are skipped. Returns every epoch.
fn history(batches: &[Vec<Op>]) -> Vec<ClusterMap> {
    let mut maps = vec![small_cluster(2, 2)];
    for (i, batch) in batches.iter().enumerate() {
        let current = maps.last().unwrap();
        let changes: Vec<MapChange> = batch
            .iter()
            .filter_map(|op| to_change(current, op))
            .collect();
        if let Ok(next) = current.apply(&changes, 10_000 + i as u64) {
            maps.push(next);
        }
    }
    maps
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn diff_then_apply_reproduces_the_newer_map(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..4), 1..25)
    ) {
        let maps = history(&batches);
        for i in 0..maps.len() {
            for j in (i + 1)..maps.len() {
                let inc = Incremental::diff(&maps[i], &maps[j]).unwrap();
                prop_assert_eq!(inc.from_epoch, maps[i].epoch());
                prop_assert_eq!(inc.to_epoch, maps[j].epoch());
                let rebuilt = inc.apply_to(&maps[i]).unwrap();
                prop_assert_eq!(&rebuilt, &maps[j]);
                // The rebuilt map places data exactly like the original.
                if let Some(pool) = maps[j].pools().keys().next() {
                    let pg = PgId::new(*pool, 0);
                    prop_assert_eq!(rebuilt.pg_to_up_acting(pg), maps[j].pg_to_up_acting(pg));
                }
            }
        }
        // Serialized forms round-trip.
        let last = maps.last().unwrap();
        let json = serde_json::to_string(last).unwrap();
        let back: ClusterMap = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, last);
        let inc = Incremental::diff(&maps[0], last);
        if let Ok(inc) = inc {
            let json = serde_json::to_string(&inc).unwrap();
            let back: Incremental = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, &inc);
            prop_assert_eq!(back.apply_to(&maps[0]).unwrap(), last.clone());
        }
    }
}

#[test]
fn consecutive_incrementals_chain() {
    let m1 = small_cluster(3, 2);
    let m2 = m1
        .apply(
            &[MapChange::CreatePool(PoolSpec::replicated("rep", 3, 32))],
            1,
        )
        .unwrap();
    let m3 = m2
        .apply(
            &[
                MapChange::MarkDown { id: 3 },
                MapChange::SetPgTemp {
                    pgid: PgId::new(1, 4),
                    osds: vec![0, 2, 4],
                },
            ],
            2,
        )
        .unwrap();
    let m4 = m3
        .apply(
            &[
                MapChange::RemoveOsd { id: 3 },
                MapChange::SetPgTemp {
                    pgid: PgId::new(1, 4),
                    osds: vec![],
                },
            ],
            3,
        )
        .unwrap();
    let inc12 = Incremental::diff(&m1, &m2).unwrap();
    let inc23 = Incremental::diff(&m2, &m3).unwrap();
    let inc34 = Incremental::diff(&m3, &m4).unwrap();
    assert_eq!(inc12.pools_set.len(), 1);
    assert!(inc12.osds_set.is_empty() && inc12.crush.is_none());
    assert_eq!(inc23.osds_set.keys().copied().collect::<Vec<_>>(), vec![3]);
    assert_eq!(inc23.pg_temp_set.len(), 1);
    assert!(inc23.crush.is_none(), "marking down does not touch CRUSH");
    assert_eq!(
        inc34.osds_removed.iter().copied().collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(inc34.pg_temp_removed.len(), 1);
    assert!(inc34.crush.is_some(), "removing an OSD edits CRUSH");
    let rebuilt = inc34
        .apply_to(&inc23.apply_to(&inc12.apply_to(&m1).unwrap()).unwrap())
        .unwrap();
    assert_eq!(rebuilt, m4);
    // One incremental may span several epochs.
    assert_eq!(
        Incremental::diff(&m1, &m4).unwrap().apply_to(&m1).unwrap(),
        m4
    );
}

#[test]
fn an_epoch_that_changes_nothing_has_an_empty_incremental() {
    let m1 = small_cluster(1, 1);
    let m2 = m1.apply(&[MapChange::MarkIn { id: 0 }], 99).unwrap();
    let inc = Incremental::diff(&m1, &m2).unwrap();
    assert!(inc.is_empty());
    assert_eq!(inc.modified_ms, 99);
    assert_eq!(inc.apply_to(&m1).unwrap(), m2);
    let m3 = m2.apply(&[MapChange::MarkOut { id: 0 }], 100).unwrap();
    assert!(!Incremental::diff(&m2, &m3).unwrap().is_empty());
}

#[test]
fn an_osds_fullness_travels_in_incrementals_and_json() {
    let m1 = small_cluster(2, 1);
    let m2 = m1
        .apply(
            &[
                MapChange::SetOsdFullness {
                    id: 0,
                    fullness: Fullness::Full,
                },
                MapChange::SetOsdFullness {
                    id: 1,
                    fullness: Fullness::Nearfull,
                },
            ],
            50,
        )
        .unwrap();
    let inc = Incremental::diff(&m1, &m2).unwrap();
    assert!(!inc.is_empty());
    let inc: Incremental = serde_json::from_str(&serde_json::to_string(&inc).unwrap()).unwrap();
    let rebuilt = inc.apply_to(&m1).unwrap();
    assert_eq!(rebuilt, m2);
    assert_eq!(rebuilt.osd(0).unwrap().fullness, Fullness::Full);
    assert_eq!(rebuilt.osd(1).unwrap().fullness, Fullness::Nearfull);
    let json = serde_json::to_value(&m2).unwrap();
    let osds = json.to_string();
    assert!(osds.contains(r#""fullness":"full""#), "{osds}");
    assert!(osds.contains(r#""fullness":"nearfull""#), "{osds}");

    // Maps written before the field existed read as ok.
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(fields) => {
                fields.remove("fullness");
                fields.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut old = serde_json::to_value(&m1).unwrap();
    strip(&mut old);
    assert!(!old.to_string().contains("fullness"));
    assert_eq!(serde_json::from_value::<ClusterMap>(old).unwrap(), m1);

    // Back to ok is a change too.
    let m3 = m2
        .apply(
            &[MapChange::SetOsdFullness {
                id: 0,
                fullness: Fullness::Ok,
            }],
            60,
        )
        .unwrap();
    let rebuilt = Incremental::diff(&m2, &m3).unwrap().apply_to(&m2).unwrap();
    assert_eq!(rebuilt.osd(0).unwrap().fullness, Fullness::Ok);
    assert_eq!(rebuilt, m3);
}

#[test]
fn incrementals_refuse_the_wrong_base() {
    let m1 = small_cluster(1, 1);
    let m2 = m1.apply(&[MapChange::MarkOut { id: 0 }], 5).unwrap();
    let m3 = m2.apply(&[MapChange::MarkIn { id: 0 }], 6).unwrap();
    let inc = Incremental::diff(&m2, &m3).unwrap();
    assert_eq!(
        inc.apply_to(&m1).unwrap_err(),
        IncrementalError::EpochMismatch {
            expected: m2.epoch(),
            found: m1.epoch()
        }
    );
    assert_eq!(
        Incremental::diff(&m3, &m2).unwrap_err(),
        IncrementalError::NotNewer {
            from: m3.epoch(),
            to: m2.epoch()
        }
    );
    assert!(matches!(
        Incremental::diff(&m2, &m2),
        Err(IncrementalError::NotNewer { .. })
    ));

    let other_fsid: clustermap::Uuid = "00000000-0000-0000-0000-000000000001".parse().unwrap();
    let other = ClusterMap::new(
        other_fsid,
        0,
        monitors(&["a"]),
        crush::CrushMap::new_default(),
    )
    .unwrap();
    assert!(matches!(
        Incremental::diff(&other, &m3),
        Err(IncrementalError::FsidMismatch { .. })
    ));
    let mut foreign = inc.clone();
    foreign.fsid = other_fsid;
    assert!(matches!(
        foreign.apply_to(&m2),
        Err(IncrementalError::FsidMismatch { .. })
    ));
    let mut backwards = inc.clone();
    backwards.to_epoch = backwards.from_epoch;
    assert!(matches!(
        backwards.apply_to(&m2),
        Err(IncrementalError::NotNewer { .. })
    ));
    let mut future = inc;
    future.format_version = 99;
    assert!(matches!(
        future.apply_to(&m2),
        Err(IncrementalError::UnsupportedFormat { found: 99, .. })
    ));
    assert_eq!(
        m2.apply_incremental(&Incremental::diff(&m2, &m3).unwrap())
            .unwrap(),
        m3
    );
}

#[test]
fn maps_with_device_classes_round_trip_through_json_and_carry_their_version() {
    let map = cluster_from_crush(crush_map("racks3"))
        .apply(
            &[MapChange::CreatePool(PoolSpec::replicated("rep", 3, 128))],
            5,
        )
        .unwrap();
    assert!(!map.crush().class_buckets.is_empty());
    let json = serde_json::to_value(&map).unwrap();
    assert_eq!(json["format_version"], 1);
    let back: ClusterMap = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, map);
    assert_eq!(
        back.pg_to_raw(PgId::new(1, 7)),
        map.pg_to_raw(PgId::new(1, 7))
    );

    let mut newer = json;
    newer["format_version"] = 2.into();
    let err = serde_json::from_value::<ClusterMap>(newer).unwrap_err();
    assert!(
        err.to_string()
            .contains("format version 2 is not supported"),
        "{err}"
    );
}
