//! The leader's soft state and the failure policy of DESIGN.md §4.
//!
//! Soft state never goes through Raft: OSD beacons, pending failure reports and PG
//! statistics live in the leader's memory only. A monitor that becomes leader starts afresh
//! (every up OSD counts as having just sent a beacon, no reports), which errs on the side of
//! not marking OSDs down after a failover. Only decisions are proposed:
//!
//! * an up OSD with no beacon for `osd_report_timeout_ms` is marked down;
//! * an up OSD reported failed by OSDs on at least `min_down_reporters` distinct hosts (1 when
//!   the cluster's OSDs all live on one host), each report older than
//!   `osd_heartbeat_grace_ms` counting from when the target stopped answering, is marked
//!   down; a report is withdrawn when the reporter says the target answers again;
//! * a down OSD that is still in is marked out `down_out_interval_ms` after the map says it
//!   went down, unless the `noout` flag is set;
//! * (a booting OSD is marked up: that is the `Boot` command, see `state`.)
//!
//! `nodown` suppresses marking down. Decisions are conditional commands
//! (`PolicyMarkDown { up_from }`, `PolicyMarkOut { down_at }`), so a decision overtaken by a
//! reboot is refused when applied instead of hitting the new incarnation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use clustermap::{ClusterFlag, ClusterMap, OsdId, PgId, PgStatReport, UnixMillis};

use crate::config::FailureConfig;
use crate::state::MonCommand;

/// One pending failure report.
#[derive(Clone, Debug)]
struct Report {
    /// When the target stopped answering the reporter (report time minus `failed_for`).
    failed_since: Instant,
}

/// The leader's soft state.
#[derive(Debug, Default)]
pub struct SoftState {
    /// The Raft term this soft state belongs to (reset when leadership changes).
    term: u64,
    beacons: HashMap<OsdId, Instant>,
    /// When this leader first saw each OSD's current incarnation up (its `up_from` epoch):
    /// a peer's silence only counts from then, so reports about the previous incarnation
    /// (filed while the OSD was dead, before the reporter's pings reach the new one) cannot
    /// mark a freshly booted OSD down again.
    up_seen: HashMap<OsdId, (clustermap::Epoch, Instant)>,
    /// target -> reporter -> report.
    reports: HashMap<OsdId, HashMap<OsdId, Report>>,
    pg_stats: BTreeMap<PgId, PgStatReport>,
    /// Decisions proposed and not yet applied or refused, so they are not proposed twice.
    in_flight: BTreeSet<(u8, OsdId)>,
}

impl SoftState {
    /// Forgets everything when this monitor starts a new leadership term.
    pub fn ensure_term(&mut self, term: u64) {
        if self.term != term {
            *self = SoftState {
                term,
                ..SoftState::default()
            };
        }
    }

    /// Records a beacon.
    pub fn beacon(&mut self, osd: OsdId, now: Instant) {
        self.beacons.insert(osd, now);
    }

    /// Records (or withdraws, when `alive`) a failure report.
    pub fn report(
        &mut self,
        reporter: OsdId,
        target: OsdId,
        failed_for: Duration,
        alive: bool,
        now: Instant,
    ) {
        if alive {
            if let Some(reports) = self.reports.get_mut(&target) {
                reports.remove(&reporter);
                if reports.is_empty() {
                    self.reports.remove(&target);
                }
            }
            return;
        }
        let failed_since = now.checked_sub(failed_for).unwrap_or(now);
        self.reports
            .entry(target)
            .or_default()
            .insert(reporter, Report { failed_since });
    }

    /// Records PG statistics.
    pub fn pg_stats(&mut self, stats: impl IntoIterator<Item = (PgId, PgStatReport)>) {
        self.pg_stats.extend(stats);
    }

    /// The latest PG statistics.
    pub fn pg_stat_reports(&self) -> &BTreeMap<PgId, PgStatReport> {
        &self.pg_stats
    }

    /// Marks a decision as settled (applied or refused).
    pub fn settle(&mut self, decision: &MonCommand) {
        if let Some(key) = decision_key(decision) {
            self.in_flight.remove(&key);
        }
    }

    /// Evaluates the policy against `map` and returns the decisions to propose (each at
    /// most once while in flight).
    pub fn evaluate(
        &mut self,
        map: &ClusterMap,
        config: &FailureConfig,
        now: Instant,
        now_ms: UnixMillis,
    ) -> Vec<MonCommand> {
        let mut decisions = Vec::new();
        let report_timeout = Duration::from_millis(config.osd_report_timeout_ms);
        let grace = Duration::from_millis(config.osd_heartbeat_grace_ms);
        let hosts: BTreeSet<&str> = map.osds().values().map(|osd| osd.host.as_str()).collect();
        let needed_hosts = if hosts.len() <= 1 {
            1
        } else {
            config.min_down_reporters
        };
        // Reports about OSDs that are down already, or from reporters that are down, lapse.
        self.reports.retain(|target, _| map.is_up(*target));
        for reports in self.reports.values_mut() {
            reports.retain(|reporter, _| map.is_up(*reporter));
        }
        let nodown = map.is_flag_set(ClusterFlag::NoDown);
        self.up_seen.retain(|id, _| map.is_up(*id));
        for osd in map.osds().values().filter(|osd| osd.up) {
            let seen = self.up_seen.entry(osd.id).or_insert((osd.up_from, now));
            if seen.0 != osd.up_from {
                *seen = (osd.up_from, now);
            }
            let up_since = seen.1;
            let last_beacon = *self.beacons.entry(osd.id).or_insert(now);
            let silent = now.saturating_duration_since(last_beacon) >= report_timeout;
            let reporting_hosts: BTreeSet<&str> = self
                .reports
                .get(&osd.id)
                .map(|reports| {
                    reports
                        .iter()
                        .filter(|(_, report)| {
                            now.saturating_duration_since(report.failed_since.max(up_since))
                                >= grace
                        })
                        .filter_map(|(reporter, _)| map.osd(*reporter).map(|r| r.host.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            let reported = reporting_hosts.len() >= needed_hosts;
            if (silent || reported) && !nodown {
                if silent {
                    tracing::info!(
                        osd = osd.id,
                        "no beacon within the report timeout: marking down"
                    );
                } else {
                    tracing::info!(
                        osd = osd.id,
                        hosts = reporting_hosts.len(),
                        "failure reports: marking down"
                    );
                }
                decisions.push(MonCommand::PolicyMarkDown {
                    id: osd.id,
                    up_from: osd.up_from,
                });
            }
        }
        if !map.is_flag_set(ClusterFlag::NoOut) {
            for osd in map.osds().values().filter(|osd| !osd.up && osd.is_in) {
                let Some(down_since) = osd.down_since_ms else {
                    continue;
                };
                if now_ms.saturating_sub(down_since) >= config.down_out_interval_ms {
                    tracing::info!(
                        osd = osd.id,
                        "down longer than the down-out interval: marking out"
                    );
                    decisions.push(MonCommand::PolicyMarkOut {
                        id: osd.id,
                        down_at: osd.down_at,
                    });
                }
            }
        }
        decisions.retain(|decision| match decision_key(decision) {
            Some(key) => self.in_flight.insert(key),
            None => true,
        });
        decisions
    }
}

fn decision_key(decision: &MonCommand) -> Option<(u8, OsdId)> {
    match decision {
        MonCommand::PolicyMarkDown { id, .. } => Some((0, *id)),
        MonCommand::PolicyMarkOut { id, .. } => Some((1, *id)),
        _ => None,
    }
}
