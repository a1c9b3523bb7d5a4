//! `shoal osd df`: each OSD's usage as the OSD itself reports it (`OsdStatus`: store bytes,
//! file-system size and free space, PGs held), with its CRUSH weight, reweight and state
//! from the map, like `ceph osd df`. Also the OSD-report gathering that `shoal pg` uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use librados::clustermap::{ClusterMap, OsdId};
use librados::proto::osd::OsdStatusReply;
use librados::Rados;
use serde_json::json;

use super::output::{bytes, weight, weight_value, Align, Table};
use super::Session;

/// Every OSD's answer to `OsdStatus`: up OSDs are asked concurrently; a down OSD or one
/// that does not answer maps to the reason.
pub(super) async fn osd_reports(
    session: &Session,
) -> Result<(
    Arc<ClusterMap>,
    BTreeMap<OsdId, Result<OsdStatusReply, String>>,
)> {
    let rados = Rados::with_mon_client(session.client.clone())
        .await
        .map_err(crate::rados::rados_error)?;
    let map = session.map().await?;
    let mut calls = Vec::new();
    for (id, info) in map.osds() {
        let id = *id;
        if !info.up {
            continue;
        }
        let rados = rados.clone();
        calls.push((id, tokio::spawn(async move { rados.osd_status(id).await })));
    }
    let mut reports = BTreeMap::new();
    for id in map.osds().keys() {
        reports.insert(*id, Err("down".to_owned()));
    }
    for (id, call) in calls {
        let outcome = match call.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => Err(error.to_string()),
            Err(error) => Err(format!("query failed: {error}")),
        };
        reports.insert(id, outcome);
    }
    Ok((map, reports))
}

/// Runs `shoal osd df`.
pub(super) async fn run(session: &Session) -> Result<()> {
    let (map, reports) = osd_reports(session).await?;
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("CLASS", Align::Right),
        ("WEIGHT", Align::Right),
        ("REWEIGHT", Align::Right),
        ("SIZE", Align::Right),
        ("RAW USE", Align::Right),
        ("AVAIL", Align::Right),
        ("%USE", Align::Right),
        ("VAR", Align::Right),
        ("PGS", Align::Right),
        ("STATUS", Align::Left),
    ]);
    struct Row {
        id: OsdId,
        class: String,
        crush_weight: u32,
        reweight: u32,
        size: u64,
        used: u64,
        avail: u64,
        pgs: usize,
        status: String,
    }
    let mut rows = Vec::new();
    for (id, info) in map.osds() {
        let class = map
            .crush()
            .devices
            .get(id)
            .and_then(|device| device.class.clone())
            .unwrap_or_default();
        let (size, used, avail, pgs, status) = match &reports[id] {
            Ok(reply) => (
                reply.fs_bytes_total,
                reply.store_bytes_used,
                reply.fs_bytes_available,
                reply.pgs.iter().filter(|pg| pg.role != "stray").count(),
                if info.up { "up" } else { "down" }.to_owned(),
            ),
            Err(reason) if reason == "down" => (0, 0, 0, 0, "down".to_owned()),
            Err(reason) => (0, 0, 0, 0, format!("up (unreachable: {reason})")),
        };
        rows.push(Row {
            id: *id,
            class,
            crush_weight: map.crush_weight(*id).unwrap_or(0),
            reweight: if info.is_in { info.reweight } else { 0 },
            size,
            used,
            avail,
            pgs,
            status,
        });
    }
    let percent = |used: u64, size: u64| {
        if size == 0 {
            0.0
        } else {
            used as f64 * 100.0 / size as f64
        }
    };
    let total_size: u64 = rows.iter().map(|row| row.size).sum();
    let total_used: u64 = rows.iter().map(|row| row.used).sum();
    let total_avail: u64 = rows.iter().map(|row| row.avail).sum();
    let average = percent(total_used, total_size);
    let var = |row: &Row| {
        if average == 0.0 {
            0.0
        } else {
            percent(row.used, row.size) / average
        }
    };
    if session.format.is_json() {
        let nodes: Vec<_> = rows
            .iter()
            .map(|row| {
                json!({
                    "id": row.id, "name": format!("osd.{}", row.id), "device_class": row.class,
                    "crush_weight": weight_value(row.crush_weight),
                    "reweight": weight_value(row.reweight),
                    "kb": row.size / 1024, "kb_used": row.used / 1024, "kb_avail": row.avail / 1024,
                    "utilization": percent(row.used, row.size), "var": var(row),
                    "pgs": row.pgs, "status": row.status,
                })
            })
            .collect();
        session.format.print_json(&json!({
            "nodes": nodes,
            "summary": {
                "total_kb": total_size / 1024, "total_kb_used": total_used / 1024,
                "total_kb_avail": total_avail / 1024, "average_utilization": average,
            },
        }));
        return Ok(());
    }
    for row in &rows {
        table.row(vec![
            row.id.to_string(),
            row.class.clone(),
            weight(row.crush_weight),
            weight(row.reweight),
            bytes(row.size),
            bytes(row.used),
            bytes(row.avail),
            format!("{:.2}", percent(row.used, row.size)),
            format!("{:.2}", var(row)),
            row.pgs.to_string(),
            row.status.clone(),
        ]);
    }
    table.row(vec![
        String::new(),
        String::new(),
        String::new(),
        "TOTAL".to_owned(),
        bytes(total_size),
        bytes(total_used),
        bytes(total_avail),
        format!("{average:.2}"),
    ]);
    outln!("{}", table.render());
    Ok(())
}
