//! The monitors' `Status` answer as plain types the CLI prints and serializes
//! (`shoal status --format json`), converted from mon.proto at this edge.

use std::collections::BTreeMap;

use proto::mon::StatusReply;
use serde::Serialize;

/// One monitor of the Raft configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonitorStatus {
    /// Raft id.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Its gRPC address.
    pub addr: String,
    /// Heard from recently by the leader (false when a non-leader answered).
    pub in_quorum: bool,
    /// The leader.
    pub leader: bool,
}

/// One failing health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthCheckStatus {
    /// Ceph-style code (`OSD_DOWN`, `MON_DOWN`, ...).
    pub code: String,
    /// `HEALTH_WARN` or `HEALTH_ERR`.
    pub severity: String,
    /// One-line summary.
    pub summary: String,
    /// Detail lines.
    pub detail: Vec<String>,
}

/// Cluster health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthStatus {
    /// `HEALTH_OK`, `HEALTH_WARN` or `HEALTH_ERR`.
    pub status: String,
    /// The failing checks.
    pub checks: Vec<HealthCheckStatus>,
}

/// PG counts from the OSDs' statistics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PgSummary {
    /// PGs reported.
    pub num_pgs: u64,
    /// State string -> PGs in it.
    pub by_state: BTreeMap<String, u64>,
    /// Objects stored.
    pub num_objects: u64,
    /// Bytes stored.
    pub num_bytes: u64,
}

/// Monitor, quorum and cluster status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// Cluster id; empty before the cluster is created.
    pub fsid: String,
    /// Epoch of the answering monitor's map.
    pub epoch: u64,
    /// The monitor that answered.
    pub answered_by: u64,
    /// The leader as the answering monitor knows it; 0 for none.
    pub leader_id: u64,
    /// Raft term (Ceph's election epoch).
    pub term: u64,
    /// The monitors of the Raft configuration.
    pub monitors: Vec<MonitorStatus>,
    /// Raft commit index of the answering monitor.
    pub commit_index: u64,
    /// Raft applied index.
    pub applied_index: u64,
    /// Index of the latest snapshot (log compaction point).
    pub snapshot_index: u64,
    /// Last Raft log index.
    pub last_index: u64,
    /// Health, present when the leader answered.
    pub health: Option<HealthStatus>,
    /// OSDs in the map.
    pub num_osds: u32,
    /// OSDs up.
    pub num_up_osds: u32,
    /// OSDs in.
    pub num_in_osds: u32,
    /// Pools.
    pub num_pools: u32,
    /// PG summary, present when the leader answered.
    pub pgs: Option<PgSummary>,
}

impl ClusterStatus {
    /// Converts mon.proto's reply.
    pub fn from_proto(reply: StatusReply) -> Self {
        ClusterStatus {
            fsid: reply.fsid,
            epoch: reply.epoch,
            answered_by: reply.answered_by,
            leader_id: reply.leader_id,
            term: reply.term,
            monitors: reply
                .monitors
                .into_iter()
                .map(|monitor| MonitorStatus {
                    id: monitor.id,
                    name: monitor.name,
                    addr: monitor.addr,
                    in_quorum: monitor.in_quorum,
                    leader: monitor.leader,
                })
                .collect(),
            commit_index: reply.commit_index,
            applied_index: reply.applied_index,
            snapshot_index: reply.snapshot_index,
            last_index: reply.last_index,
            health: reply.health.map(|health| HealthStatus {
                status: health.status,
                checks: health
                    .checks
                    .into_iter()
                    .map(|check| HealthCheckStatus {
                        code: check.code,
                        severity: check.severity,
                        summary: check.summary,
                        detail: check.detail,
                    })
                    .collect(),
            }),
            num_osds: reply.num_osds,
            num_up_osds: reply.num_up_osds,
            num_in_osds: reply.num_in_osds,
            num_pools: reply.num_pools,
            pgs: reply.pgs.map(|pgs| PgSummary {
                num_pgs: pgs.num_pgs,
                by_state: pgs.by_state.into_iter().collect(),
                num_objects: pgs.num_objects,
                num_bytes: pgs.num_bytes,
            }),
        }
    }

    /// The monitors the leader counts in the quorum.
    pub fn quorum(&self) -> impl Iterator<Item = &MonitorStatus> {
        self.monitors.iter().filter(|monitor| monitor.in_quorum)
    }

    /// True when a leader is known and the cluster map exists.
    pub fn has_leader_and_map(&self) -> bool {
        self.leader_id != 0 && self.epoch > 0
    }
}
