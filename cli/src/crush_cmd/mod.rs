//! `shoal crush ...`: offline tools on CRUSH maps in Ceph's text format, shaped like
//! `crushtool`: `test` (crushtool's `--test`, byte for byte), `movement` (how much data a
//! map change or a reweight would move) and `bench` (mapping throughput).
//!
//! This module owns the argument structs, loading maps, and turning bad input into errors
//! that name the file and line; the work itself is in [`tester`], [`movement`] and
//! [`bench`].

mod bench;
mod cfmt;
mod movement;
mod tester;

use std::collections::BTreeMap;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use crush::CrushMap;

/// The most results one mapping may ask for. crushtool has no limit but puts the result on
/// the stack, so it crashes long before sizes like a million; no real rule needs more than a
/// few dozen.
pub const MAX_NUM_REP: i32 = 1024;

/// `shoal crush`: CRUSH map tools.
#[derive(Debug, Args)]
pub struct CrushArgs {
    #[command(subcommand)]
    command: CrushCommand,
}

#[derive(Debug, Subcommand)]
enum CrushCommand {
    /// Map a range of inputs like `crushtool -i MAP --test` and print what it prints.
    Test(TestArgs),
    /// Preview how much data a map change or a reweight would move.
    Movement(movement::MovementArgs),
    /// Measure mappings per second of one rule (single-threaded).
    Bench(bench::BenchArgs),
}

/// Options of `shoal crush test`; names (and their `_` spellings) as crushtool's.
#[derive(Debug, Args)]
struct TestArgs {
    /// The CRUSH map, in Ceph's text format (`crushtool -d` output); `-` reads stdin.
    #[arg(long, short = 'i', value_name = "FILE")]
    map: PathBuf,
    /// Rule id to test (default: every rule).
    #[arg(long, alias = "ruleset", allow_negative_numbers = true)]
    rule: Option<i32>,
    /// Results per mapping (default: each rule's min_size..=max_size).
    #[arg(long, alias = "num_rep", allow_negative_numbers = true)]
    num_rep: Option<i32>,
    /// First input x (crushtool's default range is 0..=1023).
    #[arg(long, alias = "min_x", allow_negative_numbers = true)]
    min_x: Option<i32>,
    /// Last input x.
    #[arg(long, alias = "max_x", allow_negative_numbers = true)]
    max_x: Option<i32>,
    /// Test only this input.
    #[arg(long, allow_negative_numbers = true, conflicts_with_all = ["min_x", "max_x"])]
    x: Option<i32>,
    /// Map `crush_hash32_2(x, POOL)` instead of x, as a pool's PGs do (-1: off).
    #[arg(long, alias = "pool_id", allow_negative_numbers = true)]
    pool_id: Option<i64>,
    /// Reweight device OSD to W (0..1, read as C's atof does); repeatable.
    #[arg(
        long,
        short = 'w',
        num_args = 2,
        value_names = ["OSD", "W"],
        allow_negative_numbers = true,
        action = clap::ArgAction::Append
    )]
    weight: Vec<String>,
    /// Print every mapping: `CRUSH rule R x X [osds]`.
    #[arg(long, alias = "show_mappings")]
    show_mappings: bool,
    /// Print how many mappings got each result size.
    #[arg(long, alias = "show_statistics")]
    show_statistics: bool,
    /// Print stored/expected placements per device that got any (implies statistics).
    #[arg(long, alias = "show_utilization")]
    show_utilization: bool,
    /// Like --show-utilization, for every device, and the reweight vector.
    #[arg(long, alias = "show_utilization_all")]
    show_utilization_all: bool,
    /// Print mappings with fewer results than asked for, or with holes.
    #[arg(long, alias = "show_bad_mappings")]
    show_bad_mappings: bool,
}

/// Runs a `shoal crush` command, writing its report to standard output.
pub fn run(args: CrushArgs) -> Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let outcome = match args.command {
        CrushCommand::Test(test) => run_test(test, &mut out),
        CrushCommand::Movement(movement) => movement::run(movement, &mut out),
        CrushCommand::Bench(bench) => bench::run(bench, &mut out),
    };
    let flushed = out.flush().map_err(anyhow::Error::from);
    // A reader that went away (`shoal crush test ... | head`) is not an error: `main`
    // recognises the closed pipe and exits quietly.
    outcome.and(flushed)
}

/// Reads and compiles a text map; errors name the file and the line.
pub fn load_map(path: &Path) -> Result<CrushMap> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .context("cannot read a crush map from standard input")?;
        text
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read crush map {}", path.display()))?
    };
    crush::text::parse(&text)
        .with_context(|| format!("cannot compile crush map {}", map_name(path)))
}

