//! `shoal pg dump` and `shoal pg stat`: every PG of every pool with its state, up and acting
//! sets, object and byte counts and last update, as each PG's acting primary reports it
//! (`OsdStatus`), like `ceph pg dump` / `ceph pg stat`. A PG whose primary is down shows
//! `stale`; one whose primary did not answer or does not report it shows `unknown`.

use std::collections::BTreeMap;

use anyhow::Result;
use clap::{Args, Subcommand};
use librados::clustermap::placement::format_osd_list;
use librados::clustermap::{OsdId, PgId};
use librados::proto::osd::PgStatus;
use serde_json::json;

use super::osd_df::osd_reports;
use super::output::{bytes, Align, Table};
use super::Session;

/// `shoal pg ...`.
#[derive(Debug, Args)]
pub struct PgArgs {
    #[command(subcommand)]
    command: PgCommand,
    #[command(flatten)]
    pub(super) out: super::OutputArgs,
}

#[derive(Debug, Subcommand)]
enum PgCommand {
    /// Every PG: state, objects, bytes, last update, up and acting sets.
    Dump,
    /// One summary line: PG counts by state, objects and bytes.
    Stat,
}

/// One PG's row.
struct PgRow {
    pgid: PgId,
    state: String,
    objects: u64,
    degraded: u64,
    bytes: u64,
    last_update: String,
    up: Vec<OsdId>,
    up_primary: OsdId,
    acting: Vec<OsdId>,
    acting_primary: OsdId,
}

async fn collect(session: &Session) -> Result<Vec<PgRow>> {
    let (map, reports) = osd_reports(session).await?;
    // What each OSD says about the PGs it is primary of.
    let mut primary_reports: BTreeMap<(OsdId, PgId), &PgStatus> = BTreeMap::new();
    for (osd, report) in &reports {
        if let Ok(reply) = report {
            for status in &reply.pgs {
                if let Some(pg) = &status.pg {
                    primary_reports.insert((*osd, PgId::new(pg.pool, pg.seed)), status);
                }
            }
        }
    }
    let mut rows = Vec::new();
    let mut mapper = map.pg_mapper();
    for pool in map.pools().values() {
        for pgid in pool.pgs() {
            let Ok(mapping) = mapper.map(pgid) else {
                continue;
            };
            let primary = mapping.acting_primary;
            let report = primary_reports
                .get(&(primary, pgid))
                .filter(|status| status.role == "primary");
            let (state, objects, degraded, stored, last_update) = match report {
                Some(status) => (
                    status.state.clone(),
                    status.num_objects,
                    status.num_objects_degraded,
                    status.num_bytes,
                    status
                        .last_update
                        .as_ref()
                        .map_or("0'0".to_owned(), |v| format!("{}'{}", v.epoch, v.version)),
                ),
                None => {
                    let state = if primary < 0 || !map.is_up(primary) {
                        "stale"
                    } else {
                        "unknown"
                    };
                    (state.to_owned(), 0, 0, 0, "0'0".to_owned())
                }
            };
            rows.push(PgRow {
                pgid: mapping.pgid,
                state,
                objects,
                degraded,
                bytes: stored,
                last_update,
                up: mapping.up,
                up_primary: mapping.up_primary,
                acting: mapping.acting,
                acting_primary: primary,
            });
        }
    }
    Ok(rows)
}

/// Runs `shoal pg ...`.
pub async fn run(session: &Session, args: PgArgs) -> Result<()> {
    let rows = collect(session).await?;
    match args.command {
        PgCommand::Dump => dump(session, &rows),
        PgCommand::Stat => stat(session, &rows),
    }
    Ok(())
}

fn dump(session: &Session, rows: &[PgRow]) {
    if session.format.is_json() {
        let stats: Vec<_> = rows
            .iter()
            .map(|row| {
                json!({
                    "pgid": row.pgid.to_string(), "state": row.state,
                    "num_objects": row.objects, "num_objects_degraded": row.degraded,
                    "num_bytes": row.bytes, "last_update": row.last_update,
                    "up": row.up, "up_primary": row.up_primary,
                    "acting": row.acting, "acting_primary": row.acting_primary,
                })
            })
            .collect();
        session.format.print_json(&json!({ "pg_stats": stats }));
        return;
    }
    let mut table = Table::new(&[
        ("PG_STAT", Align::Left),
        ("OBJECTS", Align::Right),
        ("DEGRADED", Align::Right),
        ("BYTES", Align::Right),
        ("STATE", Align::Left),
        ("LAST_UPDATE", Align::Left),
        ("UP", Align::Left),
        ("UP_PRIMARY", Align::Right),
        ("ACTING", Align::Left),
        ("ACTING_PRIMARY", Align::Right),
    ]);
    for row in rows {
        table.row(vec![
            row.pgid.to_string(),
            row.objects.to_string(),
            row.degraded.to_string(),
            row.bytes.to_string(),
            row.state.clone(),
            row.last_update.clone(),
            format_osd_list(&row.up),
            row.up_primary.to_string(),
            format_osd_list(&row.acting),
            row.acting_primary.to_string(),
        ]);
    }
    outln!("{}", table.render());
}

fn stat(session: &Session, rows: &[PgRow]) {
    let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
    for row in rows {
        *by_state.entry(row.state.as_str()).or_default() += 1;
    }
    let objects: u64 = rows.iter().map(|row| row.objects).sum();
    let stored: u64 = rows.iter().map(|row| row.bytes).sum();
    if session.format.is_json() {
        session.format.print_json(&json!({
            "num_pgs": rows.len(), "by_state": by_state,
            "num_objects": objects, "num_bytes": stored,
        }));
        return;
    }
    let states: Vec<String> = by_state
        .iter()
        .map(|(state, count)| format!("{count} {state}"))
        .collect();
    outln!(
        "{} pgs: {}; {objects} objects, {} data",
        rows.len(),
        states.join(", "),
        bytes(stored)
    );
}
