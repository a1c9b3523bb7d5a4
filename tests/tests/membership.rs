//! Monitor membership with real processes: the launcher adds a fourth monitor (`--join`,
//! then `mon add`), which catches up and counts in the quorum; `shoal mon rm` removes it.

use std::time::Duration;

use shoal_tests::{describe, pool_create, shoal, start, wait_for, wait_identical_maps};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_is_added_by_the_launcher_and_removed_by_the_cli() {
    let mut cluster = start(3).await;
    let client = cluster.client().expect("a client");
    client
        .command(pool_create("before-add", 8))
        .await
        .expect("a command");
    let added = cluster.add_mon().await.expect("add a monitor");
    assert_eq!(added, 4);
    wait_identical_maps(&cluster, &cluster.mon_ids(), Duration::from_secs(20)).await;
    let status = wait_for(
        "four monitors in the quorum",
        Duration::from_secs(15),
        || {
            let client = client.clone();
            async move {
                let status = client.status().await.map_err(|error| error.to_string())?;
                if status.quorum().count() == 4 {
                    Ok(status)
                } else {
                    Err(format!(
                        "quorum {:?}",
                        status.quorum().map(|m| m.id).collect::<Vec<_>>()
                    ))
                }
            }
        },
    )
    .await;
    assert!(status
        .monitors
        .iter()
        .any(|monitor| monitor.id == 4 && monitor.name == "d"));

    // The config file now lists the new monitor for clients.
    let conf = cluster.conf_path();
    let addr = cluster.mon_addr(4).expect("its address");
    assert!(std::fs::read_to_string(&conf)
        .expect("conf")
        .contains(&addr));

    let output = shoal(&conf, &["mon", "rm", "4"]);
    assert!(output.status.success(), "{}", describe(&output));
    let output = shoal(&conf, &["mon", "stat"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("3 mons at"), "{}", describe(&output));
    let output = shoal(&conf, &["mon", "rm", "9"]);
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains('9'),
        "{}",
        describe(&output)
    );
}
