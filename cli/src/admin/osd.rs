//! `shoal osd ...`: OSD views (`tree`, `dump`, `ls`), OSD state changes (`in`, `out`,
//! `down`, `reweight`), cluster flags (`set`, `unset`), object placement (`map`) and the
//! pool commands (`osd pool ...`); `osd crush ...` is in [`super::crush`].
//!
//! Views are computed from the map; changes are monitor commands. Arguments the monitors
//! would read as "use the default" (a 0 size or pg_num: mon.proto has no way to tell an
//! explicit 0 from an absent value) are refused here, naming the argument.

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use librados::clustermap::{
    placement::format_osd_list, ClusterMap, Fullness, OsdId, OsdInfo, Pool,
};
use librados::proto::mon::{command::Kind, OsdIds, OsdReweight, PoolCreate, PoolRemove, PoolSet};
use serde_json::{json, Value};

use super::output::{timestamp, weight, weight_value, Align, Table};
use super::{crush, Session};

/// `shoal osd ...`.
#[derive(Debug, Args)]
pub struct OsdArgs {
    #[command(subcommand)]
    command: OsdCommand,
    #[command(flatten)]
    pub(super) out: super::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum OsdCommand {
    /// The CRUSH hierarchy with each OSD's state.
    Tree,
    /// The whole OSD map: epoch, flags, pools, OSDs, temporary mappings.
    Dump,
    /// OSD ids, one per line.
    Ls,
    /// Per-OSD usage: size, used, available, PGs (asked from each OSD).
    Df,
    /// Mark OSDs in (they receive data).
    In {
        /// OSD ids.
        #[arg(required = true)]
        ids: Vec<OsdId>,
    },
    /// Mark OSDs out (their data moves elsewhere).
    Out {
        /// OSD ids.
        #[arg(required = true)]
        ids: Vec<OsdId>,
    },
    /// Mark OSDs down (they must boot again to be up).
    Down {
        /// OSD ids.
        #[arg(required = true)]
        ids: Vec<OsdId>,
    },
    /// Set an OSD's override weight (0.0 to 1.0).
    Reweight {
        /// OSD id.
        id: OsdId,
        /// Weight between 0.0 and 1.0.
        weight: f64,
    },
    /// Set a cluster flag (noout, noup, nodown, noin, noscrub, ...).
    Set {
        /// The flag.
        flag: String,
    },
    /// Clear a cluster flag.
    Unset {
        /// The flag.
        flag: String,
    },
    /// Where an object is placed: PG, up and acting sets.
    Map {
        /// Pool name.
        pool: String,
        /// Object name.
        object: String,
        /// Namespace inside the pool.
        namespace: Option<String>,
    },
    /// Pools: create, ls, get, set, rm.
    Pool(PoolArgs),
    /// The live CRUSH map: buckets, weights, rules, get-map/set-map.
    Crush(crush::CrushArgs),
}

/// `shoal osd pool ...`.
#[derive(Debug, Args)]
pub struct PoolArgs {
    #[command(subcommand)]
    command: PoolCommand,
}

/// The `detail` keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Detail {
    /// Show every setting.
    Detail,
}

/// The settings `pool get` and `pool set` know.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
enum PoolKey {
    /// Replicas.
    Size,
    /// Fewest acting replicas that accept writes.
    MinSize,
    /// Placement groups.
    PgNum,
    /// Placement seeds CRUSH sees (get only).
    PgpNum,
    /// CRUSH rule name.
    CrushRule,
    /// Every setting (get only).
    All,
}

impl PoolKey {
    fn name(self) -> &'static str {
        match self {
            PoolKey::Size => "size",
            PoolKey::MinSize => "min_size",
            PoolKey::PgNum => "pg_num",
            PoolKey::PgpNum => "pgp_num",
            PoolKey::CrushRule => "crush_rule",
            PoolKey::All => "all",
        }
    }
}

