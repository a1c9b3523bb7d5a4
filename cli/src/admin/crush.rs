//! `shoal osd crush ...`: edits of the live CRUSH map (`add-bucket`, `move`, `reweight`,
//! `rm`, `rule create-replicated|rm`), views (`rule ls|dump`, `dump`) and whole-map
//! transfer in Ceph's text format (`get-map FILE`, `set-map FILE`). A `set-map` file is
//! parsed here first, so a bad file is reported with its line and nothing is sent.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use librados::proto::mon::{
    command::Kind, CrushAddBucket, CrushMove, CrushRemove, CrushReweight,
    CrushRuleCreateReplicated, CrushRuleRemove, CrushSetMap,
};
use serde_json::{json, Value};

use super::output::weight_value;
use super::Session;

/// `shoal osd crush ...`.
#[derive(Debug, Args)]
pub struct CrushArgs {
    #[command(subcommand)]
    command: CrushCommand,
}

#[derive(Debug, Subcommand)]
enum CrushCommand {
    /// Add a bucket (optionally placed at TYPE=NAME locations).
    AddBucket {
        /// Bucket name.
        name: String,
        /// Bucket type (host, rack, root, ...).
        bucket_type: String,
        /// Location, e.g. root=default rack=r1.
        location: Vec<String>,
    },
    /// Move a bucket (or osd.N) under TYPE=NAME locations.
    Move {
        /// Bucket name or osd.N.
        name: String,
        /// Location, e.g. root=default rack=r1.
        #[arg(required = true)]
        location: Vec<String>,
    },
    /// Set the CRUSH weight of an OSD (osd.N) or a bucket.
    Reweight {
        /// Item name.
        name: String,
        /// Weight (conventionally TiB), >= 0.
        weight: f64,
    },
    /// Remove an empty bucket or an OSD from the CRUSH map.
    Rm {
        /// Item name.
        name: String,
    },
    /// CRUSH rules: create-replicated, rm, ls, dump.
    Rule(RuleArgs),
    /// The whole CRUSH map as JSON: devices, types, buckets, rules, tunables.
    Dump,
    /// Write the CRUSH map in Ceph's text format to FILE (`-`: stdout).
    GetMap {
        /// Output file.
        file: PathBuf,
    },
    /// Replace the CRUSH map with FILE, in Ceph's text format (`crushtool -d` output).
    SetMap {
        /// Input file (`-`: stdin).
        file: PathBuf,
    },
}

/// `shoal osd crush rule ...`.
#[derive(Debug, Args)]
pub struct RuleArgs {
    #[command(subcommand)]
    command: RuleCommand,
}

#[derive(Debug, Subcommand)]
enum RuleCommand {
    /// Create a replicated rule: take ROOT [class CLASS], chooseleaf firstn 0 type TYPE.
    CreateReplicated {
        /// Rule name.
        name: String,
        /// Root bucket.
        root: String,
        /// Failure domain type (host, rack, ...).
        failure_domain: String,
        /// Device class.
        class: Option<String>,
    },
    /// Remove a rule no pool uses.
    Rm {
        /// Rule name.
        name: String,
    },
    /// Rule names.
    Ls,
    /// Rules as JSON (one, or all).
    Dump {
        /// Rule name.
        name: Option<String>,
    },
}

/// Parses `TYPE=NAME` arguments.
fn location(args: &[String]) -> Result<HashMap<String, String>> {
    let mut location = HashMap::new();
    for arg in args {
        let Some((bucket_type, name)) = arg.split_once('=') else {
            bail!("EINVAL: location `{arg}` is not TYPE=NAME (e.g. root=default)");
        };
        if bucket_type.is_empty() || name.is_empty() {
            bail!("EINVAL: location `{arg}` is not TYPE=NAME (e.g. root=default)");
        }
        if location
            .insert(bucket_type.to_owned(), name.to_owned())
            .is_some()
        {
            bail!("EINVAL: location names type `{bucket_type}` twice");
        }
    }
    Ok(location)
}

