//! `shoal crush bench`: single-threaded mapping throughput of one rule, the figure to compare
//! with crushtool's (`crush-vectors/perf/crushtool-throughput.txt`).
//!
//! Each run maps `x = 0..count` with [`Mapper::do_rule_into`] (one reused workspace and
//! result buffer, crushtool's default reweight vector, the map's `choose_args 0`); the best
//! of `--repeat` runs is reported, as the anchor figures are best of 3. A checksum of all
//! results goes through [`std::hint::black_box`] so the work cannot be optimised away.
//!
//! The machine is shared, so besides wall-clock time the report gives the rate per second
//! of CPU time the thread actually got (from `/proc/thread-self/stat`, in 10 ms ticks;
//! left out where that file does not exist). On a loaded machine the second figure is the
//! one to compare.

use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use crush::{hash::hash32_2, Mapper, Workspace};

/// Options of `shoal crush bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The CRUSH map, in Ceph's text format.
    #[arg(long, short = 'i', value_name = "FILE")]
    map: PathBuf,
    /// Rule id.
    #[arg(long)]
    rule: u32,
    /// Results per mapping.
    #[arg(long, alias = "num_rep", allow_negative_numbers = true)]
    num_rep: i32,
    /// Mappings per run (inputs 0..COUNT).
    #[arg(long, default_value_t = 1_000_000)]
    count: u32,
    /// Runs; the fastest is reported.
    #[arg(long, default_value_t = 3)]
    repeat: u32,
    /// Map `crush_hash32_2(x, POOL)` instead of x, as a pool's PGs do.
    #[arg(long, alias = "pool_id")]
    pool_id: Option<u32>,
}

/// Runs the benchmark and prints one line of results.
pub fn run(args: BenchArgs, out: &mut impl Write) -> Result<()> {
    let map = super::load_map(&args.map)?;
    let rule = super::find_rule(&map, i64::from(args.rule), &args.map)?;
    let num_rep = super::check_num_rep(args.num_rep)?;
    if args.count == 0 || args.repeat == 0 {
        bail!("--count and --repeat must be at least 1");
    }
    let mapper = Mapper::for_crushtool(&map);
    let weights = map.default_reweights();
    let mut workspace = Workspace::new();
    let mut result = Vec::with_capacity(num_rep);
    let mut best = Duration::MAX;
    let mut best_cpu: Option<Duration> = None;
    let mut checksum = 0u64;
    for _ in 0..args.repeat {
        let cpu_start = thread_cpu_time();
        let start = Instant::now();
        for x in 0..args.count {
            let input = match args.pool_id {
                Some(pool) => hash32_2(x, pool),
                None => x,
            };
            mapper.do_rule_into(
                rule.id,
                black_box(input),
                num_rep,
                &weights,
                &mut workspace,
                &mut result,
            );
            checksum = result
                .iter()
                .fold(checksum, |c, &o| c.rotate_left(5) ^ o as u32 as u64);
        }
        best = best.min(start.elapsed());
        if let (Some(before), Some(after)) = (cpu_start, thread_cpu_time()) {
            let used = after.saturating_sub(before);
            best_cpu = Some(best_cpu.map_or(used, |b| b.min(used)));
        }
    }
    black_box(checksum);
    let seconds = best.as_secs_f64();
    let rate = f64::from(args.count) / seconds;
    let cpu_rate = match best_cpu {
        Some(cpu) if !cpu.is_zero() => format!(
            "; {} mappings per CPU-second ({:.3} s of CPU)",
            group_thousands((f64::from(args.count) / cpu.as_secs_f64()).round() as u64),
            cpu.as_secs_f64()
        ),
        _ => String::new(),
    };
    writeln!(
        out,
        "{} rule {} ({}) num_rep {}: {} mappings in {:.3} s (best of {}): {} mappings/s{}",
        args.map.display(),
        rule.id,
        rule.name,
        num_rep,
        args.count,
        seconds,
        args.repeat,
        group_thousands(rate.round() as u64),
        cpu_rate
    )
    .context("cannot write the report")?;
    Ok(())
}

/// CPU time (user + system) this thread has used so far, from `/proc/thread-self/stat`
/// (fields 14 and 15, in clock ticks of 10 ms: Linux's USER_HZ is 100 on every platform
/// we build for). `None` where the file is missing or malformed.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after_name = stat.rsplit_once(')')?.1;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

/// `1234567` as `1,234,567`.
fn group_thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::group_thousands;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(613_000), "613,000");
        assert_eq!(group_thousands(1_234_567), "1,234,567");
    }
}
