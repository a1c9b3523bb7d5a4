//! Log compaction with real processes: after 10,000 commands (sent by four concurrent
//! client tasks, not 10,000 CLI processes) every monitor's Raft log is compacted and its
//! data directory stays bounded (sizes printed); a monitor whose data directory was wiped
//! rejoins through a snapshot and ends with the same map.

use std::time::{Duration, Instant};

use librados::MonClient;
use shoal_tests::{apparent_size, disk_usage, flag, start, wait_identical_maps};

/// Commands in total; each toggles a flag, so each makes one epoch.
const COMMANDS: u64 = 10_000;

/// Client tasks, each toggling its own flag.
const WORKERS: [&str; 4] = ["noscrub", "nodeep-scrub", "norebalance", "nobackfill"];

/// Runs `count` toggles of `flag_name` through `client`; returns the last epoch.
async fn toggle_many(client: MonClient, flag_name: &'static str, count: u64) -> u64 {
    let mut last = 0;
    for index in 0..count {
        let outcome = client
            .command(flag(flag_name, index % 2 == 0))
            .await
            .unwrap_or_else(|error| panic!("command {index} on {flag_name}: {error}"));
        last = last.max(outcome.epoch);
    }
    last
}

/// Disk usage of one monitor's data directory.
struct Usage {
    id: u64,
    /// Everything but the storage engine's write-ahead journal.
    store: u64,
    /// fjall's journal (`kv/*.jnl`): appended to until a memtable flush lets it rotate.
    journal: u64,
    /// File lengths (the journal file is preallocated).
    apparent: u64,
}

fn journal_usage(kv: &std::path::Path) -> u64 {
    std::fs::read_dir(kv)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "jnl"))
                .map(|entry| disk_usage_of_file(&entry.path()))
                .sum()
        })
        .unwrap_or(0)
}

fn disk_usage_of_file(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .map(|metadata| metadata.blocks() * 512)
        .unwrap_or(0)
}

fn sizes(cluster: &deploy::Cluster) -> Vec<Usage> {
    cluster
        .mon_ids()
        .into_iter()
        .map(|id| {
            let dir = cluster.data_dir(id).expect("a data dir");
            let journal = journal_usage(&dir.join("kv"));
            Usage {
                id,
                store: disk_usage(&dir).saturating_sub(journal),
                journal,
                apparent: apparent_size(&dir),
            }
        })
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_commands_stay_bounded_and_a_wiped_monitor_rejoins_by_snapshot() {
    let mut cluster = start(3).await;
    let client = cluster.client().expect("a client");
    let snapshot_interval = deploy::MonTimings::fast()
        .snapshot_interval
        .expect("the test timings set a snapshot interval");

    let started = Instant::now();
    let mut checkpoints = Vec::new();
    let per_phase = COMMANDS / 2;
    for phase in 0..2 {
        let tasks: Vec<_> = WORKERS
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let share = per_phase / WORKERS.len() as u64
                    + u64::from((index as u64) < per_phase % WORKERS.len() as u64);
                tokio::spawn(toggle_many(client.clone(), name, share))
            })
            .collect();
        for task in tasks {
            task.await.expect("a worker finishes");
        }
        let done = per_phase * (phase + 1);
        let elapsed = started.elapsed();
        let phase_sizes = sizes(&cluster);
        println!(
            "{done} commands in {:.1} s ({:.0} commands/s); data dirs: {}",
            elapsed.as_secs_f64(),
            done as f64 / elapsed.as_secs_f64(),
            phase_sizes
                .iter()
                .map(|usage| format!(
                    "mon.{} store {:.2} MiB + journal {:.2} MiB ({:.0} MiB apparent)",
                    usage.id,
                    mib(usage.store),
                    mib(usage.journal),
                    mib(usage.apparent)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        checkpoints.push(phase_sizes);
    }

    let (epoch, _) =
        wait_identical_maps(&cluster, &cluster.mon_ids(), Duration::from_secs(30)).await;
    assert!(epoch >= COMMANDS, "epoch {epoch} after {COMMANDS} commands");
    for id in cluster.mon_ids() {
        let status = cluster
            .mon_client(id)
            .expect("a client")
            .status_local()
            .await
            .expect("local status");
        println!(
            "mon.{id}: applied {} snapshot {} last {} (log entries kept: {})",
            status.applied_index,
            status.snapshot_index,
            status.last_index,
            status.last_index - status.snapshot_index
        );
        assert!(
            status.snapshot_index + 2 * snapshot_interval >= status.last_index,
            "mon.{id}'s log is not compacted: {status:?}"
        );
    }
    // Bounded: with the log compacted, the store itself does not grow with the number of
    // commands. The journal does, by about 300 bytes a command, until fjall flushes a
    // memtable (8 MiB, the kv crate's setting) and rotates it: a bound far above what
    // 10,000 commands reach, so it is printed, not asserted.
    for (half, full) in checkpoints[0].iter().zip(&checkpoints[1]) {
        assert!(
            full.store <= half.store + (512 << 10),
            "mon.{}'s store grew from {:.2} MiB to {:.2} MiB",
            full.id,
            mib(half.store),
            mib(full.store)
        );
        assert!(
            full.store < 16 << 20,
            "mon.{} store uses {:.2} MiB",
            full.id,
            mib(full.store)
        );
    }

    // Wipe a follower's data directory; it rejoins through a snapshot.
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("a leader");
    let victim = *cluster
        .mon_ids()
        .iter()
        .find(|id| **id != leader)
        .expect("a follower");
    cluster.kill_mon(victim).await.expect("kill the follower");
    cluster.wipe_mon(victim).expect("wipe its data directory");
    assert!(
        disk_usage(&cluster.data_dir(victim).expect("dir")) < 4096 * 2,
        "only the address file is left"
    );
    let rejoin_started = Instant::now();
    cluster
        .restart_mon(victim)
        .await
        .expect("restart the wiped monitor");
    let (final_epoch, _) =
        wait_identical_maps(&cluster, &cluster.mon_ids(), Duration::from_secs(30)).await;
    let status = cluster
        .mon_client(victim)
        .expect("a client")
        .status_local()
        .await
        .expect("local status");
    println!(
        "wiped mon.{victim} rejoined at epoch {final_epoch} in {:.0} ms (snapshot index {}, {:.2} MiB)",
        rejoin_started.elapsed().as_secs_f64() * 1000.0,
        status.snapshot_index,
        mib(disk_usage(&cluster.data_dir(victim).expect("dir")))
    );
    assert!(
        status.snapshot_index > 1,
        "the wiped monitor did not install a snapshot: {status:?}"
    );
    assert!(status.epoch >= epoch);
}
