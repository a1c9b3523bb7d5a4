//! Health rules: each check fires exactly when its condition holds, with Ceph's code,
//! severity and wording.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use clustermap::{
    health, ClusterFlag, ClusterMap, Fullness, HealthConfig, HealthInput, MapChange, PgId,
    PgStatReport, PgState, PoolSetting, PoolSpec, Severity,
};
use common::*;

/// 3 hosts x 2 OSDs, pool `rep` (size 3, min_size 2, 32 PGs, one OSD per host).
fn cluster() -> ClusterMap {
    small_cluster(3, 2)
        .apply(
            &[MapChange::CreatePool(PoolSpec::replicated("rep", 3, 32))],
            3_000,
        )
        .unwrap()
}

fn quorum(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn codes(map: &ClusterMap, input: &HealthInput<'_>) -> Vec<String> {
    health(map, input)
        .checks
        .into_iter()
        .map(|c| c.code)
        .collect()
}

/// PGs of pool 1 whose CRUSH result holds `osd`.
fn pgs_on(map: &ClusterMap, osd: i32) -> u64 {
    (0..32)
        .filter(|ps| map.pg_to_raw(PgId::new(1, *ps)).unwrap().contains(&osd))
        .count() as u64
}

#[test]
fn a_healthy_cluster_is_ok() {
    let map = cluster();
    let all = quorum(&["a", "b", "c"]);
    let report = health(
        &map,
        &HealthInput {
            quorum: Some(&all),
            ..Default::default()
        },
    );
    assert_eq!(report.status, Severity::Ok);
    assert!(report.checks.is_empty(), "{:?}", report.checks);
    assert_eq!(report.to_string(), "HEALTH_OK");
}

#[test]
fn a_down_osd_warns_and_degrades_its_pgs() {
    let map = cluster()
        .apply(&[MapChange::MarkDown { id: 0 }], 4_000)
        .unwrap();
    let report = health(&map, &HealthInput::default());
    assert_eq!(report.status, Severity::Warn);
    let down = report.check("OSD_DOWN").unwrap();
    assert_eq!(down.severity, Severity::Warn);
    assert_eq!(down.summary, "1 osds down");
    assert_eq!(down.detail, vec!["osd.0 (root=default,host=h0) is down"]);
    let expected = pgs_on(&map, 0);
    assert!(expected > 0);
    let degraded = report.check("PG_DEGRADED").unwrap();
    assert_eq!(degraded.count, expected);
    let noun = if expected == 1 { "pg" } else { "pgs" };
    assert_eq!(
        degraded.summary,
        format!("Degraded data redundancy: {expected} {noun} undersized")
    );
    assert!(degraded.detail[0].contains("is undersized: acting ["));
    assert!(
        report.check("PG_AVAILABILITY").is_none(),
        "2 of 3 is still >= min_size"
    );
    assert!(report.check("OSD_HOST_DOWN").is_none(), "osd.1 of h0 is up");
    assert_eq!(
        report.to_string(),
        format!("HEALTH_WARN 1 osds down; Degraded data redundancy: {expected} {noun} undersized")
    );

    // Marked out, it no longer counts as down, and CRUSH re-places its data on osd.1.
    let out = map.apply(&[MapChange::MarkOut { id: 0 }], 5_000).unwrap();
    let report = health(&out, &HealthInput::default());
    assert_eq!(report.status, Severity::Ok, "{report}");
}

fn set_fullness(map: &ClusterMap, osds: &[(i32, Fullness)]) -> ClusterMap {
    let changes: Vec<MapChange> = osds
        .iter()
        .map(|&(id, fullness)| MapChange::SetOsdFullness { id, fullness })
        .collect();
    map.apply(&changes, 4_000).unwrap()
}

#[test]
fn a_nearfull_osd_warns() {
    let map = set_fullness(&cluster(), &[(3, Fullness::Nearfull)]);
    let report = health(&map, &HealthInput::default());
    assert_eq!(report.status, Severity::Warn);
    let check = report.check("OSD_NEARFULL").unwrap();
    assert_eq!(check.severity, Severity::Warn);
    assert_eq!(check.summary, "1 nearfull osd(s)");
    assert_eq!(check.detail, vec!["osd.3 is near full"]);
    assert_eq!(check.count, 1);
    assert!(report.check("OSD_FULL").is_none());
    assert_eq!(report.to_string(), "HEALTH_WARN 1 nearfull osd(s)");
}

#[test]
fn a_full_osd_is_an_error_and_counts_apart_from_nearfull_ones() {
    let map = set_fullness(
        &cluster(),
        &[
            (0, Fullness::Full),
            (2, Fullness::Nearfull),
            (4, Fullness::Nearfull),
        ],
    );
    let report = health(&map, &HealthInput::default());
    assert_eq!(report.status, Severity::Err);
    let full = report.check("OSD_FULL").unwrap();
    assert_eq!(full.severity, Severity::Err);
    assert_eq!(full.summary, "1 full osd(s)");
    assert_eq!(full.detail, vec!["osd.0 is full"]);
    let nearfull = report.check("OSD_NEARFULL").unwrap();
    assert_eq!(nearfull.summary, "2 nearfull osd(s)");
    assert_eq!(
        nearfull.detail,
        vec!["osd.2 is near full", "osd.4 is near full"]
    );
    assert_eq!(
        report.checks[0].code, "OSD_FULL",
        "errors come before warnings"
    );

    // A down OSD keeps its judgement; a removed one is gone with it.
    let down = map.apply(&[MapChange::MarkDown { id: 0 }], 5_000).unwrap();
    let report = health(&down, &HealthInput::default());
    assert_eq!(
        report.check("OSD_FULL").unwrap().detail,
        vec!["osd.0 is full"]
    );
    let removed = down
        .apply(&[MapChange::RemoveOsd { id: 0 }], 6_000)
        .unwrap();
    assert!(health(&removed, &HealthInput::default())
        .check("OSD_FULL")
        .is_none());

    // Back to ok, the checks clear.
    let ok = set_fullness(
        &map,
        &[(0, Fullness::Ok), (2, Fullness::Ok), (4, Fullness::Ok)],
    );
    assert_eq!(health(&ok, &HealthInput::default()).status, Severity::Ok);
}

#[test]
fn fullness_detail_lines_are_capped() {
    let map = set_fullness(
        &cluster(),
        &[
            (0, Fullness::Full),
            (1, Fullness::Full),
            (2, Fullness::Full),
        ],
    );
    let report = health(
        &map,
        &HealthInput {
            config: HealthConfig {
                max_detail_lines: 2,
                ..HealthConfig::default()
            },
            ..Default::default()
        },
    );
    let full = report.check("OSD_FULL").unwrap();
    assert_eq!(full.summary, "3 full osd(s)");
    assert_eq!(full.count, 3);
    assert_eq!(
        full.detail,
        vec!["osd.0 is full", "osd.1 is full", "... and 1 more"]
    );
}

#[test]
fn a_whole_host_down_and_then_two() {
    let map = cluster()
        .apply(
            &[MapChange::MarkDown { id: 0 }, MapChange::MarkDown { id: 1 }],
            4_000,
        )
        .unwrap();
    let report = health(&map, &HealthInput::default());
    let host = report.check("OSD_HOST_DOWN").unwrap();
    assert_eq!(host.summary, "1 host (2 osds) down");
    assert_eq!(host.detail, vec!["host h0 with 2 osds is down"]);
    assert_eq!(report.check("OSD_DOWN").unwrap().summary, "2 osds down");
    assert_eq!(
        report.check("PG_DEGRADED").unwrap().count,
        32,
        "every PG had one OSD on h0"
    );

    let map = map
        .apply(
            &[MapChange::MarkDown { id: 2 }, MapChange::MarkDown { id: 3 }],
            5_000,
        )
        .unwrap();
    let config = HealthConfig {
        max_detail_lines: 5,
        ..Default::default()
    };
    let report = health(
        &map,
        &HealthInput {
            config,
            ..Default::default()
        },
    );
    assert_eq!(
        report.check("OSD_HOST_DOWN").unwrap().summary,
        "2 hosts (4 osds) down"
    );
    let availability = report.check("PG_AVAILABILITY").unwrap();
    assert_eq!(
        availability.summary,
        "Reduced data availability: 32 pgs inactive"
    );
    assert_eq!(availability.count, 32);
    assert_eq!(availability.detail.len(), 6);
    assert_eq!(availability.detail[5], "... and 27 more");
    assert!(
        availability.detail[0].contains("has 1 of min_size 2 OSDs"),
        "{}",
        availability.detail[0]
    );
}

#[test]
fn flags_pools_osd_count_and_monitors() {
    let map = cluster()
        .apply(
            &[
                MapChange::SetFlag(ClusterFlag::NoOut),
                MapChange::SetFlag(ClusterFlag::NoScrub),
                MapChange::CreatePool(PoolSpec::replicated("scratch", 1, 8)),
            ],
            4_000,
        )
        .unwrap();
    let two = quorum(&["a", "b"]);
    let report = health(
        &map,
        &HealthInput {
            quorum: Some(&two),
            ..Default::default()
        },
    );
    assert_eq!(
        report
            .checks
            .iter()
            .map(|c| c.code.as_str())
            .collect::<Vec<_>>(),
        ["MON_DOWN", "OSDMAP_FLAGS", "POOL_NO_REDUNDANCY"]
    );
    let flags = report.check("OSDMAP_FLAGS").unwrap();
    assert_eq!(flags.summary, "noout,noscrub flag(s) set");
    let mon = report.check("MON_DOWN").unwrap();
    assert_eq!(mon.summary, "1/3 mons down, quorum a,b");
    assert_eq!(
        mon.detail,
        vec!["mon.c (rank 2) addr 10.0.0.3:7100 is down (out of quorum)"]
    );
    let pools = report.check("POOL_NO_REDUNDANCY").unwrap();
    assert_eq!(pools.summary, "1 pool(s) have no replicas configured");
    assert_eq!(
        pools.detail,
        vec!["pool 'scratch' has no replicas configured"]
    );

    // Flags cleared, size raised, full quorum: healthy again.
    let map = map
        .apply(
            &[
                MapChange::UnsetFlag(ClusterFlag::NoOut),
                MapChange::UnsetFlag(ClusterFlag::NoScrub),
                MapChange::SetPool {
                    name: "scratch".into(),
                    setting: PoolSetting::Size(3),
                },
            ],
            5_000,
        )
        .unwrap();
    let all = quorum(&["a", "b", "c"]);
    assert!(codes(
        &map,
        &HealthInput {
            quorum: Some(&all),
            ..Default::default()
        }
    )
    .is_empty());

    let tiny = small_cluster(1, 2);
    let report = health(&tiny, &HealthInput::default());
    assert_eq!(
        report.check("TOO_FEW_OSDS").unwrap().summary,
        "OSD count 2 < osd_pool_default_size 3"
    );
    assert!(report.check("TOO_FEW_OSDS").unwrap().detail.is_empty());
    let off = HealthConfig {
        osd_pool_default_size: 0,
        ..Default::default()
    };
    assert!(codes(
        &tiny,
        &HealthInput {
            config: off,
            ..Default::default()
        }
    )
    .is_empty());
}

fn clean(ms: u64) -> PgStatReport {
    PgStatReport {
        states: [PgState::Active, PgState::Clean].into(),
        reported_epoch: 5,
        reported_ms: ms,
        num_objects: 10,
        ..Default::default()
    }
}

#[test]
fn pg_reports_add_damage_degradation_staleness_and_unknowns() {
    let map = cluster();
    let now = 3_000_000;
    let mut stats: BTreeMap<PgId, PgStatReport> = (0..32)
        .map(|ps| (PgId::new(1, ps), clean(now - 1_000)))
        .collect();
    let mut inconsistent = clean(now);
    inconsistent.states.insert(PgState::Inconsistent);
    inconsistent.scrub_errors = 2;
    stats.insert(PgId::new(1, 3), inconsistent);
    let mut degraded = clean(now);
    degraded.states = [PgState::Active, PgState::Degraded, PgState::Recovering].into();
    degraded.num_objects_degraded = 5;
    degraded.num_objects_unfound = 1;
    stats.insert(PgId::new(1, 4), degraded);
    stats.insert(PgId::new(1, 5), clean(now - 2_000_000));
    stats.remove(&PgId::new(1, 6));
    let mut down = clean(now);
    down.states = [PgState::Down, PgState::Peering].into();
    stats.insert(PgId::new(1, 7), down);
    // A report for a PG that does not exist is ignored.
    stats.insert(PgId::new(9, 0), clean(now));

    let input = HealthInput {
        pg_stats: Some(&stats),
        now_ms: Some(now),
        ..Default::default()
    };
    let report = health(&map, &input);
    assert_eq!(report.status, Severity::Err);
    assert_eq!(
        report
            .checks
            .iter()
            .map(|c| (c.code.as_str(), c.severity))
            .collect::<Vec<_>>(),
        [
            ("OSD_SCRUB_ERRORS", Severity::Err),
            ("PG_DAMAGED", Severity::Err),
            ("OBJECT_UNFOUND", Severity::Warn),
            ("PG_AVAILABILITY", Severity::Warn),
            ("PG_DEGRADED", Severity::Warn),
        ]
    );
    assert_eq!(
        report.check("OSD_SCRUB_ERRORS").unwrap().summary,
        "2 scrub errors"
    );
    let damaged = report.check("PG_DAMAGED").unwrap();
    assert_eq!(damaged.summary, "Possible data damage: 1 pg inconsistent");
    assert!(damaged.detail[0]
        .starts_with("pg 1.3 is inconsistent, current state active+clean+inconsistent, acting ["));
    let availability = report.check("PG_AVAILABILITY").unwrap();
    assert_eq!(
        availability.summary,
        "Reduced data availability: 1 pg down, 1 pg peering, 1 pg stale, 1 pg unknown"
    );
    assert!(availability
        .detail
        .contains(&"pg 1.5 is stale: last reported 2000 s ago".to_string()));
    assert!(availability
        .detail
        .contains(&"pg 1.6 is unknown: no report".to_string()));
    // 31 reports x 10 objects x size 3 copies.
    let degraded = report.check("PG_DEGRADED").unwrap();
    assert_eq!(
        degraded.summary,
        "Degraded data redundancy: 5/930 objects degraded (0.538%), 1 pg degraded"
    );
    assert_eq!(
        report.check("OBJECT_UNFOUND").unwrap().summary,
        "1/310 objects unfound (0.323%)"
    );
    assert!(report
        .to_string()
        .starts_with("HEALTH_ERR 2 scrub errors; Possible data damage"));

    // Without a clock nothing is stale by age.
    let no_clock = HealthInput {
        pg_stats: Some(&stats),
        ..Default::default()
    };
    let summary = health(&map, &no_clock)
        .check("PG_AVAILABILITY")
        .unwrap()
        .summary
        .clone();
    assert!(!summary.contains("stale"), "{summary}");
}

#[test]
fn health_serializes_with_ceph_status_names() {
    let map = cluster()
        .apply(&[MapChange::MarkDown { id: 5 }], 4_000)
        .unwrap();
    let report = health(&map, &HealthInput::default());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["status"], "HEALTH_WARN");
    assert_eq!(json["checks"][0]["code"], "OSD_DOWN");
    let states: BTreeSet<PgState> = [PgState::BackfillWait, PgState::Active].into();
    assert_eq!(
        clustermap::health::format_pg_states(&states),
        "active+backfill_wait"
    );
    assert_eq!(
        serde_json::to_string(&PgState::BackfillWait).unwrap(),
        "\"backfill_wait\""
    );
}
