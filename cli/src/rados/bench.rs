//! `shoal rados bench SECONDS write|seq|rand [-b SIZE] [-t N] [--no-cleanup]` and
//! `shoal rados cleanup`, shaped like Ceph's `rados bench`.
//!
//! `write` keeps N ops in flight, each writing a whole object
//! `benchmark_data_<host>_<pid>_object<K>` of the block size, for SECONDS; `seq` reads the
//! objects a previous `write --no-cleanup` left, in order, and `rand` reads them at random,
//! both for at most SECONDS (`seq` also stops once every object was read). What `write`
//! left is described by the metadata object `benchmark_last_metadata` (JSON: prefix, object
//! count, sizes), which `seq`, `rand` and `cleanup` read.
//!
//! A progress line is printed each second and a summary at the end with Ceph's field names
//! (its "MB" are MiB), plus p50/p99 latency. Every op's latency is kept (16 bytes each), so
//! the percentiles are exact.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use librados::{Bytes, IoCtx, RadosError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::rados_error;
use crate::admin::Format;

/// The object describing the last `write --no-cleanup` run (Ceph's name).
const METADATA_OBJECT: &str = "benchmark_last_metadata";

/// `bench`'s arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// How long to run, in seconds.
    seconds: u64,
    /// What to do.
    #[arg(value_enum)]
    mode: Mode,
    /// Bytes per op and per object (suffixes K, M: 4K, 4M); default 4M.
    #[arg(short = 'b', long = "block-size", default_value = "4M", value_parser = parse_size)]
    block_size: u64,
    /// Ops in flight at once.
    #[arg(short = 't', long = "concurrent-ios", default_value_t = 16)]
    concurrency: usize,
    /// Keep the written objects (for seq and rand) instead of removing them.
    #[arg(long)]
    no_cleanup: bool,
    /// Object name prefix (default benchmark_data_<host>_<pid>).
    #[arg(long)]
    run_name: Option<String>,
    /// Write pseudo-random bytes instead of a short repeating pattern (what Ceph's rados
    /// bench writes), to measure without the gain of the OSDs' compression.
    #[arg(long)]
    random_data: bool,
}

/// `cleanup`'s arguments.
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Remove objects with this prefix (default: the last run's, from its metadata).
    #[arg(long)]
    prefix: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Write new objects.
    Write,
    /// Read the objects of the last write run in order.
    Seq,
    /// Read the objects of the last write run at random.
    Rand,
}

/// What a `write --no-cleanup` left behind.
#[derive(Debug, Serialize, Deserialize)]
struct Metadata {
    prefix: String,
    objects: u64,
    object_size: u64,
    op_size: u64,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(index) => text.split_at(index),
        None => (text, ""),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 4096, 4K, 4M)"))?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use K, M or G)")),
    };
    let size = number
        .checked_shl(shift)
        .filter(|size| *size > 0)
        .ok_or_else(|| format!("`{text}` must be > 0 and fit in 64 bits"))?;
    Ok(size)
}

impl BenchArgs {
    /// Local checks, before connecting.
    pub fn check(&self) -> Result<()> {
        if self.seconds == 0 {
            bail!("EINVAL: SECONDS must be > 0");
        }
        if self.concurrency == 0 {
            bail!("EINVAL: -t must be > 0");
        }
        if self.block_size > 128 << 20 {
            bail!(
                "EINVAL: -b {} is larger than an object may be (128 MiB)",
                self.block_size
            );
        }
        Ok(())
    }
}