/// Runs `shoal osd crush ...`.
pub async fn run(session: &Session, args: CrushArgs) -> Result<()> {
    let kind = match args.command {
        CrushCommand::AddBucket {
            name,
            bucket_type,
            location: args,
        } => Kind::CrushAddBucket(CrushAddBucket {
            name,
            bucket_type,
            location: location(&args)?,
        }),
        CrushCommand::Move {
            name,
            location: args,
        } => Kind::CrushMove(CrushMove {
            name,
            location: location(&args)?,
        }),
        CrushCommand::Reweight { name, weight } => {
            Kind::CrushReweight(CrushReweight { name, weight })
        }
        CrushCommand::Rm { name } => Kind::CrushRemove(CrushRemove { name }),
        CrushCommand::Rule(rule) => match rule.command {
            RuleCommand::CreateReplicated {
                name,
                root,
                failure_domain,
                class,
            } => Kind::CrushRuleCreateReplicated(CrushRuleCreateReplicated {
                name,
                root,
                failure_domain,
                device_class: class.unwrap_or_default(),
            }),
            RuleCommand::Rm { name } => Kind::CrushRuleRemove(CrushRuleRemove { name }),
            RuleCommand::Ls => return rule_ls(session).await,
            RuleCommand::Dump { name } => return rule_dump(session, name.as_deref()).await,
        },
        CrushCommand::Dump => return dump(session).await,
        CrushCommand::GetMap { file } => return get_map(session, &file).await,
        CrushCommand::SetMap { file } => {
            let text = read_input(&file)?;
            // Check the file here so that a bad one names its line and sends nothing.
            crush::text::parse(&text)
                .map_err(|error| anyhow::anyhow!("EINVAL: {}: {error}", file.display()))?;
            Kind::CrushSetMap(CrushSetMap { text })
        }
    };
    session.command(kind).await.map(drop)
}

fn read_input(file: &PathBuf) -> Result<String> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the CRUSH map from stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
    }
}

async fn get_map(session: &Session, file: &PathBuf) -> Result<()> {
    let map = session.map().await?;
    let text = crush::text::print(map.crush());
    if file.as_os_str() == "-" {
        out!("{text}");
    } else {
        std::fs::write(file, &text).with_context(|| format!("cannot write {}", file.display()))?;
        eprintln!(
            "wrote crush map of epoch {} to {}",
            map.epoch(),
            file.display()
        );
    }
    Ok(())
}

async fn rule_ls(session: &Session) -> Result<()> {
    let map = session.map().await?;
    let names: Vec<&str> = map
        .crush()
        .rules
        .values()
        .map(|rule| rule.name.as_str())
        .collect();
    if session.format.is_json() {
        session.format.print_json(&json!(names));
    } else {
        for name in names {
            outln!("{name}");
        }
    }
    Ok(())
}

fn item_name(crush: &crush::CrushMap, id: i32) -> String {
    crush
        .item_name(id)
        .map_or_else(|| id.to_string(), str::to_owned)
}

fn type_name(crush: &crush::CrushMap, type_id: i32) -> String {
    crush
        .types
        .get(&type_id)
        .cloned()
        .unwrap_or_else(|| type_id.to_string())
}

