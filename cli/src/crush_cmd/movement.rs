//! `shoal crush movement`: a preview of the data a change would move, before making it.
//!
//! The change is a second map (`--to`, e.g. with a device added or removed), a reweight
//! (`--weight OSD W`, crushtool's syntax, applied to the new side), or both. Both sides are
//! mapped as `crushtool --test` maps them (`choose_args 0`, every listed device at full
//! reweight unless overridden) over the same inputs by [`crush::analysis`]; this module
//! only turns its figures into a report, as text or as JSON (`--format json`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use crush::analysis::{movement_between, Movement, Placement};
use crush::CrushMap;
use serde_json::json;

use super::tester::reweight_vector;

/// Report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Aligned text for people.
    Plain,
    /// One JSON object, for scripts.
    Json,
}

/// Options of `shoal crush movement`.
#[derive(Debug, Args)]
pub struct MovementArgs {
    /// The map as it is (Ceph's text format).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The map after the change (default: the same map, for reweight previews).
    #[arg(long, value_name = "FILE")]
    to: Option<PathBuf>,
    /// Rule id.
    #[arg(long)]
    rule: u32,
    /// Results per mapping (the pool size).
    #[arg(long, alias = "num_rep", allow_negative_numbers = true)]
    num_rep: i32,
    /// First input x.
    #[arg(long, alias = "min_x", default_value_t = 0)]
    min_x: u32,
    /// Last input x (1023 by default, as crushtool's --test).
    #[arg(long, alias = "max_x", default_value_t = 1023)]
    max_x: u32,
    /// After the change, reweight device OSD to W (0..1, crushtool's --weight); repeatable.
    #[arg(
        long,
        short = 'w',
        num_args = 2,
        value_names = ["OSD", "W"],
        allow_negative_numbers = true,
        action = clap::ArgAction::Append
    )]
    weight: Vec<String>,
    /// Before the change, reweight device OSD to W; repeatable.
    #[arg(
        long,
        num_args = 2,
        value_names = ["OSD", "W"],
        allow_negative_numbers = true,
        action = clap::ArgAction::Append
    )]
    from_weight: Vec<String>,
    /// In the text report, list this many devices, largest change first (0: all that
    /// change).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// List every device in id order, also those whose load does not change.
    #[arg(long)]
    all_devices: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Plain)]
    format: Format,
}

/// Computes the preview and prints it.
pub fn run(args: MovementArgs, out: &mut impl Write) -> Result<()> {
    if args.min_x > args.max_x {
        bail!(
            "--min-x {} is above --max-x {}: no inputs",
            args.min_x,
            args.max_x
        );
    }
    let num_rep = super::check_num_rep(args.num_rep)?;
    let old_map = super::load_map(&args.from)?;
    let new_map = match &args.to {
        Some(path) => super::load_map(path)?,
        None => old_map.clone(),
    };
    let old_rule = super::find_rule(&old_map, i64::from(args.rule), &args.from)?;
    let to_path = args.to.as_ref().unwrap_or(&args.from);
    super::find_rule(&new_map, i64::from(args.rule), to_path)?;
    if args.to.is_none() && args.weight.is_empty() && args.from_weight.is_empty() {
        eprintln!("note: neither --to nor --weight given: nothing changes");
    }

    let old_weights = reweight_vector(&old_map, &super::parse_weights(&args.from_weight)?);
    let new_weights = reweight_vector(&new_map, &super::parse_weights(&args.weight)?);
    let old = Placement::with_reweights(&old_map, &old_weights);
    let new = Placement::with_reweights(&new_map, &new_weights);
    // The range end is exclusive; max_x = u32::MAX loses only that last input.
    let inputs = args.min_x..args.max_x.saturating_add(1);
    let movement = movement_between(&old, &new, args.rule, num_rep, inputs)
        .context("cannot compute the movement preview")?;

    let report = Report {
        movement: &movement,
        rule_name: &old_rule.name,
        min_x: args.min_x,
        max_x: args.max_x,
        old_map: &old_map,
        new_map: &new_map,
        all_devices: args.all_devices,
        top: args.top,
    };
    match args.format {
        Format::Plain => report.plain(out),
        Format::Json => report.json(out),
    }
    .context("cannot write the report")
}

