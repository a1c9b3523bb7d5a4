//! The failure policy of DESIGN.md §4, driven through the same `OsdReport` gRPC calls an
//! OSD makes (sent to a follower, so forwarding to the leader is exercised too), with short
//! test timings: grace 500 ms, report timeout 2 s, down-out interval 1 s.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use clustermap::Fullness;
use common::{command, ok_epoch, wait_until, Cluster};
use proto::mon::command::Kind;
use proto::mon::osd_report_client::OsdReportClient;
use proto::mon::{
    Command, FailureReport, OsdBeacon, OsdBootRequest, PgStat, PgStatsReport, StatusRequest,
};
use tonic::transport::Channel;

async fn osd_client(addr: &str) -> OsdReportClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    OsdReportClient::new(channel)
}

fn boot_request(n: u8, host: &str) -> OsdBootRequest {
    OsdBootRequest {
        uuid: format!("00000000-0000-4000-8000-0000000000{n:02x}"),
        osd_id: None,
        addr: format!("127.0.0.1:{}", 7200 + u16::from(n)),
        host: host.to_owned(),
        crush_location: HashMap::new(),
        weight: Some(1.0),
        device_class: String::new(),
        epoch: 0,
    }
}

fn flag(kind: Kind) -> Command {
    Command { kind: Some(kind) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn boots_reports_beacons_and_the_down_out_policy() {
    let cluster = Cluster::start(3).await;
    let follower = cluster.follower().await;
    let addr = cluster.server(follower).addr().to_string();
    let mut osd = osd_client(&addr).await;

    // Boot three OSDs on three hosts: ids 0, 1, 2, up and in, placed in CRUSH.
    let mut ids = Vec::new();
    let mut epoch = 0;
    for (n, host) in [(0u8, "h0"), (1, "h1"), (2, "h2")] {
        let reply = osd
            .boot(boot_request(n, host))
            .await
            .expect("boot")
            .into_inner();
        ids.push(reply.osd_id);
        epoch = reply.epoch;
    }
    assert_eq!(ids, vec![0, 1, 2]);
    cluster.wait_epoch(epoch as u32).await;
    let map = cluster.server(follower).view().map.unwrap();
    for id in &ids {
        assert!(map.is_up(*id) && map.is_in(*id), "osd.{id} up and in");
        assert!(map.crush_weight(*id).is_some(), "osd.{id} placed in CRUSH");
    }
    // A second boot of the same uuid keeps its id.
    let again = osd
        .boot(boot_request(1, "h1"))
        .await
        .expect("reboot")
        .into_inner();
    assert_eq!(again.osd_id, 1);

    // Keep 0 and 2 alive with beacons; 1 stays silent too, but is reported first.
    let beacons = {
        let mut osd = osd.clone();
        tokio::spawn(async move {
            loop {
                for id in [0, 2] {
                    let _ = osd
                        .beacon(OsdBeacon {
                            osd_id: id,
                            epoch: 0,
                            ..OsdBeacon::default()
                        })
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let mut admin = cluster.client(follower).await;
    ok_epoch(
        &command(
            &mut admin,
            flag(Kind::SetFlag("noout".into())),
            Duration::from_secs(5),
        )
        .await,
    );

    // One reporting host is not enough (min_down_reporters = 2) ...
    let report = |reporter, failed_for_ms, alive| FailureReport {
        reporter,
        target: 1,
        failed_for_ms,
        alive,
        epoch: 0,
    };
    osd.report_failure(report(0, 600, false))
        .await
        .expect("report");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        cluster.server(follower).view().map.unwrap().is_up(1),
        "one host is not enough"
    );
    // ... a withdrawn report does not count ...
    osd.report_failure(report(2, 600, false))
        .await
        .expect("report");
    osd.report_failure(report(2, 0, true))
        .await
        .expect("withdraw");
    // ... but two hosts past the grace mark it down (well before the 2 s beacon timeout).
    osd.report_failure(report(2, 600, false))
        .await
        .expect("report");
    wait_until("osd.1 down", Duration::from_secs(1), || {
        !cluster.server(follower).view().map.unwrap().is_up(1)
    })
    .await;
    // noout keeps it in past the down-out interval.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        cluster.server(follower).view().map.unwrap().is_in(1),
        "noout keeps it in"
    );
    ok_epoch(
        &command(
            &mut admin,
            flag(Kind::UnsetFlag("noout".into())),
            Duration::from_secs(5),
        )
        .await,
    );
    wait_until("osd.1 out", Duration::from_secs(3), || {
        !cluster.server(follower).view().map.unwrap().is_in(1)
    })
    .await;
    // Its reboot marks it up, and back in (it was marked out by the policy).
    let reply = osd
        .boot(boot_request(1, "h1"))
        .await
        .expect("boot")
        .into_inner();
    cluster.wait_epoch(reply.epoch as u32).await;
    let map = cluster.server(follower).view().map.unwrap();
    assert!(map.is_up(1) && map.is_in(1));
    // The beaconing OSDs stayed up all along.
    assert!(map.is_up(0) && map.is_up(2));
    // Reports filed about its previous life (silent for 10 s, longer than it has been up)
    // do not mark the new incarnation down: silence counts from when it came up.
    osd.report_failure(report(0, 10_000, false))
        .await
        .expect("report");
    osd.report_failure(report(2, 10_000, false))
        .await
        .expect("report");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        cluster.server(follower).view().map.unwrap().is_up(1),
        "a rebooted OSD is not marked down by its old silence"
    );
    osd.report_failure(report(0, 0, true))
        .await
        .expect("withdraw");
    osd.report_failure(report(2, 0, true))
        .await
        .expect("withdraw");

    // An OSD that stops sending beacons is marked down after the report timeout (noout
    // keeps them in, so health reports them as down OSDs that are in).
    ok_epoch(
        &command(
            &mut admin,
            flag(Kind::SetFlag("noout".into())),
            Duration::from_secs(5),
        )
        .await,
    );
    beacons.abort();
    wait_until("silent OSDs down", Duration::from_secs(5), || {
        let map = cluster.server(follower).view().map.unwrap();
        !map.is_up(0) && !map.is_up(2)
    })
    .await;

    // PG statistics reach the leader's health report.
    osd.report_pg_stats(PgStatsReport {
        osd_id: 0,
        epoch: 0,
        pgs: vec![PgStat {
            pool: 1,
            seed: 0,
            state: "active+clean".to_owned(),
            num_objects: 5,
            num_bytes: 500,
            num_objects_degraded: 0,
            num_objects_inconsistent: 0,
        }],
    })
    .await
    .expect("pg stats");
    let bad = osd
        .report_pg_stats(PgStatsReport {
            osd_id: 0,
            epoch: 0,
            pgs: vec![PgStat {
                pool: 1,
                seed: 1,
                state: "active+sparkly".to_owned(),
                ..PgStat::default()
            }],
        })
        .await
        .expect_err("an unknown state is refused");
    assert!(bad.message().contains("sparkly"));
    let status = admin
        .status(StatusRequest { local_only: false })
        .await
        .expect("status")
        .into_inner();
    let pgs = status.pgs.expect("pg summary from the leader");
    assert_eq!(pgs.num_objects, 5);
    assert_eq!(pgs.by_state.get("active+clean"), Some(&1));
    let health = status.health.expect("health");
    assert!(
        health.checks.iter().any(|check| check.code == "OSD_DOWN"),
        "{health:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_boot_without_a_weight_weighs_one_and_a_zero_weight_is_kept() {
    let cluster = Cluster::start(1).await;
    let mut osd = osd_client(&cluster.server(1).addr().to_string()).await;
    let mut unweighted = boot_request(0, "h0");
    unweighted.weight = None;
    let mut empty = boot_request(1, "h1");
    empty.weight = Some(0.0);
    let mut epoch = 0;
    for request in [unweighted, empty] {
        epoch = osd.boot(request).await.expect("boot").into_inner().epoch;
    }
    cluster.wait_epoch(epoch as u32).await;
    let map = cluster.server(1).view().map.unwrap();
    assert_eq!(map.crush_weight(0), Some(crush::WEIGHT_ONE));
    assert_eq!(
        map.crush_weight(1),
        Some(0),
        "weight 0 brings an OSD in without data"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_boots_are_refused_with_the_field_named() {
    let cluster = Cluster::start(1).await;
    let mut osd = osd_client(&cluster.server(1).addr().to_string()).await;
    let mut bad_uuid = boot_request(0, "h0");
    bad_uuid.uuid = "not-a-uuid".to_owned();
    let error = osd.boot(bad_uuid).await.expect_err("bad uuid");
    assert!(error.message().starts_with("uuid"), "{error}");
    let mut bad_host = boot_request(0, "h0");
    bad_host.host = "has space".to_owned();
    let error = osd.boot(bad_host).await.expect_err("bad host");
    assert!(error.message().starts_with("host"), "{error}");
    let mut bad_weight = boot_request(0, "h0");
    bad_weight.weight = Some(-3.0);
    let error = osd.boot(bad_weight).await.expect_err("bad weight");
    assert!(error.message().starts_with("weight"), "{error}");
    let epoch_before = cluster.server(1).view().epoch();
    let mut stolen = boot_request(0, "h0");
    osd.boot(stolen.clone()).await.expect("boot");
    stolen.osd_id = Some(5);
    let error = osd
        .boot(stolen)
        .await
        .expect_err("the uuid belongs to osd.0");
    assert!(error.message().contains("osd_id"), "{error}");
    assert_eq!(cluster.server(1).view().epoch(), epoch_before + 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn beacons_usage_marks_osds_full_and_nearfull_and_health_says_so() {
    let cluster = Cluster::start(3).await;
    let follower = cluster.follower().await;
    let mut osd = osd_client(&cluster.server(follower).addr().to_string()).await;
    for (n, host) in [(0u8, "h0"), (1, "h1")] {
        osd.boot(boot_request(n, host)).await.expect("boot");
    }
    let beacon = |osd_id: i32, bytes_total: u64, bytes_available: u64| OsdBeacon {
        osd_id,
        epoch: 0,
        bytes_total,
        bytes_available,
    };
    let fullness = |id: i32| {
        cluster
            .server(follower)
            .view()
            .map
            .and_then(|map| map.osd(id).map(|osd| osd.fullness))
    };

    osd.beacon(beacon(0, 1000, 40)).await.expect("beacon");
    osd.beacon(beacon(1, 1000, 100)).await.expect("beacon");
    wait_until("osd.0 full, osd.1 nearfull", Duration::from_secs(5), || {
        fullness(0) == Some(Fullness::Full) && fullness(1) == Some(Fullness::Nearfull)
    })
    .await;
    let mut admin = cluster.client(follower).await;
    let status = admin
        .status(StatusRequest { local_only: false })
        .await
        .expect("status")
        .into_inner();
    let health = status.health.expect("health");
    let check = |code: &str| {
        health
            .checks
            .iter()
            .find(|check| check.code == code)
            .unwrap_or_else(|| panic!("{code} in {health:?}"))
            .clone()
    };
    assert_eq!(check("OSD_FULL").summary, "1 full osd(s)");
    assert_eq!(check("OSD_FULL").detail, vec!["osd.0 is full"]);
    assert_eq!(check("OSD_NEARFULL").summary, "1 nearfull osd(s)");

    // An unknown size changes nothing; freed space clears it.
    osd.beacon(beacon(0, 0, 0)).await.expect("beacon");
    osd.beacon(beacon(1, 1000, 900)).await.expect("beacon");
    wait_until("osd.1 ok", Duration::from_secs(5), || {
        fullness(1) == Some(Fullness::Ok)
    })
    .await;
    assert_eq!(fullness(0), Some(Fullness::Full));
    cluster.shutdown().await;
}