/// A rule as Ceph's `osd crush rule dump` shows it.
fn rule_json(crush: &crush::CrushMap, rule: &crush::Rule) -> Value {
    use crush::Step;
    let steps: Vec<Value> = rule
        .steps
        .iter()
        .map(|step| match *step {
            Step::Noop => json!({ "op": "noop" }),
            Step::Take(item) => {
                json!({ "op": "take", "item": item, "item_name": item_name(crush, item) })
            }
            Step::ChooseFirstN { n, type_id } => {
                json!({ "op": "choose_firstn", "num": n, "type": type_name(crush, type_id) })
            }
            Step::ChooseIndep { n, type_id } => {
                json!({ "op": "choose_indep", "num": n, "type": type_name(crush, type_id) })
            }
            Step::ChooseLeafFirstN { n, type_id } => {
                json!({ "op": "chooseleaf_firstn", "num": n, "type": type_name(crush, type_id) })
            }
            Step::ChooseLeafIndep { n, type_id } => {
                json!({ "op": "chooseleaf_indep", "num": n, "type": type_name(crush, type_id) })
            }
            Step::Emit => json!({ "op": "emit" }),
            Step::SetChooseTries(n) => json!({ "op": "set_choose_tries", "num": n }),
            Step::SetChooseLeafTries(n) => json!({ "op": "set_chooseleaf_tries", "num": n }),
            Step::SetChooseLocalTries(n) => json!({ "op": "set_choose_local_tries", "num": n }),
            Step::SetChooseLocalFallbackTries(n) => {
                json!({ "op": "set_choose_local_fallback_tries", "num": n })
            }
            Step::SetChooseLeafVaryR(n) => json!({ "op": "set_chooseleaf_vary_r", "num": n }),
            Step::SetChooseLeafStable(n) => json!({ "op": "set_chooseleaf_stable", "num": n }),
        })
        .collect();
    json!({
        "rule_id": rule.id,
        "rule_name": rule.name,
        "type": rule.rule_type.code(),
        "min_size": rule.min_size,
        "max_size": rule.max_size,
        "steps": steps,
    })
}

async fn rule_dump(session: &Session, name: Option<&str>) -> Result<()> {
    let map = session.map().await?;
    let crush = map.crush();
    let value = match name {
        Some(name) => {
            let Some(rule) = crush.rule_by_name(name) else {
                bail!("ENOENT: unknown crush rule '{name}'");
            };
            rule_json(crush, rule)
        }
        None => Value::Array(
            crush
                .rules
                .values()
                .map(|rule| rule_json(crush, rule))
                .collect(),
        ),
    };
    // Ceph dumps rules as JSON whatever the format; plain gets the indented form.
    let format = if session.format.is_json() {
        session.format
    } else {
        super::Format::JsonPretty
    };
    format.print_json(&value);
    Ok(())
}

async fn dump(session: &Session) -> Result<()> {
    let map = session.map().await?;
    let crush = map.crush();
    let value = json!({
        "devices": crush.devices.values().map(|device| json!({
            "id": device.id, "name": device.name, "class": device.class,
        })).collect::<Vec<_>>(),
        "types": crush.types.iter().map(|(id, name)| json!({ "type_id": id, "name": name })).collect::<Vec<_>>(),
        "buckets": crush.buckets.values().filter(|bucket| bucket.shadow.is_none()).map(|bucket| json!({
            "id": bucket.id,
            "name": bucket.name,
            "type_id": bucket.type_id,
            "type_name": type_name(crush, bucket.type_id),
            "weight": weight_value(bucket.weight()),
            "alg": bucket.alg.name(),
            "hash": if bucket.hash == 0 { "rjenkins1".to_owned() } else { bucket.hash.to_string() },
            "items": bucket.items.iter().map(|item| json!({
                "id": item.id, "weight": weight_value(item.weight),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "rules": crush.rules.values().map(|rule| rule_json(crush, rule)).collect::<Vec<_>>(),
        "tunables": {
            "choose_local_tries": crush.tunables.choose_local_tries,
            "choose_local_fallback_tries": crush.tunables.choose_local_fallback_tries,
            "choose_total_tries": crush.tunables.choose_total_tries,
            "chooseleaf_descend_once": crush.tunables.chooseleaf_descend_once,
            "chooseleaf_vary_r": crush.tunables.chooseleaf_vary_r,
            "chooseleaf_stable": crush.tunables.chooseleaf_stable,
            "straw_calc_version": crush.tunables.straw_calc_version,
            "allowed_bucket_algs": crush.tunables.allowed_bucket_algs,
        },
    });
    let format = if session.format.is_json() {
        session.format
    } else {
        super::Format::JsonPretty
    };
    format.print_json(&value);
    Ok(())
}
