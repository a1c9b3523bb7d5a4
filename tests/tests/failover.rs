//! Three monitor processes: a pool created through a follower is visible through every
//! monitor; after `kill -9` of the leader a new one is elected and commands succeed again
//! within 5 s (measured and printed); the killed monitor restarts and catches up to the
//! same epoch and byte-identical map.

use std::time::{Duration, Instant};

use shoal_tests::{pool_create, start, wait_for, wait_identical_maps};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_with_sigkill_is_replaced_and_catches_up_after_restart() {
    let mut cluster = start(3).await;
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let follower = *cluster
        .mon_ids()
        .iter()
        .find(|id| **id != leader)
        .expect("a follower");

    // Created through a follower (which forwards to the leader)...
    let outcome = cluster
        .mon_client(follower)
        .expect("a client of the follower")
        .command(pool_create("through-follower", 16))
        .await
        .expect("pool create through a follower");
    // ...and visible through every monitor, each answering from its own applied map.
    for id in cluster.mon_ids() {
        let client = cluster.mon_client(id).expect("a client");
        let map = client
            .wait_for_epoch(outcome.epoch, Duration::from_secs(10))
            .await
            .unwrap_or_else(|error| {
                panic!("monitor {id} reaches epoch {}: {error}", outcome.epoch)
            });
        let pool = map
            .pool_by_name("through-follower")
            .unwrap_or_else(|| panic!("monitor {id} shows the pool"));
        assert_eq!(pool.pg_num, 16);
    }

    // kill -9 the leader; measure until a command commits again.
    let client = cluster.client().expect("a client of all monitors");
    let killed_at = Instant::now();
    cluster.kill_mon(leader).await.expect("kill the leader");
    let mut attempt = 0;
    let recovered = loop {
        attempt += 1;
        let name = format!("after-kill-{attempt}");
        match client
            .command_with_timeout(pool_create(&name, 8), Duration::from_secs(2))
            .await
        {
            Ok(outcome) => break outcome,
            Err(error) => {
                assert!(
                    killed_at.elapsed() < Duration::from_secs(5),
                    "no command succeeded within 5 s of killing the leader: {error}"
                );
            }
        }
    };
    let recovery = killed_at.elapsed();
    let new_leader = cluster
        .leader(Duration::from_secs(5))
        .await
        .expect("a new leader");
    println!(
        "leader mon.{leader} killed: mon.{new_leader} leads; a command committed (epoch {}) \
         {:.0} ms after the kill ({attempt} attempt(s))",
        recovered.epoch,
        recovery.as_secs_f64() * 1000.0
    );
    assert_ne!(new_leader, leader);
    assert!(
        recovery < Duration::from_secs(5),
        "recovery took {recovery:?}"
    );

    // More changes while it is down, then restart it: it catches up to the same epoch and
    // the same map bytes.
    let last = client
        .command(pool_create("while-down", 8))
        .await
        .expect("a command with one monitor down");
    cluster
        .restart_mon(leader)
        .await
        .expect("restart the old leader");
    let (epoch, map) =
        wait_identical_maps(&cluster, &cluster.mon_ids(), Duration::from_secs(20)).await;
    assert!(
        epoch >= last.epoch,
        "caught up to {epoch}, expected >= {}",
        last.epoch
    );
    for name in ["through-follower", "while-down"] {
        assert!(
            map.pool_by_name(name).is_some(),
            "pool {name} after catch-up"
        );
    }
    wait_for(
        "the restarted monitor to serve the last epoch",
        Duration::from_secs(10),
        || {
            let client = cluster.mon_client(leader).expect("a client");
            async move {
                let status = client
                    .status_local()
                    .await
                    .map_err(|error| error.to_string())?;
                (status.epoch >= last.epoch)
                    .then_some(())
                    .ok_or(format!("at epoch {}", status.epoch))
            }
        },
    )
    .await;
    cluster.cluster.shutdown().await.expect("clean shutdown");
}
