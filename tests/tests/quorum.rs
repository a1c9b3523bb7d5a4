//! Quorum arithmetic with real processes: five monitors keep committing with two killed
//! (the leader among them); three monitors with two killed refuse commands with a clear
//! "no quorum" error after the command's timeout, and work again once one returns.

use std::time::{Duration, Instant};

use librados::{ClientError, CommandErrorKind};
use shoal_tests::{flag, pool_create, start, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_monitors_keep_working_with_two_killed() {
    let mut cluster = start(5).await;
    let client = cluster.client().expect("a client");
    client
        .command(pool_create("before", 8))
        .await
        .expect("a command with five monitors");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let other = *cluster
        .mon_ids()
        .iter()
        .find(|id| **id != leader)
        .expect("another monitor");
    cluster.kill_mon(leader).await.expect("kill the leader");
    cluster.kill_mon(other).await.expect("kill a follower");
    let started = Instant::now();
    let outcome = client
        .command_with_timeout(pool_create("after", 8), Duration::from_secs(10))
        .await
        .expect("three of five monitors still commit");
    println!(
        "5 monitors, 2 killed (mon.{leader} was leader, mon.{other}): committed epoch {} in {:.0} ms",
        outcome.epoch,
        started.elapsed().as_secs_f64() * 1000.0
    );
    let map = client.latest_map().await.expect("the map");
    assert!(map.pool_by_name("before").is_some() && map.pool_by_name("after").is_some());
    let status = client.status().await.expect("status");
    assert_eq!(status.monitors.len(), 5);
    let quorum: Vec<u64> = status.quorum().map(|monitor| monitor.id).collect();
    assert_eq!(quorum.len(), 3, "quorum {quorum:?}");
    assert!(
        !quorum.contains(&leader) && !quorum.contains(&other),
        "quorum {quorum:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_monitors_with_two_killed_say_no_quorum_until_one_returns() {
    let mut cluster = start(3).await;
    let ids = cluster.mon_ids();
    let survivor = ids[0];
    let survivor_client = cluster.mon_client(survivor).expect("a client");
    survivor_client
        .command(flag("noout", true))
        .await
        .expect("a command with three monitors");
    for id in &ids[1..] {
        cluster.kill_mon(*id).await.expect("kill a monitor");
    }
    let epoch_before = survivor_client
        .status_local()
        .await
        .expect("local status")
        .epoch;

    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let error = cluster
        .client()
        .expect("a client")
        .command_with_timeout(flag("noout", false), timeout)
        .await
        .expect_err("no command commits with one monitor of three");
    let waited = started.elapsed();
    println!(
        "with 2 of 3 monitors killed: `{error}` after {:.0} ms",
        waited.as_secs_f64() * 1000.0
    );
    assert!(matches!(error, ClientError::NoQuorum { .. }), "{error:?}");
    assert_eq!(error.command_kind(), Some(CommandErrorKind::NoQuorum));
    assert!(error.to_string().contains("no quorum"), "{error}");
    assert!(
        waited >= timeout,
        "failed after {waited:?}, before its {timeout:?} timeout"
    );
    assert!(
        waited < timeout * 4,
        "took {waited:?} for a {timeout:?} timeout"
    );
    let epoch_after = survivor_client
        .status_local()
        .await
        .expect("local status")
        .epoch;
    assert_eq!(
        epoch_after, epoch_before,
        "the epoch changed without a quorum"
    );

    // One monitor returns: two of three make a quorum again.
    cluster
        .restart_mon(ids[1])
        .await
        .expect("restart a monitor");
    let client = cluster.client().expect("a client");
    let outcome = wait_for("a command to commit again", Duration::from_secs(15), || {
        let client = client.clone();
        async move {
            client
                .command_with_timeout(flag("noout", false), Duration::from_secs(2))
                .await
                .map_err(|error| error.to_string())
        }
    })
    .await;
    assert!(outcome.epoch > epoch_before);
    let map = client.latest_map().await.expect("the map");
    assert!(!map.is_flag_set(librados::clustermap::ClusterFlag::NoOut));
}