/// What the report needs besides the figures.
struct Report<'a> {
    movement: &'a Movement,
    rule_name: &'a str,
    min_x: u32,
    max_x: u32,
    old_map: &'a CrushMap,
    new_map: &'a CrushMap,
    all_devices: bool,
    top: usize,
}

impl Report<'_> {
    /// Positions compared: every input asks for `num_rep` slots.
    fn slots(&self) -> u64 {
        self.movement.inputs * self.movement.num_rep as u64
    }

    fn device_name(&self, id: i32) -> String {
        self.new_map
            .devices
            .get(&id)
            .or_else(|| self.old_map.devices.get(&id))
            .map_or_else(|| format!("device.{id}"), |d| d.name.clone())
    }

    fn shown_devices(&self) -> impl Iterator<Item = &crush::analysis::DeviceMovement> {
        self.movement
            .devices
            .iter()
            .filter(|d| self.all_devices || d.before != d.after)
    }

    fn plain(&self, out: &mut impl Write) -> std::io::Result<()> {
        let m = self.movement;
        writeln!(
            out,
            "rule {} ({}) num_rep {}, x = {}..{} ({} inputs)",
            m.rule, self.rule_name, m.num_rep, self.min_x, self.max_x, m.inputs
        )?;
        let line = |out: &mut dyn Write, what: &str, part: u64, whole: u64| {
            writeln!(
                out,
                "{what:<40} {part:>10} of {whole:<10} {:>8.3}%",
                percent(part, whole)
            )
        };
        line(
            out,
            "inputs whose devices change",
            m.changed_inputs,
            m.inputs,
        )?;
        line(
            out,
            "inputs whose devices only reorder",
            m.reordered_inputs,
            m.inputs,
        )?;
        line(
            out,
            "slots whose device changes",
            m.changed_slots,
            self.slots(),
        )?;
        line(
            out,
            "replicas moved (new in an input's set)",
            m.moved_replicas,
            m.placements_after,
        )?;
        writeln!(
            out,
            "placements: {} before, {} after",
            m.placements_before, m.placements_after
        )?;
        let changing = m.devices.iter().filter(|d| d.before != d.after).count();
        let mut devices: Vec<_> = self.shown_devices().collect();
        if self.all_devices {
            writeln!(out, "devices ({changing} of {} change):", m.devices.len())?;
        } else if changing == 0 {
            return writeln!(out, "no device's load changes");
        } else {
            // Largest change first; ties in id order (the sort is stable).
            devices.sort_by_key(|d| std::cmp::Reverse(d.before.abs_diff(d.after)));
            if self.top > 0 && devices.len() > self.top {
                devices.truncate(self.top);
                writeln!(
                    out,
                    "devices whose load changes: {changing}; the {} largest changes (--top):",
                    self.top
                )?;
            } else {
                writeln!(out, "devices whose load changes: {changing}")?;
            }
        }
        writeln!(
            out,
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "device", "before", "after", "share%", "share%'", "change"
        )?;
        for d in devices {
            writeln!(
                out,
                "{:<12} {:>10} {:>10} {:>10.3} {:>10.3} {:>+10.3}",
                self.device_name(d.device),
                d.before,
                d.after,
                100.0 * d.share_before,
                100.0 * d.share_after,
                100.0 * (d.share_after - d.share_before)
            )?;
        }
        Ok(())
    }

    fn json(&self, out: &mut impl Write) -> std::io::Result<()> {
        let m = self.movement;
        let devices: Vec<_> = self
            .shown_devices()
            .map(|d| {
                json!({
                    "device": d.device,
                    "name": self.device_name(d.device),
                    "before": d.before,
                    "after": d.after,
                    "share_before": d.share_before,
                    "share_after": d.share_after,
                })
            })
            .collect();
        let report = json!({
            "rule": m.rule,
            "rule_name": self.rule_name,
            "num_rep": m.num_rep,
            "min_x": self.min_x,
            "max_x": self.max_x,
            "inputs": m.inputs,
            "changed_inputs": m.changed_inputs,
            "changed_fraction": m.changed_fraction,
            "reordered_inputs": m.reordered_inputs,
            "changed_slots": m.changed_slots,
            "slots": self.slots(),
            "moved_replicas": m.moved_replicas,
            "moved_fraction": m.moved_fraction,
            "placements_before": m.placements_before,
            "placements_after": m.placements_after,
            "devices": devices,
        });
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}
