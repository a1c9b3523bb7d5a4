//! `shoal bench mon --count N [--concurrency C]`: command commit latency and throughput
//! against a running cluster. `shoal bench kv [--dir DIR]`: the storage engines' durable
//! put rates and space against raw append+fdatasync on this disk (no cluster needed; the
//! workload and report are `kv::bench`'s).
//!
//! Each worker toggles one cluster flag of its own (`noscrub`, `nodeep-scrub`,
//! `norebalance`, `nobackfill`) so that every command makes a new epoch (setting a flag
//! that is already set commits nothing new); the flags are restored at the end. Latency is
//! measured from sending a command to its committed reply, through whichever monitor the
//! client prefers (followers forward to the leader).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use librados::clustermap::ClusterFlag;
use librados::proto::mon::{command::Kind, Command};
use serde_json::json;

use super::Session;

/// The flags the workers toggle, one each.
const BENCH_FLAGS: [ClusterFlag; 4] = [
    ClusterFlag::NoScrub,
    ClusterFlag::NoDeepScrub,
    ClusterFlag::NoRebalance,
    ClusterFlag::NoBackfill,
];

/// `shoal bench ...`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
    #[command(flatten)]
    pub(super) out: super::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Commit latency (p50/p99) and commands per second of monitor commands.
    Mon {
        /// Commands to run in total.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Commands in flight at once (1 to 4).
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
    /// Durable 4 KiB and 4 MiB puts and disk space of each storage backend, as ratios to
    /// raw append+fdatasync in the same directory (no cluster needed).
    Kv {
        /// Directory to measure in (the disk the daemons would use); a scratch
        /// subdirectory is made there and removed afterwards. Default: the temp dir.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// 4 KiB put+sync operations per backend.
        #[arg(long, default_value_t = 4000)]
        small_puts: usize,
        /// 4 MiB put+sync operations per backend.
        #[arg(long, default_value_t = 64)]
        large_puts: usize,
        /// Interleaved rounds (the backends take turns, so a slow moment of the disk hurts
        /// them all alike).
        #[arg(long, default_value_t = 4)]
        rounds: usize,
    },
}

impl BenchArgs {
    /// Whether the benchmark talks to a cluster (`kv` measures the local disk only).
    pub fn needs_cluster(&self) -> bool {
        !matches!(self.command, BenchCommand::Kv { .. })
    }
}

fn toggle(flag: ClusterFlag, set: bool) -> Command {
    let name = flag.name().to_owned();
    Command {
        kind: Some(if set {
            Kind::SetFlag(name)
        } else {
            Kind::UnsetFlag(name)
        }),
    }
}

