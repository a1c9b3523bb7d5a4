//! Command commit benchmark: three monitors in this process (fjall stores in a temporary
//! directory, real gRPC on 127.0.0.1), commands sent to a follower so forwarding is
//! included. Prints the latency of sequential commands (p50, p99, max), the throughput of
//! concurrent ones, and each monitor's data-directory size and kept log afterwards (bounded
//! by snapshots and compaction). A measurement, not a test: it asserts nothing about time.
//!
//! `cargo bench -p monitor --bench commit` (release); `MON_BENCH_COMMANDS` (default 2000)
//! and `MON_BENCH_CONCURRENCY` (default 16) adjust the run; `MON_BENCH_DIR` keeps the data
//! directories in that (new) directory instead of a temporary one.

use std::time::{Duration, Instant};

use monitor::config::MemberConfig;
use monitor::node::Role;
use monitor::{MonConfig, MonitorServer};
use proto::mon::command::Kind;
use proto::mon::monitor_client::MonitorClient;
use proto::mon::{command_reply, Command, CommandRequest};
use tonic::transport::Channel;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn toggle(i: usize) -> Command {
    let kind = if i.is_multiple_of(2) {
        Kind::SetFlag("noscrub".to_owned())
    } else {
        Kind::UnsetFlag("noscrub".to_owned())
    };
    Command { kind: Some(kind) }
}

async fn run(client: &mut MonitorClient<Channel>, command: Command) -> Duration {
    let started = Instant::now();
    let reply = client
        .command(CommandRequest {
            command: Some(command),
            timeout_ms: 10_000,
        })
        .await
        .expect("command call")
        .into_inner();
    match reply.outcome {
        Some(command_reply::Outcome::Ok(_)) => started.elapsed(),
        other => panic!("command failed: {other:?}"),
    }
}

/// Bytes allocated on disk under a directory (not apparent sizes: fjall preallocates its
/// journal as a sparse file).
fn dir_size(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let commands = env_number("MON_BENCH_COMMANDS", 2000);
    let concurrency = env_number("MON_BENCH_CONCURRENCY", 16).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        // MON_BENCH_DIR keeps the data directories there for inspection.
        let kept = std::env::var_os("MON_BENCH_DIR").map(std::path::PathBuf::from);
        let temporary = tempfile::tempdir().expect("temporary directory");
        let root = kept.unwrap_or_else(|| temporary.path().to_owned());
        let ids = [1u64, 2, 3];
        let mut servers = Vec::new();
        for id in ids {
            let data = root.join(format!("mon.{id}"));
            let mut config = MonConfig::for_tests(id, data);
            config.raft.snapshot_interval = 1000;
            config.raft.log_keep_entries = 200;
            config.raft.command_timeout_ms = 10_000;
            config.members = ids
                .iter()
                .map(|member| MemberConfig {
                    id: *member,
                    name: None,
                    addr: None,
                    addr_file: Some(root.join(format!("mon.{member}")).join(monitor::ADDR_FILE)),
                })
                .collect();
            servers.push(MonitorServer::start(config).await.expect("monitor starts"));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let follower = loop {
            let leader = servers.iter().find(|s| s.status().role == Role::Leader);
            if let Some(leader) = leader {
                if servers.iter().all(|s| s.view().map.is_some()) {
                    break servers.iter().find(|s| s.id() != leader.id()).unwrap().addr();
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{follower}"))
            .unwrap()
            .connect_lazy();
        let client = MonitorClient::new(channel);

        let mut sequential = client.clone();
        let mut latencies = Vec::with_capacity(commands);
        for i in 0..commands {
            latencies.push(run(&mut sequential, toggle(i)).await);
        }
        latencies.sort();
        let total: Duration = latencies.iter().sum();
        println!(
            "sequential: {commands} commands via a follower, 3 monitors: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.0} commands/s",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().unwrap().as_secs_f64() * 1e3,
            commands as f64 / total.as_secs_f64(),
        );

        let started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..concurrency {
            let mut client = client.clone();
            let share = commands / concurrency;
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(share);
                for i in 0..share {
                    latencies.push(run(&mut client, toggle(worker + i)).await);
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("worker"));
        }
        let elapsed = started.elapsed();
        latencies.sort();
        println!(
            "concurrent: {} commands from {concurrency} clients: p50 {:.2} ms, p99 {:.2} ms, {:.0} commands/s",
            latencies.len(),
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.len() as f64 / elapsed.as_secs_f64(),
        );
        for server in &servers {
            let status = server.status();
            println!(
                "mon.{}: data dir {} KiB, raft log {}..={} ({} entries kept), snapshot at {}",
                server.id(),
                dir_size(server.data_dir()) / 1024,
                status.first_index,
                status.last_index,
                status.last_index + 1 - status.first_index,
                status.snapshot_index,
            );
        }
        for server in servers {
            server.stop().await.expect("stop");
        }
    });
}
