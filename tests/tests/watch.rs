//! A `WatchMap` subscriber running across leader kills: it sees every epoch exactly once,
//! in order, and its history is a prefix of the cluster's: consecutive epochs from where it
//! started up to the final one, whose map equals the monitors' final map.

use std::time::Duration;

use librados::{ClientConfig, MapEvent, MonClient};
use shoal_tests::{flag, start, wait_identical_maps};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_every_epoch_once_in_order_across_leader_kills() {
    let mut cluster = start(3).await;
    let client = cluster.client().expect("a client");
    // The watcher subscribes to the leader first, so the first kill breaks its stream.
    let first_leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let mut addrs = vec![cluster.mon_addr(first_leader).expect("an address")];
    for id in cluster.mon_ids() {
        if id != first_leader {
            addrs.push(cluster.mon_addr(id).expect("an address"));
        }
    }
    let mut watch = MonClient::new(ClientConfig::with_mon_hosts(addrs))
        .expect("a watch client")
        .watch();
    let (events, mut received) = mpsc::unbounded_channel::<Result<MapEvent, String>>();
    let watcher = tokio::spawn(async move {
        loop {
            let event = watch.next().await.map_err(|error| error.to_string());
            let failed = event.is_err();
            if events.send(event).is_err() || failed {
                return;
            }
        }
    });

    let mut round = 0;
    for kill in 0..2 {
        for _ in 0..10 {
            round += 1;
            client
                .command(flag("noout", round % 2 == 1))
                .await
                .expect("a command");
        }
        let leader = cluster
            .leader(Duration::from_secs(10))
            .await
            .expect("a leader");
        cluster.kill_mon(leader).await.expect("kill the leader");
        for _ in 0..10 {
            round += 1;
            client
                .command(flag("noout", round % 2 == 1))
                .await
                .expect("a command after the kill");
        }
        cluster
            .restart_mon(leader)
            .await
            .expect("restart the old leader");
        println!("round {kill}: killed and restarted leader mon.{leader}");
    }
    let (final_epoch, final_map) =
        wait_identical_maps(&cluster, &cluster.mon_ids(), Duration::from_secs(20)).await;

    // Collect what the watcher saw up to the final epoch.
    let mut history: Vec<MapEvent> = Vec::new();
    while history
        .last()
        .is_none_or(|event| u64::from(event.map.epoch()) < final_epoch)
    {
        let event = tokio::time::timeout(Duration::from_secs(20), received.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the watcher did not reach epoch {final_epoch}; it saw {:?}",
                    history
                        .iter()
                        .map(|event| event.map.epoch())
                        .collect::<Vec<_>>()
                )
            })
            .expect("the watcher is running")
            .unwrap_or_else(|error| panic!("the watch failed: {error}"));
        history.push(event);
    }
    watcher.abort();
    let _ = watcher.await;

    let epochs: Vec<u64> = history
        .iter()
        .map(|event| u64::from(event.map.epoch()))
        .collect();
    let first = epochs[0];
    let expected: Vec<u64> = (first..=final_epoch).collect();
    assert_eq!(epochs, expected, "every epoch once, in order");
    assert!(history[0].full, "the first event is a full map");
    assert!(
        history[1..].iter().all(|event| !event.full),
        "later epochs came as incrementals"
    );
    let last = history.last().expect("events");
    assert_eq!(
        *last.map, final_map,
        "the watcher's final map is the monitors' map"
    );
    assert_eq!(
        serde_json::to_vec(&*last.map).expect("encode"),
        serde_json::to_vec(&final_map).expect("encode")
    );
    let monitors: std::collections::BTreeSet<&str> =
        history.iter().map(|event| event.from.as_str()).collect();
    assert_eq!(
        history[0].from,
        cluster.mon_addr(first_leader).expect("an address"),
        "the watch started on the leader"
    );
    assert!(
        monitors.len() >= 2,
        "the watch never failed over: {monitors:?}"
    );
    println!(
        "watcher saw epochs {first}..={final_epoch} ({} events) from {} monitor(s)",
        history.len(),
        monitors.len()
    );
}