#[derive(Debug, Subcommand)]
enum PoolCommand {
    /// Create a replicated pool.
    Create {
        /// Pool name.
        name: String,
        /// Placement groups (default: the monitors' default, 32).
        pg_num: Option<u32>,
        /// Replicas (default 3).
        #[arg(long)]
        size: Option<u32>,
        /// Fewest acting replicas that accept writes (default: a majority of size).
        #[arg(long)]
        min_size: Option<u32>,
        /// CRUSH rule name (default: the default replicated rule).
        #[arg(long = "rule", alias = "crush-rule")]
        rule: Option<String>,
    },
    /// List pools (`detail`: with their settings).
    Ls {
        /// `detail`.
        #[arg(value_enum)]
        detail: Option<Detail>,
    },
    /// Print a pool setting.
    Get {
        /// Pool name.
        name: String,
        /// The setting.
        #[arg(value_enum)]
        key: PoolKey,
    },
    /// Change a pool setting.
    Set {
        /// Pool name.
        name: String,
        /// The setting.
        #[arg(value_enum)]
        key: PoolKey,
        /// The new value.
        value: String,
    },
    /// Delete a pool: name it twice and pass --yes-i-really-really-mean-it.
    Rm {
        /// Pool name.
        name: String,
        /// The pool name again.
        confirm: Option<String>,
        /// Confirms the deletion.
        #[arg(long = "yes-i-really-really-mean-it")]
        really: bool,
    },
}

/// Runs `shoal osd ...`.
pub async fn run(session: &Session, args: OsdArgs) -> Result<()> {
    match args.command {
        OsdCommand::Tree => tree(session).await,
        OsdCommand::Dump => dump(session).await,
        OsdCommand::Df => super::osd_df::run(session).await,
        OsdCommand::Ls => {
            let map = session.map().await?;
            let ids: Vec<OsdId> = map.osds().keys().copied().collect();
            if session.format.is_json() {
                session.format.print_json(&json!(ids));
            } else {
                for id in ids {
                    outln!("{id}");
                }
            }
            Ok(())
        }
        OsdCommand::In { ids } => session.command(Kind::OsdIn(OsdIds { ids })).await.map(drop),
        OsdCommand::Out { ids } => session
            .command(Kind::OsdOut(OsdIds { ids }))
            .await
            .map(drop),
        OsdCommand::Down { ids } => session
            .command(Kind::OsdDown(OsdIds { ids }))
            .await
            .map(drop),
        OsdCommand::Reweight { id, weight } => session
            .command(Kind::OsdReweight(OsdReweight { id, weight }))
            .await
            .map(drop),
        OsdCommand::Set { flag } => session.command(Kind::SetFlag(flag)).await.map(drop),
        OsdCommand::Unset { flag } => session.command(Kind::UnsetFlag(flag)).await.map(drop),
        OsdCommand::Map {
            pool,
            object,
            namespace,
        } => osd_map(session, &pool, &object, namespace.as_deref().unwrap_or("")).await,
        OsdCommand::Pool(args) => pool(session, args).await,
        OsdCommand::Crush(args) => crush::run(session, args).await,
    }
}

/// One OSD's line of `osd tree`: status and reweight as Ceph shows them.
fn osd_status(map: &ClusterMap, id: OsdId) -> (&'static str, u32) {
    match map.osd(id) {
        None => ("DNE", 0),
        Some(osd) => (
            if osd.up { "up" } else { "down" },
            if osd.is_in { osd.reweight } else { 0 },
        ),
    }
}

