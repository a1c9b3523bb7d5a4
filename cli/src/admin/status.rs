//! `shoal status`, `shoal health [detail]` and `shoal mon stat|add|rm`: what the leader
//! says about the monitors, the quorum and the cluster's health, printed like Ceph's
//! `ceph -s`, `ceph health` and `ceph mon stat`.

use anyhow::Result;
use clap::{Args, Subcommand};
use librados::proto::mon::{command::Kind, MonAdd, MonRemove};
use librados::{ClusterStatus, HealthStatus};
use serde_json::{json, Value};

use super::output::bytes;
use super::{command_error, Session};

/// `shoal mon ...`.
#[derive(Debug, Args)]
pub struct MonArgs {
    #[command(subcommand)]
    command: MonCommand,
    #[command(flatten)]
    pub(super) out: super::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum MonCommand {
    /// Monitors, leader and quorum in one line.
    Stat,
    /// Add a monitor to the quorum (start it with --join first).
    Add {
        /// Its Raft id (> 0, unused).
        id: u64,
        /// Its address, ip:port.
        addr: String,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a monitor from the quorum.
    Rm {
        /// Its Raft id.
        id: u64,
    },
}

fn health_json(health: Option<&HealthStatus>) -> Value {
    let Some(health) = health else {
        return json!({ "status": "HEALTH_UNKNOWN", "checks": {} });
    };
    let checks: serde_json::Map<String, Value> = health
        .checks
        .iter()
        .map(|check| {
            (
                check.code.clone(),
                json!({
                    "severity": check.severity,
                    "summary": { "message": check.summary },
                    "detail": check.detail.iter().map(|line| json!({ "message": line })).collect::<Vec<_>>(),
                }),
            )
        })
        .collect();
    json!({ "status": health.status, "checks": checks })
}

fn quorum_names(status: &ClusterStatus) -> Vec<String> {
    status
        .quorum()
        .map(|monitor| monitor.name.clone())
        .collect()
}

fn leader_name(status: &ClusterStatus) -> String {
    status
        .monitors
        .iter()
        .find(|monitor| monitor.id == status.leader_id)
        .map_or_else(
            || status.leader_id.to_string(),
            |monitor| monitor.name.clone(),
        )
}

/// `shoal status`.
pub async fn status(session: &Session) -> Result<()> {
    let status = session.client.status().await?;
    let map = session.map().await?;
    let pgs: u64 = map
        .pools()
        .values()
        .map(|pool| u64::from(pool.pg_num))
        .sum();
    let pg_summary = status.pgs.clone().unwrap_or_default();
    if session.format.is_json() {
        let value = json!({
            "fsid": status.fsid,
            "health": health_json(status.health.as_ref()),
            "election_epoch": status.term,
            "quorum": status.quorum().map(|monitor| monitor.id).collect::<Vec<_>>(),
            "quorum_names": quorum_names(&status),
            "leader": status.leader_id,
            "leader_name": leader_name(&status),
            "monmap": {
                "num_mons": status.monitors.len(),
                "mons": status.monitors.iter().map(|monitor| json!({
                    "id": monitor.id, "name": monitor.name, "addr": monitor.addr,
                    "in_quorum": monitor.in_quorum, "leader": monitor.leader,
                })).collect::<Vec<_>>(),
            },
            "osdmap": {
                "epoch": map.epoch(),
                "num_osds": status.num_osds,
                "num_up_osds": status.num_up_osds,
                "num_in_osds": status.num_in_osds,
            },
            "pgmap": {
                "num_pools": map.pools().len(),
                "num_pgs": pgs,
                "num_objects": pg_summary.num_objects,
                "data_bytes": pg_summary.num_bytes,
                "pgs_by_state": pg_summary.by_state.iter().map(|(state, count)| json!({
                    "state_name": state, "count": count,
                })).collect::<Vec<_>>(),
            },
        });
        session.format.print_json(&value);
        return Ok(());
    }
    let health = status.health.as_ref();
    let mut out = String::new();
    out.push_str("  cluster:\n");
    out.push_str(&format!("    id:     {}\n", status.fsid));
    out.push_str(&format!(
        "    health: {}\n",
        health.map_or("HEALTH_UNKNOWN", |health| health.status.as_str())
    ));
    if let Some(health) = health {
        if !health.checks.is_empty() {
            out.push_str("            ");
            let lines: Vec<&str> = health
                .checks
                .iter()
                .map(|check| check.summary.as_str())
                .collect();
            out.push_str(&lines.join("\n            "));
            out.push('\n');
        }
    }
    out.push_str("\n  services:\n");
    out.push_str(&format!(
        "    mon: {} daemons, quorum {} (leader {}, term {})\n",
        status.monitors.len(),
        quorum_names(&status).join(","),
        leader_name(&status),
        status.term
    ));
    out.push_str(&format!(
        "    osd: {} osds: {} up, {} in; epoch e{}\n",
        status.num_osds,
        status.num_up_osds,
        status.num_in_osds,
        map.epoch()
    ));
    out.push_str("\n  data:\n");
    out.push_str(&format!(
        "    pools:   {} pools, {pgs} pgs\n",
        map.pools().len()
    ));
    out.push_str(&format!(
        "    objects: {} objects, {}\n",
        pg_summary.num_objects,
        bytes(pg_summary.num_bytes)
    ));
    let reported: u64 = pg_summary.by_state.values().sum();
    let mut states: Vec<String> = pg_summary
        .by_state
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    if pgs > reported {
        states.insert(0, format!("{} unknown", pgs - reported));
    }
    if states.is_empty() {
        states.push("none".to_owned());
    }
    out.push_str(&format!(
        "    pgs:     {}\n",
        states.join("\n             ")
    ));
    out!("{out}");
    Ok(())
}

/// `shoal health [detail]`.
pub async fn health(session: &Session, detail: bool) -> Result<()> {
    let status = session.client.status().await?;
    let health = status.health.as_ref();
    if session.format.is_json() {
        session.format.print_json(&health_json(health));
        return Ok(());
    }
    let Some(health) = health else {
        anyhow::bail!(
            "monitor {} answered without health (it is not the leader)",
            status.answered_by
        );
    };
    let summaries: Vec<&str> = health
        .checks
        .iter()
        .map(|check| check.summary.as_str())
        .collect();
    if summaries.is_empty() {
        outln!("{}", health.status);
    } else {
        outln!("{} {}", health.status, summaries.join("; "));
    }
    if detail {
        for check in &health.checks {
            let tag = if check.severity == "HEALTH_ERR" {
                "ERR"
            } else {
                "WRN"
            };
            outln!("[{tag}] {}: {}", check.code, check.summary);
            for line in &check.detail {
                outln!("    {line}");
            }
        }
    }
    Ok(())
}

/// `shoal mon ...`.
pub async fn mon(session: &Session, args: MonArgs) -> Result<()> {
    match args.command {
        MonCommand::Stat => mon_stat(session).await,
        MonCommand::Add { id, addr, name } => {
            if id == 0 {
                anyhow::bail!("EINVAL: monitor id 0 is invalid: ids are > 0");
            }
            session
                .command(Kind::MonAdd(MonAdd {
                    id,
                    addr,
                    name: name.unwrap_or_default(),
                }))
                .await
                .map(drop)
        }
        MonCommand::Rm { id } => session
            .command(Kind::MonRemove(MonRemove { id }))
            .await
            .map(drop),
    }
}

async fn mon_stat(session: &Session) -> Result<()> {
    let status = session.client.status().await.map_err(command_error)?;
    if session.format.is_json() {
        session.format.print_json(&json!({
            "epoch": status.epoch,
            "num_mons": status.monitors.len(),
            "election_epoch": status.term,
            "leader": status.leader_id,
            "leader_name": leader_name(&status),
            "quorum": status.quorum().map(|monitor| monitor.id).collect::<Vec<_>>(),
            "quorum_names": quorum_names(&status),
            "mons": status.monitors.iter().map(|monitor| json!({
                "id": monitor.id, "name": monitor.name, "addr": monitor.addr,
                "in_quorum": monitor.in_quorum,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    let addrs: Vec<String> = status
        .monitors
        .iter()
        .map(|monitor| format!("{}={}", monitor.name, monitor.addr))
        .collect();
    let quorum_ids: Vec<String> = status
        .quorum()
        .map(|monitor| monitor.id.to_string())
        .collect();
    outln!(
        "e{}: {} mons at {{{}}}, election epoch {}, leader {} {}, quorum {} {}",
        status.epoch,
        status.monitors.len(),
        addrs.join(","),
        status.term,
        status.leader_id,
        leader_name(&status),
        quorum_ids.join(","),
        quorum_names(&status).join(",")
    );
    Ok(())
}