/// How messages name a map: its path, or "from standard input" for `-` (it follows
/// "crush map" or "the map").
pub fn map_name(path: &Path) -> String {
    if path == Path::new("-") {
        "from standard input".to_string()
    } else {
        path.display().to_string()
    }
}

/// Parses crushtool-style `--weight OSD W` pairs into 16.16 reweights by device id.
pub fn parse_weights(pairs: &[String]) -> Result<BTreeMap<i32, u32>> {
    let mut weights = BTreeMap::new();
    for pair in pairs.chunks(2) {
        let [device, weight] = pair else {
            bail!("--weight needs two values: OSD and W");
        };
        let device: i32 = device
            .trim()
            .parse()
            .with_context(|| format!("--weight: `{device}` is not a device id"))?;
        weights.insert(device, cfmt::crushtool_reweight(cfmt::atof(weight) as f32));
    }
    Ok(weights)
}

/// Checks a `--num-rep` against what the tools accept.
pub fn check_num_rep(num_rep: i32) -> Result<usize> {
    if !(0..=MAX_NUM_REP).contains(&num_rep) {
        bail!("--num-rep {num_rep} is out of range: it must be between 0 and {MAX_NUM_REP}");
    }
    Ok(num_rep as usize)
}

/// The rule `id`, or an error that lists the rules the map has.
pub fn find_rule<'a>(map: &'a CrushMap, id: i64, path: &Path) -> Result<&'a crush::Rule> {
    if let Some(rule) = u32::try_from(id).ok().and_then(|id| map.rules.get(&id)) {
        return Ok(rule);
    }
    let known: Vec<String> = map
        .rules
        .values()
        .map(|r| format!("{} ({})", r.id, r.name))
        .collect();
    if known.is_empty() {
        bail!(
            "rule {id} does not exist: the map {} has no rules",
            map_name(path)
        );
    }
    bail!(
        "rule {id} does not exist in the map {}; its rules are {}",
        map_name(path),
        known.join(", ")
    )
}

fn run_test(args: TestArgs, out: &mut impl Write) -> Result<()> {
    let map = load_map(&args.map)?;
    let mut settings = tester::TestSettings {
        pool_id: match args.pool_id {
            None | Some(-1) => None,
            // crushtool passes the 64-bit value to the hash as uint32_t.
            Some(pool) => Some(pool as u32),
        },
        device_weights: parse_weights(&args.weight)?,
        show_mappings: args.show_mappings,
        show_statistics: args.show_statistics,
        show_utilization: args.show_utilization,
        show_utilization_all: args.show_utilization_all,
        show_bad_mappings: args.show_bad_mappings,
        ..tester::TestSettings::default()
    };
    if let Some(rule) = args.rule.filter(|r| *r >= 0) {
        // crushtool silently prints nothing for a rule it does not have; say why instead.
        find_rule(&map, i64::from(rule), &args.map)?;
        settings.min_rule = rule;
        settings.max_rule = rule;
    }
    if let Some(num_rep) = args.num_rep.filter(|n| *n >= 0) {
        check_num_rep(num_rep)?;
        settings.min_rep = num_rep;
        settings.max_rep = num_rep;
        warn_about_sizes(&map, &settings, num_rep);
    }
    if let Some(x) = args.x {
        settings.min_x = x;
        settings.max_x = x;
    } else {
        settings.min_x = args.min_x.unwrap_or(-1);
        settings.max_x = args.max_x.unwrap_or(-1);
    }
    let any_output = settings.show_mappings
        || settings.show_statistics
        || settings.show_utilization
        || settings.show_utilization_all
        || settings.show_bad_mappings;
    if !any_output {
        eprintln!("WARNING: no output selected; use --show-X");
    }
    tester::run(&map, &settings, out, &mut io::stderr().lock())
        .context("cannot write the report")?;
    Ok(())
}

/// crushtool maps sizes outside a rule's min_size..max_size without a word; we map them
/// too (the output stays crushtool's) but say so on stderr.
fn warn_about_sizes(map: &CrushMap, settings: &tester::TestSettings, num_rep: i32) {
    if num_rep == 0 {
        eprintln!("note: --num-rep 0 asks for no results; every mapping will be empty");
        return;
    }
    for rule in map.rules.values() {
        let selected = settings.min_rule < 0 || i64::from(rule.id) == i64::from(settings.min_rule);
        if selected && (num_rep as u32) > rule.max_size {
            eprintln!(
                "note: --num-rep {num_rep} is above rule {} ({})'s max_size {}; mapping it anyway, as crushtool does",
                rule.id, rule.name, rule.max_size
            );
        }
    }
}