async fn tree(session: &Session) -> Result<()> {
    let map = session.map().await?;
    let crush = map.crush();
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("CLASS", Align::Left),
        ("WEIGHT", Align::Right),
        ("TYPE NAME", Align::Left),
        ("STATUS", Align::Left),
        ("REWEIGHT", Align::Right),
        ("PRI-AFF", Align::Right),
    ]);
    let mut nodes: Vec<Value> = Vec::new();
    // Roots: buckets that are no other bucket's item (shadow trees are hidden, as Ceph
    // hides them without --show-shadow).
    let roots: Vec<i32> = crush
        .buckets
        .values()
        .filter(|bucket| bucket.shadow.is_none() && crush.parent_of(bucket.id).is_none())
        .map(|bucket| bucket.id)
        .collect();
    // Depth-first, items in bucket order; (item id, weight in its parent, depth).
    let mut stack: Vec<(i32, u32, usize)> = roots
        .iter()
        .rev()
        .map(|id| (*id, crush.buckets[id].weight(), 0))
        .collect();
    let mut placed = std::collections::BTreeSet::new();
    while let Some((id, item_weight, depth)) = stack.pop() {
        let indent = "    ".repeat(depth);
        if let Some(bucket) = crush.buckets.get(&id) {
            let type_name = crush
                .types
                .get(&bucket.type_id)
                .cloned()
                .unwrap_or_default();
            table.row(vec![
                id.to_string(),
                String::new(),
                weight(item_weight),
                format!("{indent}{type_name} {}", bucket.name),
            ]);
            nodes.push(json!({
                "id": id, "name": bucket.name, "type": type_name, "type_id": bucket.type_id,
                "crush_weight": weight_value(item_weight), "depth": depth,
                "children": bucket.items.iter().map(|item| item.id).collect::<Vec<_>>(),
            }));
            for item in bucket.items.iter().rev() {
                stack.push((item.id, item.weight, depth + 1));
            }
        } else {
            placed.insert(id);
            let device = crush.devices.get(&id);
            let class = device
                .and_then(|device| device.class.clone())
                .unwrap_or_default();
            let name = device.map_or_else(|| format!("osd.{id}"), |device| device.name.clone());
            let (status, reweight) = osd_status(&map, id);
            table.row(vec![
                id.to_string(),
                class.clone(),
                weight(item_weight),
                format!("{indent}{name}"),
                status.to_owned(),
                weight(reweight),
                weight(0x10000),
            ]);
            nodes.push(json!({
                "id": id, "device_class": class, "name": name, "type": "osd", "type_id": 0,
                "crush_weight": weight_value(item_weight), "depth": depth, "status": status,
                "reweight": weight_value(reweight), "primary_affinity": 1.0,
            }));
        }
    }
    // OSDs the map has but no bucket holds (Ceph lists them after the tree).
    let mut stray = Vec::new();
    for id in map.osds().keys().filter(|id| !placed.contains(id)) {
        let (status, reweight) = osd_status(&map, *id);
        table.row(vec![
            id.to_string(),
            String::new(),
            weight(0),
            format!("osd.{id}"),
            status.to_owned(),
            weight(reweight),
            weight(0x10000),
        ]);
        stray.push(json!({
            "id": id, "name": format!("osd.{id}"), "type": "osd", "type_id": 0,
            "crush_weight": 0.0, "depth": 0, "status": status,
            "reweight": weight_value(reweight), "primary_affinity": 1.0,
        }));
    }
    if session.format.is_json() {
        session
            .format
            .print_json(&json!({ "nodes": nodes, "stray": stray }));
    } else {
        outln!("{}", table.render());
    }
    Ok(())
}

/// A pool's line in `osd dump` and `pool ls detail`, as Ceph writes it.
fn pool_line(pool: &Pool) -> String {
    let mut flags = Vec::new();
    if pool.flags.hashpspool {
        flags.push("hashpspool");
    }
    if pool.flags.nodelete {
        flags.push("nodelete");
    }
    if pool.flags.nopgchange {
        flags.push("nopgchange");
    }
    if pool.flags.nosizechange {
        flags.push("nosizechange");
    }
    format!(
        "pool {} '{}' {} size {} min_size {} crush_rule {} object_hash {} pg_num {} pgp_num {} \
         last_change {} flags {}",
        pool.id,
        pool.name,
        pool.pool_type,
        pool.size,
        pool.min_size,
        pool.crush_rule,
        pool.object_hash,
        pool.pg_num,
        pool.pgp_num,
        pool.last_change,
        flags.join(",")
    )
}

fn rule_name(map: &ClusterMap, rule: u32) -> String {
    map.crush()
        .rules
        .get(&rule)
        .map_or_else(|| rule.to_string(), |rule| rule.name.clone())
}