/// The value at quantile `q` of sorted `samples`.
fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Runs `shoal bench kv`.
pub async fn run_local(args: BenchArgs, format: super::Format) -> Result<()> {
    let BenchCommand::Kv {
        dir,
        small_puts,
        large_puts,
        rounds,
    } = args.command
    else {
        bail!("this benchmark needs a cluster");
    };
    for (name, value) in [
        ("--small-puts", small_puts),
        ("--large-puts", large_puts),
        ("--rounds", rounds),
    ] {
        if value == 0 {
            bail!("EINVAL: {name} must be > 0");
        }
    }
    let base = dir.unwrap_or_else(std::env::temp_dir);
    let scratch = base.join(format!("shoal-bench-kv-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let config = kv::bench::BenchConfig {
        small_puts,
        large_puts,
        rounds,
        ..kv::bench::BenchConfig::default()
    };
    let measured = scratch.clone();
    let report = tokio::task::spawn_blocking(move || kv::bench::run(&measured, &config))
        .await
        .context("the benchmark thread")?;
    // kv::bench empties its directory itself, also after a failure.
    let _ = std::fs::remove_dir(&scratch);
    let report = report.context("the storage benchmark failed")?;
    if format.is_json() {
        let figures = |f: &kv::bench::Figures| {
            json!({
                "small_ops_per_s": f.small_ops_per_sec,
                "large_mb_per_s": f.large_mb_per_sec,
                "logical_bytes": f.logical_bytes,
                "disk_bytes": f.disk_bytes,
            })
        };
        let targets: Vec<_> = report
            .targets
            .iter()
            .map(|target| {
                json!({
                    "label": target.label,
                    "backend": target.backend.name(),
                    "figures": figures(&target.figures),
                    "small_ratio": target.small_ratio,
                    "large_ratio": target.large_ratio,
                    "space_ratio": target.space_ratio,
                    "score": target.score,
                })
            })
            .collect();
        format.print_json(&json!({
            "raw": figures(&report.raw),
            "targets": targets,
            "winner": report.winner.map(|backend| backend.name()),
        }));
    } else {
        out!("{report}");
    }
    Ok(())
}

/// Runs `shoal bench mon`.
pub async fn run(session: &Session, args: BenchArgs) -> Result<()> {
    let BenchCommand::Mon { count, concurrency } = args.command else {
        bail!("this benchmark needs no cluster");
    };
    if count == 0 {
        bail!("EINVAL: --count must be > 0");
    }
    if !(1..=BENCH_FLAGS.len()).contains(&concurrency) {
        bail!(
            "EINVAL: --concurrency must be between 1 and {}",
            BENCH_FLAGS.len()
        );
    }
    let start_map = session.map().await?;
    let original: Vec<(ClusterFlag, bool)> = BENCH_FLAGS[..concurrency]
        .iter()
        .map(|flag| (*flag, start_map.is_flag_set(*flag)))
        .collect();
    let started = Instant::now();
    let mut workers = Vec::new();
    for (index, (flag, initially_set)) in original.iter().copied().enumerate() {
        // Spread the count over the workers; the first ones take the remainder.
        let share =
            count / concurrency as u64 + u64::from((index as u64) < count % concurrency as u64);
        let client = session.client.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share as usize);
            let mut set = initially_set;
            let mut last_epoch = 0;
            for _ in 0..share {
                set = !set;
                let sent = Instant::now();
                let outcome = client.command(toggle(flag, set)).await?;
                latencies.push(sent.elapsed());
                last_epoch = last_epoch.max(outcome.epoch);
            }
            Ok::<_, librados::ClientError>((latencies, set, last_epoch))
        }));
    }
    let mut latencies = Vec::new();
    let mut last_epoch = 0;
    let mut restore = Vec::new();
    for (worker, (flag, initially_set)) in workers.into_iter().zip(&original) {
        let (samples, now_set, epoch) = worker.await??;
        latencies.extend(samples);
        last_epoch = last_epoch.max(epoch);
        if now_set != *initially_set {
            restore.push(toggle(*flag, *initially_set));
        }
    }
    let elapsed = started.elapsed();
    for command in restore {
        session.client.command(command).await?;
    }
    latencies.sort_unstable();
    let mean = latencies.iter().sum::<Duration>() / latencies.len().max(1) as u32;
    let rate = latencies.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    let (p50, p90, p99) = (
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.90),
        quantile(&latencies, 0.99),
    );
    let max = latencies.last().copied().unwrap_or_default();
    if session.format.is_json() {
        session.format.print_json(&json!({
            "commands": latencies.len(),
            "concurrency": concurrency,
            "elapsed_s": elapsed.as_secs_f64(),
            "commands_per_s": rate,
            "latency_ms": {
                "p50": ms(p50), "p90": ms(p90), "p99": ms(p99), "max": ms(max), "mean": ms(mean),
            },
            "epoch_before": start_map.epoch(),
            "epoch_after": last_epoch,
        }));
    } else {
        outln!(
            "bench mon: {} commands, concurrency {concurrency}, {:.2} s",
            latencies.len(),
            elapsed.as_secs_f64()
        );
        outln!("  throughput: {rate:.1} commands/s");
        outln!(
            "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
            ms(p50),
            ms(p90),
            ms(p99),
            ms(max),
            ms(mean)
        );
        outln!("  epochs: {} -> {last_epoch}", start_map.epoch());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_pick_the_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
