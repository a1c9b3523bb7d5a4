//! The admin view (`OsdStatus`): identity, epoch, store and file-system usage, resident
//! memory, and every PG this OSD holds with its state, role, sets and counts.

use proto::osd::{OsdStatusReply, PgStatus};

use crate::node::Node;
use crate::pg::{Pg, Role};
use crate::wire;

/// Builds the status reply (blocking: walks the data directory).
pub fn osd_status(node: &Node) -> OsdStatusReply {
    // What the monitors were last told, so `osd df` and the health agree.
    let usage = node.space.last().unwrap_or_else(|| {
        crate::space::measure(&node.data_dir, &node.store, node.config.capacity_bytes)
    });
    let mut pgs = Vec::new();
    for pg in node.all_pgs() {
        let view = pg.view();
        let info = node.store.pg_info(pg.id).ok();
        pgs.push(PgStatus {
            pg: Some(wire::pg_to_wire(pg.id)),
            state: Pg::state_name(&view),
            role: view.role.name().to_owned(),
            up: view.up.clone(),
            acting: view.acting.clone(),
            primary: view.primary,
            last_update: info.map(|i| wire::ev_to_wire(i.last_update)),
            log_tail: info.map(|i| wire::ev_to_wire(i.log_tail)),
            num_objects: info.map_or(0, |i| i.stats.objects),
            num_bytes: info.map_or(0, |i| i.stats.bytes),
            num_objects_degraded: if view.role == Role::Primary {
                view.degraded
            } else {
                0
            },
        });
    }
    OsdStatusReply {
        osd_id: node.id,
        uuid: node.uuid.to_string(),
        epoch: u64::from(node.epoch()),
        store_bytes_used: usage.used,
        fs_bytes_available: usage.available,
        fs_bytes_total: usage.total,
        pgs,
        rss_bytes: rss_bytes(),
    }
}

/// Resident memory from /proc/self/statm (0 where unavailable).
pub fn rss_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page_size).unwrap_or(4096)
}