fn pool_json(map: &ClusterMap, pool: &Pool) -> Value {
    json!({
        "pool": pool.id,
        "pool_name": pool.name,
        "type": pool.pool_type.to_string(),
        "size": pool.size,
        "min_size": pool.min_size,
        "crush_rule": pool.crush_rule,
        "crush_rule_name": rule_name(map, pool.crush_rule),
        "object_hash": pool.object_hash.to_string(),
        "pg_num": pool.pg_num,
        "pgp_num": pool.pgp_num,
        "created_at": pool.created_at,
        "last_change": pool.last_change,
        "flags": pool.flags,
    })
}

/// Ceph's state list of an OSD in `osd dump`: `exists`, then `full` or `nearfull`, then
/// `up` when it is.
fn osd_state(osd: &OsdInfo) -> Vec<&'static str> {
    let mut state = vec!["exists"];
    if osd.fullness != Fullness::Ok {
        state.push(osd.fullness.name());
    }
    if osd.up {
        state.push("up");
    }
    state
}

async fn dump(session: &Session) -> Result<()> {
    let map = session.map().await?;
    let flags: Vec<&str> = map.flags().iter().map(|flag| flag.name()).collect();
    if session.format.is_json() {
        let value = json!({
            "epoch": map.epoch(),
            "fsid": map.fsid().to_string(),
            "created": timestamp(map.created_ms()),
            "modified": timestamp(map.modified_ms()),
            "flags": flags.join(","),
            "max_osd": map.max_osd(),
            "pools": map.pools().values().map(|pool| pool_json(&map, pool)).collect::<Vec<_>>(),
            "osds": map.osds().values().map(|osd| json!({
                "osd": osd.id, "uuid": osd.uuid.to_string(), "up": u8::from(osd.up),
                "in": u8::from(osd.is_in), "weight": weight_value(osd.reweight),
                "up_from": osd.up_from, "up_thru": osd.up_thru, "down_at": osd.down_at,
                "addr": osd.address, "host": osd.host, "state": osd_state(osd),
            })).collect::<Vec<_>>(),
            "pg_temp": map.pg_temp().iter().map(|(pgid, osds)| json!({
                "pgid": pgid.to_string(), "osds": osds,
            })).collect::<Vec<_>>(),
            "primary_temp": map.primary_temp().iter().map(|(pgid, osd)| json!({
                "pgid": pgid.to_string(), "osd": osd,
            })).collect::<Vec<_>>(),
        });
        session.format.print_json(&value);
        return Ok(());
    }
    outln!("epoch {}", map.epoch());
    outln!("fsid {}", map.fsid());
    outln!("created {}", timestamp(map.created_ms()));
    outln!("modified {}", timestamp(map.modified_ms()));
    outln!("{}", format!("flags {}", flags.join(",")).trim_end());
    outln!();
    for pool in map.pools().values() {
        outln!("{}", pool_line(pool));
    }
    outln!();
    outln!("max_osd {}", map.max_osd());
    for osd in map.osds().values() {
        outln!(
            "osd.{} {} {} weight {} up_from {} up_thru {} down_at {} {} {} {}",
            osd.id,
            if osd.up { "up  " } else { "down" },
            if osd.is_in { "in " } else { "out" },
            weight(osd.reweight),
            osd.up_from,
            osd.up_thru,
            osd.down_at,
            osd.address.as_deref().unwrap_or("-"),
            osd.uuid,
            osd_state(osd).join(",")
        );
    }
    for (pgid, osds) in map.pg_temp() {
        outln!("pg_temp {pgid} {}", format_osd_list(osds));
    }
    for (pgid, osd) in map.primary_temp() {
        outln!("primary_temp {pgid} {osd}");
    }
    Ok(())
}

