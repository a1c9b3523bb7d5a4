//! Whole-cluster restart: every monitor stopped, then `Cluster::up` on the same directory
//! (what `shoal cluster up --dir DIR` does on a stopped cluster). Pools, the CRUSH map and
//! the epoch come back intact, and the cluster accepts commands again.

use std::time::Duration;

use deploy::{Cluster, ClusterSpec};
use librados::proto::mon::{command::Kind, Command, CrushAddBucket};
use shoal_tests::{bin_dir, pool_create, wait_identical_maps};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_cluster_keeps_its_pools_crush_map_and_epoch() {
    let dir = tempfile::Builder::new()
        .prefix("shoal-test-")
        .tempdir()
        .expect("a temporary directory");
    let spec = || ClusterSpec {
        bin_dir: Some(bin_dir()),
        ..ClusterSpec::for_tests(3)
    };
    let cluster = Cluster::up(dir.path(), spec())
        .await
        .expect("the cluster starts");
    assert!(!cluster.resumed());
    let client = cluster.client().expect("a client");
    for (name, pg_num) in [("rbd", 32), ("data", 16)] {
        client
            .command(pool_create(name, pg_num))
            .await
            .expect("pool create");
    }
    client
        .command(Command {
            kind: Some(Kind::CrushAddBucket(CrushAddBucket {
                name: "rack1".to_owned(),
                bucket_type: "rack".to_owned(),
                location: [("root".to_owned(), "default".to_owned())].into(),
            })),
        })
        .await
        .expect("add a rack");
    let (epoch_before, map_before) =
        wait_identical_maps(&cluster, &cluster.mon_ids(), Duration::from_secs(10)).await;
    let report = cluster.shutdown().await.expect("stop every monitor");
    assert_eq!(report.mons.len(), 3, "{report:?}");

    let cluster = Cluster::up(dir.path(), spec())
        .await
        .expect("the cluster restarts");
    assert!(cluster.resumed());
    let (epoch_after, map_after) =
        wait_identical_maps(&cluster, &cluster.mon_ids(), Duration::from_secs(20)).await;
    // Monitors may record a new address after a restart (one more epoch each time); the
    // contents that matter are unchanged.
    assert!(
        epoch_after >= epoch_before,
        "epoch went back: {epoch_before} -> {epoch_after}"
    );
    assert_eq!(map_after.pools(), map_before.pools());
    assert_eq!(map_after.crush(), map_before.crush());
    assert_eq!(map_after.fsid(), map_before.fsid());
    assert!(map_after.crush().bucket_by_name("rack1").is_some());
    println!("epoch before the restart {epoch_before}, after {epoch_after}");
    let outcome = cluster
        .client()
        .expect("a client")
        .command(pool_create("after-restart", 8))
        .await
        .expect("a command after the restart");
    assert!(outcome.epoch > epoch_after);
    cluster.shutdown().await.expect("stop");
}
