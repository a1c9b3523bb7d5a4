//! `shoal osd map POOL OBJ` checked against clustermap's own computation on the same map,
//! with OSDs registered through the monitors' OSD-facing `Boot` call (six OSDs on three
//! hosts), plus the JSON forms of the read commands (`status`, `osd tree`, `osd dump`,
//! `osd pool ls detail`, `mon stat`).

use std::collections::{BTreeMap, BTreeSet};

use deploy::ClusterSpec;
use librados::proto::mon::osd_report_client::OsdReportClient;
use librados::proto::mon::OsdBootRequest;
use serde_json::Value;
use shoal_tests::{describe, shoal, start_with};

/// Registers an OSD as a booting `shoal-osd` would; returns its id.
async fn boot_osd(addr: &str, index: u32, host: &str) -> i32 {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint")
        .connect()
        .await
        .expect("connect to a monitor");
    OsdReportClient::new(channel)
        .boot(OsdBootRequest {
            uuid: format!("00000000-0000-4000-8000-{index:012x}"),
            osd_id: None,
            addr: format!("127.0.0.1:{}", 7200 + index),
            host: host.to_owned(),
            crush_location: Default::default(),
            weight: Some(1.0),
            device_class: "hdd".to_owned(),
            epoch: 0,
        })
        .await
        .expect("boot an OSD")
        .into_inner()
        .osd_id
}

fn run_json(conf: &std::path::Path, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["--format", "json"]);
    let output = shoal(conf, &full);
    assert!(
        output.status.success(),
        "`shoal {}`:\n{}",
        full.join(" "),
        describe(&output)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "`shoal {}` is not JSON ({error}):\n{}",
            full.join(" "),
            describe(&output)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn osd_map_matches_clustermap_and_reads_have_json_forms() {
    // Its OSDs are registered on three hosts: the default rule separates replicas by host
    // (the launcher's own default, `osd`, is for OSDs that share this one).
    let cluster = start_with(ClusterSpec {
        failure_domain: "host".to_owned(),
        ..ClusterSpec::for_tests(3)
    })
    .await;
    let conf = cluster.conf_path();
    let addr = cluster.mon_addr(cluster.mon_ids()[0]).expect("an address");
    // OSD id -> the host it was placed under.
    let mut host_of = BTreeMap::new();
    for index in 0..6 {
        let host = index / 2;
        let id = boot_osd(&addr, index, &format!("host{host}")).await;
        assert!(
            host_of.insert(id, host).is_none(),
            "OSD id {id} given twice"
        );
    }
    let output = shoal(
        &conf,
        &["osd", "pool", "create", "objects", "64", "--size", "3"],
    );
    assert!(output.status.success(), "{}", describe(&output));

    let client = cluster.client().expect("a client");
    let map = client.latest_map().await.expect("the map");
    for object in [
        "foo",
        "bar",
        "rbd_data.1234.0000000000000000",
        "a b c",
        "ünïcödé",
    ] {
        let expected = map.osd_map("objects", object, "").expect("a mapping");
        let output = shoal(&conf, &["osd", "map", "objects", object]);
        assert!(output.status.success(), "{}", describe(&output));
        let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert_eq!(printed, expected.to_string(), "osd map {object}");
        // Replicated over three hosts: three distinct OSDs, one per host.
        let up = &expected.mapping.up;
        assert_eq!(up.len(), 3, "{printed}");
        let hosts: BTreeSet<u32> = up.iter().map(|osd| host_of[osd]).collect();
        assert_eq!(hosts.len(), 3, "one replica per host: {printed}");
        let json = run_json(&conf, &["osd", "map", "objects", object]);
        assert_eq!(json["pgid"], expected.mapping.pgid.to_string());
        assert_eq!(json["acting_primary"], expected.mapping.acting_primary);
        assert_eq!(json["up"], serde_json::json!(expected.mapping.up));
        println!("{printed}");
    }
    let output = shoal(&conf, &["osd", "map", "nosuchpool", "foo"]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("nosuchpool"),
        "{}",
        describe(&output)
    );

    let tree = run_json(&conf, &["osd", "tree"]);
    let nodes = tree["nodes"].as_array().expect("nodes");
    let osds: Vec<&Value> = nodes.iter().filter(|node| node["type"] == "osd").collect();
    assert_eq!(osds.len(), 6, "{tree}");
    assert!(osds.iter().all(|osd| osd["status"] == "up"), "{tree}");
    let plain = shoal(&conf, &["osd", "tree"]);
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert!(plain.starts_with("ID"), "{plain}");
    assert!(
        plain.contains("root default") && plain.contains("host host2"),
        "{plain}"
    );

    let dump = run_json(&conf, &["osd", "dump"]);
    assert_eq!(dump["epoch"], map.epoch());
    assert_eq!(dump["osds"].as_array().map(Vec::len), Some(6));
    let pools = run_json(&conf, &["osd", "pool", "ls", "detail"]);
    assert_eq!(pools[0]["pool_name"], "objects");
    assert_eq!(pools[0]["pg_num"], 64);
    let status = run_json(&conf, &["status"]);
    assert_eq!(status["osdmap"]["num_up_osds"], 6);
    assert_eq!(
        status["quorum"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    let mon_stat = run_json(&conf, &["mon", "stat"]);
    assert_eq!(mon_stat["num_mons"], 3);
    let health = run_json(&conf, &["health"]);
    assert!(health["status"]
        .as_str()
        .is_some_and(|status| status.starts_with("HEALTH_")));
    let plain_status = shoal(&conf, &["-s"]);
    assert!(plain_status.status.success(), "{}", describe(&plain_status));
    assert!(String::from_utf8_lossy(&plain_status.stdout).contains("health:"));
}