async fn osd_map(session: &Session, pool: &str, object: &str, namespace: &str) -> Result<()> {
    let map = session.map().await?;
    let mapping = map
        .osd_map(pool, object, namespace)
        .map_err(|error| anyhow::anyhow!("ENOENT: {error}"))?;
    if session.format.is_json() {
        session.format.print_json(&json!({
            "epoch": mapping.epoch,
            "pool": mapping.pool_name,
            "pool_id": mapping.pool_id,
            "objname": mapping.object,
            "namespace": mapping.namespace,
            "raw_pgid": mapping.raw_pgid.to_string(),
            "pgid": mapping.mapping.pgid.to_string(),
            "up": mapping.mapping.up,
            "up_primary": mapping.mapping.up_primary,
            "acting": mapping.mapping.acting,
            "acting_primary": mapping.mapping.acting_primary,
        }));
    } else {
        outln!("{mapping}");
    }
    Ok(())
}

/// Refuses an explicit zero that the monitors would read as "use the default".
async fn pool(session: &Session, args: PoolArgs) -> Result<()> {
    match args.command {
        PoolCommand::Create {
            name,
            pg_num,
            size,
            min_size,
            rule,
        } => {
            // Zeros go to the monitors, which refuse them naming the argument.
            session
                .command(Kind::PoolCreate(PoolCreate {
                    name,
                    pg_num,
                    size,
                    min_size,
                    crush_rule: rule.unwrap_or_default(),
                }))
                .await
                .map(drop)
        }
        PoolCommand::Ls { detail } => {
            let map = session.map().await?;
            let pools = map.pools().values();
            match (session.format.is_json(), detail.is_some()) {
                (true, true) => session.format.print_json(&Value::Array(
                    pools.map(|pool| pool_json(&map, pool)).collect(),
                )),
                (true, false) => session.format.print_json(&json!(pools
                    .map(|pool| pool.name.clone())
                    .collect::<Vec<_>>())),
                (false, true) => pools.for_each(|pool| outln!("{}", pool_line(pool))),
                (false, false) => pools.for_each(|pool| outln!("{}", pool.name)),
            }
            Ok(())
        }
        PoolCommand::Get { name, key } => {
            let map = session.map().await?;
            let Some(pool) = map.pool_by_name(&name) else {
                bail!("ENOENT: unrecognized pool '{name}'");
            };
            let values = [
                (PoolKey::Size, json!(pool.size)),
                (PoolKey::MinSize, json!(pool.min_size)),
                (PoolKey::PgNum, json!(pool.pg_num)),
                (PoolKey::PgpNum, json!(pool.pgp_num)),
                (PoolKey::CrushRule, json!(rule_name(&map, pool.crush_rule))),
            ];
            let chosen: Vec<&(PoolKey, Value)> = values
                .iter()
                .filter(|(candidate, _)| key == PoolKey::All || *candidate == key)
                .collect();
            if session.format.is_json() {
                let mut object = serde_json::Map::new();
                object.insert("pool".to_owned(), json!(pool.name));
                object.insert("pool_id".to_owned(), json!(pool.id));
                for (key, value) in chosen {
                    object.insert(key.name().to_owned(), value.clone());
                }
                session.format.print_json(&Value::Object(object));
            } else {
                for (key, value) in chosen {
                    let text = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    outln!("{}: {text}", key.name());
                }
            }
            Ok(())
        }
        PoolCommand::Set { name, key, value } => {
            if matches!(key, PoolKey::All | PoolKey::PgpNum) {
                bail!(
                    "EINVAL: `{}` cannot be set; use size, min_size, pg_num or crush_rule",
                    key.name()
                );
            }
            session
                .command(Kind::PoolSet(PoolSet {
                    name,
                    key: key.name().to_owned(),
                    value,
                }))
                .await
                .map(drop)
        }
        PoolCommand::Rm {
            name,
            confirm,
            really,
        } => {
            if confirm.as_deref() != Some(name.as_str()) || !really {
                bail!(
                    "EPERM: WARNING: this will *PERMANENTLY DESTROY* all data stored in pool \
                     {name}. If you are *ABSOLUTELY CERTAIN* that is what you want, pass the \
                     pool name *twice*, followed by --yes-i-really-really-mean-it."
                );
            }
            session
                .command(Kind::PoolRemove(PoolRemove { name }))
                .await
                .map(drop)
        }
    }
}
