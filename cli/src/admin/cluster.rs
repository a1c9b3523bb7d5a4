//! `shoal cluster up|down|status --dir DIR`: the local launcher ([`deploy::Cluster`]) from
//! the command line. `up` leaves the daemons running after the command exits and prints
//! how to reach them; `down` stops exactly what the state file records.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Subcommand};
use deploy::{Cluster, ClusterSpec, MonTimings, StopOutcome};
use serde_json::json;

use super::Format;

/// `shoal cluster ...`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
    #[command(flatten)]
    pub(super) out: super::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Start monitors (and, later, OSDs) under DIR and wait until they have a leader.
    Up {
        /// The cluster directory (created if missing; a stopped cluster in it restarts).
        #[arg(long)]
        dir: PathBuf,
        /// Monitors to start.
        #[arg(long, default_value_t = 3)]
        mons: u32,
        /// OSDs to start (not available yet: must be 0).
        #[arg(long, default_value_t = 0)]
        osds: u32,
        /// Directory holding shoal-mon (default: $SHOAL_BIN_DIR, else next to `shoal`).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Monitor storage backend: fjall, sled or memory.
        #[arg(long)]
        backend: Option<String>,
        /// Short Raft timings (50 ms ticks), as the tests use.
        #[arg(long)]
        fast: bool,
        /// Seconds to wait for the cluster to be ready.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Stop the processes `cluster up` started in DIR (the data stays).
    Down {
        /// The cluster directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// The processes recorded in DIR and the monitors' status.
    Status {
        /// The cluster directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Runs `shoal cluster ...`.
pub async fn run(args: ClusterArgs, format: Format) -> Result<()> {
    match args.command {
        ClusterCommand::Up {
            dir,
            mons,
            osds,
            bin_dir,
            backend,
            fast,
            timeout,
        } => {
            let spec = ClusterSpec {
                mons,
                osds,
                bin_dir,
                backend,
                timings: if fast {
                    MonTimings::fast()
                } else {
                    MonTimings::default()
                },
                ready_timeout: Duration::from_secs(timeout.max(1)),
                die_with_launcher: false,
            };
            let cluster = Cluster::up(&dir, spec).await?;
            let conf = cluster.conf_path();
            let mut mons = Vec::new();
            for id in cluster.mon_ids() {
                mons.push((
                    id,
                    cluster.pid(id)?.unwrap_or(0),
                    cluster.mon_addr(id)?,
                    cluster.log_file(id)?,
                ));
            }
            let resumed = cluster.resumed();
            cluster.detach();
            if format.is_json() {
                format.print_json(&json!({
                    "dir": dir, "conf": conf, "resumed": resumed,
                    "mons": mons.iter().map(|(id, pid, addr, log)| json!({
                        "id": id, "pid": pid, "addr": addr, "log": log,
                    })).collect::<Vec<_>>(),
                }));
            } else {
                let verb = if resumed { "restarted" } else { "started" };
                println!(
                    "cluster {verb} in {}: {} monitor(s)",
                    dir.display(),
                    mons.len()
                );
                for (id, pid, addr, log) in &mons {
                    println!("  mon.{id}  pid {pid}  {addr}  log {}", log.display());
                }
                println!("config: {}", conf.display());
                println!("try:    shoal -c {} status", conf.display());
            }
            Ok(())
        }
        ClusterCommand::Down { dir } => {
            let report = Cluster::down(&dir).await?;
            if format.is_json() {
                format.print_json(&serde_json::to_value(&report)?);
                return Ok(());
            }
            if report.mons.is_empty() {
                println!("nothing to stop in {}", report.dir.display());
            }
            for (id, pid, outcome) in &report.mons {
                let what = match outcome {
                    StopOutcome::Stopped => "stopped".to_owned(),
                    StopOutcome::Killed => "killed (it ignored SIGTERM)".to_owned(),
                    StopOutcome::AlreadyGone => "was not running".to_owned(),
                    StopOutcome::NotOurs { description } => {
                        format!("left alone: the pid now runs `{description}`")
                    }
                };
                println!("mon.{id} (pid {pid}): {what}");
            }
            Ok(())
        }
        ClusterCommand::Status { dir } => {
            let report = Cluster::status(&dir, Duration::from_secs(3)).await?;
            if format.is_json() {
                let cluster = match &report.cluster {
                    Ok(status) => serde_json::to_value(status)?,
                    Err(error) => json!({ "error": error }),
                };
                format.print_json(&json!({
                    "dir": report.dir, "conf": report.conf, "mons": report.mons,
                    "cluster": cluster,
                }));
                return Ok(());
            }
            println!(
                "cluster in {} (config {})",
                report.dir.display(),
                report.conf.display()
            );
            for mon in &report.mons {
                let state = match mon.pid {
                    Some(pid) => format!("running, pid {pid}"),
                    None => "stopped".to_owned(),
                };
                println!(
                    "  mon.{}  {state}  {}",
                    mon.id,
                    mon.addr.as_deref().unwrap_or("-")
                );
            }
            match &report.cluster {
                Ok(status) => println!(
                    "leader mon.{}, epoch {}, term {}, quorum {}",
                    status.leader_id,
                    status.epoch,
                    status.term,
                    status
                        .quorum()
                        .map(|monitor| monitor.name.clone())
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Err(error) => println!("monitors: {error}"),
            }
            Ok(())
        }
    }
}
