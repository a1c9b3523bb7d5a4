//! `shoal cluster up|down|status --dir DIR`: the local launcher ([`deploy::Cluster`]) from
//! the command line. `up` starts monitors and OSDs, waits for `HEALTH_OK`, leaves the
//! daemons running after the command exits and prints how to reach them; `down` stops
//! exactly what the state file records.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use deploy::binaries::BIN_DIR_ENV;
use deploy::{Binaries, Cluster, ClusterSpec, MonTimings, OsdTimings, StopOutcome};
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
    /// Start monitors and OSDs under DIR and wait until the cluster is healthy.
    Up {
        /// The cluster directory (created if missing; a stopped cluster in it restarts).
        #[arg(long)]
        dir: PathBuf,
        /// Monitors to start.
        #[arg(long, default_value_t = 3)]
        mons: u32,
        /// OSDs to start (all on this host; the default CRUSH rule puts replicas on
        /// distinct OSDs).
        #[arg(long, default_value_t = 3)]
        osds: u32,
        /// Directory holding shoal-mon and shoal-osd (default: $SHOAL_BIN_DIR, else next
        /// to `shoal`).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Monitor storage backend: fjall, sled or memory.
        #[arg(long)]
        backend: Option<String>,
        /// Short Raft, heartbeat and failure-detection timings, as the tests use.
        #[arg(long)]
        fast: bool,
        /// Seconds to wait for the cluster to be ready (HEALTH_OK).
        #[arg(long, default_value_t = 120)]
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

/// Under `cargo run` (which sets `CARGO` and `CARGO_MANIFEST_DIR`), builds the daemon
/// binaries when they are missing, into the running `shoal`'s target directory and profile:
/// cargo builds only the binaries of the package it runs, and the README's first command
/// must give a working cluster from a fresh checkout. Elsewhere a missing binary is the
/// launcher's error, which says how to build it.
fn build_missing_daemons(bin_dir: Option<&Path>, osds: u32) -> Result<()> {
    if bin_dir.is_some() || std::env::var_os(BIN_DIR_ENV).is_some() {
        return Ok(());
    }
    let missing = match Binaries::locate(None) {
        Ok(binaries) => osds > 0 && binaries.osd.is_none(),
        Err(_) => true,
    };
    let (Some(cargo), Some(manifest_dir)) = (
        std::env::var_os("CARGO"),
        std::env::var_os("CARGO_MANIFEST_DIR"),
    ) else {
        return Ok(());
    };
    if !missing {
        return Ok(());
    }
    let exe = std::env::current_exe().context("locate the running shoal binary")?;
    let (Some(profile_dir), Some(target_dir)) = (exe.parent(), exe.parent().and_then(Path::parent))
    else {
        return Ok(());
    };
    let mut command = std::process::Command::new(cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(Path::new(&manifest_dir).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(profile) => {
            command.args(["--profile", profile]);
        }
        None => return Ok(()),
    }
    command.args([
        "-p",
        "monitor",
        "--bin",
        "shoal-mon",
        "-p",
        "osd",
        "--bin",
        "shoal-osd",
    ]);
    eprintln!("building the daemons first: {command:?}");
    let status = command.status().context("run cargo build")?;
    if !status.success() {
        bail!("building shoal-mon and shoal-osd failed ({status})");
    }
    Ok(())
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
            build_missing_daemons(bin_dir.as_deref(), osds)?;
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
                osd_timings: if fast {
                    OsdTimings::fast()
                } else {
                    OsdTimings::default()
                },
                ready_timeout: Duration::from_secs(timeout.max(1)),
                die_with_launcher: false,
                ..ClusterSpec::default()
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
            let mut osds = Vec::new();
            for n in cluster.osd_numbers() {
                osds.push((
                    cluster.osd_id(n)?,
                    cluster.osd_pid(n)?.unwrap_or(0),
                    cluster.osd_addr(n)?,
                    cluster.osd_log_file(n)?,
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
                    "osds": osds.iter().map(|(id, pid, addr, log)| json!({
                        "id": id, "pid": pid, "addr": addr, "log": log,
                    })).collect::<Vec<_>>(),
                }));
            } else {
                let verb = if resumed { "restarted" } else { "started" };
                outln!(
                    "cluster {verb} in {}: {} monitor(s), {} OSD(s){}",
                    dir.display(),
                    mons.len(),
                    osds.len(),
                    if osds.is_empty() { "" } else { ", HEALTH_OK" }
                );
                for (id, pid, addr, log) in &mons {
                    outln!("  mon.{id}  pid {pid}  {addr}  log {}", log.display());
                }
                for (id, pid, addr, log) in &osds {
                    outln!("  osd.{id}  pid {pid}  {addr}  log {}", log.display());
                }
                outln!("config: {}", conf.display());
                outln!("try:    shoal -c {} status", conf.display());
            }
            Ok(())
        }
        ClusterCommand::Down { dir } => {
            let report = Cluster::down(&dir).await?;
            if format.is_json() {
                format.print_json(&serde_json::to_value(&report)?);
                return Ok(());
            }
            if report.mons.is_empty() && report.osds.is_empty() {
                outln!("nothing to stop in {}", report.dir.display());
            }
            let describe = |outcome: &StopOutcome| match outcome {
                StopOutcome::Stopped => "stopped".to_owned(),
                StopOutcome::Killed => "killed (it ignored SIGTERM)".to_owned(),
                StopOutcome::AlreadyGone => "was not running".to_owned(),
                StopOutcome::NotOurs { description } => {
                    format!("left alone: the pid now runs `{description}`")
                }
            };
            for (n, pid, outcome) in &report.osds {
                outln!("osd number {n} (pid {pid}): {}", describe(outcome));
            }
            for (id, pid, outcome) in &report.mons {
                outln!("mon.{id} (pid {pid}): {}", describe(outcome));
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
                    "osds": report.osds, "cluster": cluster,
                }));
                return Ok(());
            }
            outln!(
                "cluster in {} (config {})",
                report.dir.display(),
                report.conf.display()
            );
            for mon in &report.mons {
                let state = match mon.pid {
                    Some(pid) => format!("running, pid {pid}"),
                    None => "stopped".to_owned(),
                };
                outln!(
                    "  mon.{}  {state}  {}",
                    mon.id,
                    mon.addr.as_deref().unwrap_or("-")
                );
            }
            for osd in &report.osds {
                let state = match osd.pid {
                    Some(pid) => format!("running, pid {pid}"),
                    None => "stopped".to_owned(),
                };
                let name = osd.id.map_or_else(
                    || format!("osd number {} (never booted)", osd.n),
                    |id| format!("osd.{id}"),
                );
                outln!(
                    "  {name}  {state}  {}  data {}",
                    osd.addr.as_deref().unwrap_or("-"),
                    osd.data_dir.display()
                );
            }
            match &report.cluster {
                Ok(status) => {
                    outln!(
                        "leader mon.{}, epoch {}, term {}, quorum {}",
                        status.leader_id,
                        status.epoch,
                        status.term,
                        status
                            .quorum()
                            .map(|monitor| monitor.name.clone())
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    outln!(
                        "osds: {} up, {} in, {} total; health {}",
                        status.num_up_osds,
                        status.num_in_osds,
                        status.num_osds,
                        status
                            .health
                            .as_ref()
                            .map_or("unknown", |health| health.status.as_str())
                    );
                }
                Err(error) => outln!("monitors: {error}"),
            }
            Ok(())
        }
    }
}
