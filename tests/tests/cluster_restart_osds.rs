//! A stopped cluster with OSDs restarts with its data, as `shoal cluster up` on the same
//! directory does: the same OSD ids at new addresses, the objects still there, and a spec
//! asking for more OSDs adds them (the next id). Asking for fewer is refused by name.

use std::time::Duration;

use deploy::{Cluster, ClusterSpec, DeployError, StopOutcome};
use shoal_tests::{bin_dir, connect, create_pool, osd_binary, pattern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_cluster_restarts_with_its_osds_and_data_and_grows() {
    osd_binary();
    let dir = tempfile::Builder::new()
        .prefix("shoal-test-")
        .tempdir()
        .expect("a temporary directory");
    let spec = |osds| ClusterSpec {
        bin_dir: Some(bin_dir()),
        ..ClusterSpec::for_tests_with_osds(1, osds)
    };
    let mut cluster = Cluster::up(dir.path(), spec(3))
        .await
        .expect("the cluster starts");
    let ids: Vec<i32> = cluster
        .osd_numbers()
        .into_iter()
        .map(|n| cluster.osd_id(n).expect("an id"))
        .collect();
    assert_eq!(
        ids,
        [0, 1, 2],
        "OSDs boot one after another: number n is osd.n"
    );
    create_pool(&mut cluster, "keep", 8, 3, 2).await;
    let rados = connect(&cluster).await;
    let ioctx = rados.ioctx("keep").await.expect("the pool's context");
    for k in 0..20u64 {
        ioctx
            .write_full(&format!("o{k}"), pattern(k, 10_000))
            .await
            .expect("write");
    }
    let before: Vec<String> = cluster
        .osd_numbers()
        .into_iter()
        .map(|n| cluster.osd_addr(n).expect("an address"))
        .collect();
    drop(rados);
    let report = cluster.shutdown().await.expect("a clean shutdown");
    assert_eq!(report.osds.len(), 3, "{report:?}");
    let outcomes = report
        .osds
        .iter()
        .map(|(_, _, outcome)| outcome)
        .chain(report.mons.iter().map(|(_, _, outcome)| outcome));
    for outcome in outcomes {
        assert_eq!(*outcome, StopOutcome::Stopped, "{report:?}");
    }

    let error = Cluster::up(dir.path(), spec(2)).await.unwrap_err();
    assert!(
        matches!(
            error,
            DeployError::OsdSpecMismatch {
                existing: 3,
                requested: 2,
                ..
            }
        ),
        "{error}"
    );

    let mut cluster = Cluster::up(dir.path(), spec(4))
        .await
        .expect("the cluster restarts with one more OSD");
    assert!(cluster.resumed());
    let ids: Vec<i32> = cluster
        .osd_numbers()
        .into_iter()
        .map(|n| cluster.osd_id(n).expect("an id"))
        .collect();
    assert_eq!(
        ids,
        [0, 1, 2, 3],
        "the same ids, and the next one for the new OSD"
    );
    for (n, old) in before.iter().enumerate() {
        let now = cluster.osd_addr(n as u32).expect("an address");
        println!("osd number {n}: {old} -> {now}");
    }
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .expect("healthy after the restart");
    let rados = connect(&cluster).await;
    let ioctx = rados.ioctx("keep").await.expect("the pool survived");
    for k in 0..20u64 {
        let data = ioctx
            .read(&format!("o{k}"), 0, 0)
            .await
            .unwrap_or_else(|error| panic!("read o{k} after the restart: {error}"));
        assert!(data == pattern(k, 10_000), "o{k} after the restart");
    }
    drop(rados);
    cluster.shutdown().await.expect("a clean shutdown");
}