/// The host name for the default object prefix.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// What every write of a run stores: a short cycle that compresses well, like the data of
/// Ceph's rados bench, or xorshift64 bytes that do not compress at all.
fn write_data(len: u64, random: bool) -> Vec<u8> {
    if !random {
        return (0..len).map(|index| (index % 251) as u8).collect();
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

fn object_name(prefix: &str, index: u64) -> String {
    format!("{prefix}_object{index}")
}

/// Counters shared by the workers and the progress printer.
#[derive(Default)]
struct Progress {
    started: AtomicU64,
    finished: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    /// Nanoseconds of the last finished op.
    last_latency_ns: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
}

impl Progress {
    fn finish(&self, latency: Duration, bytes: u64) {
        self.finished.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_latency_ns
            .store(latency.as_nanos() as u64, Ordering::Relaxed);
        self.latencies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(latency);
    }

    fn average_latency(&self) -> f64 {
        let latencies = self
            .latencies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().sum::<Duration>().as_secs_f64() / latencies.len() as f64
        }
    }
}

/// Per-second samples the summary's deviations come from.
#[derive(Default)]
struct Samples {
    bandwidth: Vec<f64>,
    iops: Vec<f64>,
}

const MIB: f64 = 1048576.0;

/// Prints the progress line each second until `done`; returns the per-second samples.
async fn report(
    progress: Arc<Progress>,
    done: Arc<AtomicBool>,
    concurrency: usize,
    start: Instant,
    quiet: bool,
) -> Samples {
    let mut samples = Samples::default();
    if !quiet {
        outln!(
            "{:>5} {:>7} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11}",
            "sec",
            "Cur ops",
            "started",
            "finished",
            "avg MB/s",
            "cur MB/s",
            "last lat(s)",
            "avg lat(s)"
        );
        outln!(
            "{:>5} {:>7} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11}",
            0,
            0,
            0,
            0,
            0,
            0,
            "-",
            0
        );
    }
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::from_std(start) + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let (mut last_finished, mut last_bytes) = (0u64, 0u64);
    let mut second = 0u64;
    while !done.load(Ordering::Acquire) {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => continue,
        }
        second += 1;
        let started = progress.started.load(Ordering::Relaxed);
        let finished = progress.finished.load(Ordering::Relaxed);
        let bytes = progress.bytes.load(Ordering::Relaxed);
        let cur_mb = (bytes - last_bytes) as f64 / MIB;
        let cur_ops = (finished - last_finished) as f64;
        samples.bandwidth.push(cur_mb);
        samples.iops.push(cur_ops);
        last_finished = finished;
        last_bytes = bytes;
        if !quiet {
            let elapsed = start.elapsed().as_secs_f64();
            let last_lat = progress.last_latency_ns.load(Ordering::Relaxed) as f64 / 1e9;
            outln!(
                "{:>5} {:>7} {:>9} {:>9} {:>9.4} {:>9.4} {:>11.6} {:>11.6}",
                second,
                (started - finished).min(concurrency as u64),
                started,
                finished,
                bytes as f64 / MIB / elapsed,
                cur_mb,
                last_lat,
                progress.average_latency()
            );
        }
    }
    samples
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

fn stddev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let average = mean(values);
    (values.iter().map(|v| (v - average).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// What one op of a run does.
#[derive(Clone)]
enum Work {
    /// Write objects `prefix_object<K>` for K = 0, 1, ...
    Write { prefix: String, data: Bytes },
    /// Read objects 0..count in order, once each.
    Seq {
        prefix: String,
        count: u64,
        size: u64,
    },
    /// Read random objects of 0..count.
    Rand {
        prefix: String,
        count: u64,
        size: u64,
    },
}

/// A small xorshift generator per worker (no dependency, good enough to pick objects).
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Runs `work` with `concurrency` ops in flight for `seconds`; returns the elapsed time and
/// the progress counters.
async fn drive(
    ioctx: &IoCtx,
    work: Work,
    seconds: u64,
    concurrency: usize,
    quiet: bool,
) -> Result<(Duration, Arc<Progress>, Samples)> {
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<RadosError>>> = Arc::new(Mutex::new(None));
    let start = Instant::now();
    let stop_at = start + Duration::from_secs(seconds);
    let reporter = tokio::spawn(report(
        progress.clone(),
        done.clone(),
        concurrency,
        start,
        quiet,
    ));
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (ioctx, work, progress, next, first_error) = (
            ioctx.clone(),
            work.clone(),
            progress.clone(),
            next.clone(),
            first_error.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut random = Xorshift(
                0x9e37_79b9_7f4a_7c15
                    ^ (worker as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9)
                    ^ start.elapsed().as_nanos() as u64,
            );
            while Instant::now() < stop_at && first_error.lock().map_or(true, |e| e.is_none()) {
                let (object, outcome) = match &work {
                    Work::Write { prefix, data } => {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let object = object_name(prefix, index);
                        progress.started.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        let outcome = ioctx
                            .write_full(&object, data.clone())
                            .await
                            .map(|_| (sent.elapsed(), data.len() as u64));
                        (object, outcome)
                    }
                    Work::Seq {
                        prefix,
                        count,
                        size,
                    }
                    | Work::Rand {
                        prefix,
                        count,
                        size,
                    } => {
                        let index = if matches!(work, Work::Seq { .. }) {
                            let index = next.fetch_add(1, Ordering::Relaxed);
                            if index >= *count {
                                break;
                            }
                            index
                        } else {
                            random.next() % count
                        };
                        let object = object_name(prefix, index);
                        progress.started.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        let outcome = ioctx.read(&object, 0, *size).await.and_then(|data| {
                            if data.len() as u64 == *size {
                                Ok((sent.elapsed(), data.len() as u64))
                            } else {
                                Err(RadosError::Corruption {
                                    object: object.clone(),
                                    reason: format!(
                                        "read {} bytes, the benchmark wrote {size}",
                                        data.len()
                                    ),
                                })
                            }
                        });
                        (object, outcome)
                    }
                };
                match outcome {
                    Ok((latency, bytes)) => progress.finish(latency, bytes),
                    Err(error) => {
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("benchmark op on `{object}` failed: {error}");
                        let mut slot = first_error
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        slot.get_or_insert(error);
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await.context("a benchmark worker panicked")?;
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::Release);
    let samples = reporter.await.context("the progress printer panicked")?;
    let error = first_error
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some(error) = error {
        return Err(rados_error(error).context(format!(
            "benchmark stopped after {} ops",
            progress.finished.load(Ordering::Relaxed)
        )));
    }
    Ok((elapsed, progress, samples))
}

/// Prints the summary (Ceph's fields plus percentiles).
fn summary(
    format: Format,
    mode: Mode,
    elapsed: Duration,
    progress: &Progress,
    samples: &Samples,
    op_size: u64,
    object_size: u64,
) {
    let mut latencies = progress
        .latencies
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    latencies.sort_unstable();
    let ops = latencies.len() as u64;
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    let bandwidth = progress.bytes.load(Ordering::Relaxed) as f64 / MIB / seconds;
    let lat: Vec<f64> = latencies.iter().map(Duration::as_secs_f64).collect();
    let max_of = |values: &[f64]| values.iter().copied().fold(0.0, f64::max);
    let min_of = |values: &[f64]| {
        if values.is_empty() {
            0.0
        } else {
            values.iter().copied().fold(f64::INFINITY, f64::min)
        }
    };
    let (p50, p99) = (
        quantile(&latencies, 0.50).as_secs_f64(),
        quantile(&latencies, 0.99).as_secs_f64(),
    );
    let verb = if mode == Mode::Write {
        "writes"
    } else {
        "reads"
    };
    let size_label = if mode == Mode::Write {
        "Write size"
    } else {
        "Read size"
    };
    if format.is_json() {
        format.print_json(&json!({
            "mode": format!("{mode:?}").to_lowercase(),
            "total_time_run": seconds,
            "total_ops": ops,
            "op_size": op_size,
            "object_size": object_size,
            "bandwidth_mb_sec": bandwidth,
            "stddev_bandwidth": stddev(&samples.bandwidth),
            "max_bandwidth": max_of(&samples.bandwidth),
            "min_bandwidth": min_of(&samples.bandwidth),
            "average_iops": ops as f64 / seconds,
            "stddev_iops": stddev(&samples.iops),
            "max_iops": max_of(&samples.iops),
            "min_iops": min_of(&samples.iops),
            "average_latency_s": mean(&lat),
            "stddev_latency_s": stddev(&lat),
            "max_latency_s": max_of(&lat),
            "min_latency_s": min_of(&lat),
            "p50_latency_s": p50,
            "p99_latency_s": p99,
        }));
        return;
    }
    outln!("Total time run:         {seconds:.4}");
    outln!("Total {verb} made:      {ops}");
    outln!("{size_label}:             {op_size}");
    outln!("Object size:            {object_size}");
    outln!("Bandwidth (MB/sec):     {bandwidth:.4}");
    if mode == Mode::Write {
        outln!("Stddev Bandwidth:       {:.4}", stddev(&samples.bandwidth));
        outln!("Max bandwidth (MB/sec): {:.4}", max_of(&samples.bandwidth));
        outln!("Min bandwidth (MB/sec): {:.4}", min_of(&samples.bandwidth));
    }
    outln!("Average IOPS:           {:.0}", ops as f64 / seconds);
    outln!("Stddev IOPS:            {:.4}", stddev(&samples.iops));
    outln!("Max IOPS:               {:.0}", max_of(&samples.iops));
    outln!("Min IOPS:               {:.0}", min_of(&samples.iops));
    outln!("Average Latency(s):     {:.6}", mean(&lat));
    if mode == Mode::Write {
        outln!("Stddev Latency(s):      {:.6}", stddev(&lat));
    }
    outln!("Max latency(s):         {:.6}", max_of(&lat));
    outln!("Min latency(s):         {:.6}", min_of(&lat));
    outln!("p50 latency(s):         {p50:.6}");
    outln!("p99 latency(s):         {p99:.6}");
}

async fn read_metadata(ioctx: &IoCtx) -> Result<Option<Metadata>> {
    match ioctx.read(METADATA_OBJECT, 0, 0).await {
        Ok(data) => Ok(Some(serde_json::from_slice(&data).with_context(|| {
            format!("the benchmark metadata object `{METADATA_OBJECT}` is not readable")
        })?)),
        Err(RadosError::NotFound { .. }) => Ok(None),
        Err(error) => Err(rados_error(error)),
    }
}

/// Removes objects `prefix_object0 ..< count` with `concurrency` removals in flight;
/// objects already gone are fine. Returns how many were removed.
async fn remove_objects(
    ioctx: &IoCtx,
    prefix: &str,
    count: u64,
    concurrency: usize,
) -> Result<u64> {
    let next = Arc::new(AtomicU64::new(0));
    let removed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (ioctx, prefix, next, removed) = (
            ioctx.clone(),
            prefix.to_owned(),
            next.clone(),
            removed.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return Ok::<(), RadosError>(());
                }
                match ioctx.remove(&object_name(&prefix, index)).await {
                    Ok(()) => {
                        removed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(RadosError::NotFound { .. }) => {}
                    Err(error) => return Err(error),
                }
            }
        }));
    }
    for worker in workers {
        worker
            .await
            .context("a cleanup worker panicked")?
            .map_err(rados_error)?;
    }
    Ok(removed.load(Ordering::Relaxed))
}

/// Runs `rados bench`.
pub async fn run(ioctx: &IoCtx, args: BenchArgs, format: Format) -> Result<()> {
    let quiet = format.is_json();
    match args.mode {
        Mode::Write => {
            let prefix = args.run_name.clone().unwrap_or_else(|| {
                format!("benchmark_data_{}_{}", host_name(), std::process::id())
            });
            if !quiet {
                outln!("hints = 1");
                outln!(
                    "Maintaining {} concurrent writes of {} bytes to objects of size {} for up to {} seconds or 0 objects",
                    args.concurrency, args.block_size, args.block_size, args.seconds
                );
                outln!("Object prefix: {prefix}");
            }
            // One buffer shared by every op: the data is never copied on the client.
            let data = Bytes::from(write_data(args.block_size, args.random_data));
            let (elapsed, progress, samples) = drive(
                ioctx,
                Work::Write {
                    prefix: prefix.clone(),
                    data,
                },
                args.seconds,
                args.concurrency,
                quiet,
            )
            .await?;
            summary(
                format,
                Mode::Write,
                elapsed,
                &progress,
                &samples,
                args.block_size,
                args.block_size,
            );
            let written = progress.started.load(Ordering::Relaxed);
            if args.no_cleanup {
                let metadata = Metadata {
                    prefix,
                    objects: written,
                    object_size: args.block_size,
                    op_size: args.block_size,
                };
                ioctx
                    .write_full(METADATA_OBJECT, serde_json::to_vec(&metadata)?)
                    .await
                    .map_err(rados_error)?;
            } else {
                if !quiet {
                    outln!("Cleaning up (deleting benchmark objects)");
                }
                let started = Instant::now();
                let removed = remove_objects(ioctx, &prefix, written, args.concurrency).await?;
                if !quiet {
                    outln!("Removed {removed} objects");
                    outln!(
                        "Clean up completed and total clean up time :{:.6}",
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            Ok(())
        }
        Mode::Seq | Mode::Rand => {
            let Some(metadata) = read_metadata(ioctx).await? else {
                bail!(
                    "ENOENT: no benchmark data in pool `{}`: run `shoal rados -p {} bench SECONDS write --no-cleanup` first",
                    ioctx.pool_name(),
                    ioctx.pool_name()
                );
            };
            if metadata.objects == 0 {
                bail!("ENOENT: the last benchmark write left no objects");
            }
            let work = if args.mode == Mode::Seq {
                Work::Seq {
                    prefix: metadata.prefix.clone(),
                    count: metadata.objects,
                    size: metadata.object_size,
                }
            } else {
                Work::Rand {
                    prefix: metadata.prefix.clone(),
                    count: metadata.objects,
                    size: metadata.object_size,
                }
            };
            if !quiet {
                outln!("hints = 1");
            }
            let (elapsed, progress, samples) =
                drive(ioctx, work, args.seconds, args.concurrency, quiet).await?;
            summary(
                format,
                args.mode,
                elapsed,
                &progress,
                &samples,
                metadata.op_size,
                metadata.object_size,
            );
            Ok(())
        }
    }
}

/// Runs `rados cleanup`.
pub async fn cleanup_command(ioctx: &IoCtx, args: CleanupArgs) -> Result<()> {
    let metadata = read_metadata(ioctx).await?;
    let removed = match (&args.prefix, &metadata) {
        (None, None) => {
            bail!(
                "ENOENT: no benchmark metadata in pool `{}`; pass --prefix",
                ioctx.pool_name()
            )
        }
        (None, Some(metadata)) => {
            remove_objects(ioctx, &metadata.prefix, metadata.objects, 16).await?
        }
        (Some(prefix), _) => {
            // Without a count, find the objects by listing the pool.
            let mut lister = ioctx.list_objects();
            let mut removed = 0u64;
            let wanted = format!("{prefix}_object");
            while let Some(entry) = lister.next().await {
                let entry = entry.map_err(rados_error)?;
                if entry.name.starts_with(&wanted) {
                    match ioctx.remove(&entry.name).await {
                        Ok(()) => removed += 1,
                        Err(RadosError::NotFound { .. }) => {}
                        Err(error) => return Err(rados_error(error)),
                    }
                }
            }
            removed
        }
    };
    let drop_metadata = match (&args.prefix, &metadata) {
        (None, Some(_)) => true,
        (Some(prefix), Some(metadata)) => *prefix == metadata.prefix,
        _ => false,
    };
    if drop_metadata {
        match ioctx.remove(METADATA_OBJECT).await {
            Ok(()) | Err(RadosError::NotFound { .. }) => {}
            Err(error) => return Err(rados_error(error)),
        }
    }
    outln!("Removed {removed} objects");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4M"), Ok(4 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("4X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("big").is_err());
    }

    #[test]
    fn statistics() {
        assert_eq!(mean(&[1.0, 2.0, 3.0]), 2.0);
        assert!((stddev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) - 2.138).abs() < 0.001);
        assert_eq!(stddev(&[5.0]), 0.0);
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(object_name("p", 7), "p_object7");
    }
}
