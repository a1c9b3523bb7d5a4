//! The leader's soft state and the failure policy of DESIGN.md §4.
//!
//! Soft state never goes through Raft: OSD beacons (with the storage usage they carry),
//! pending failure reports and PG statistics live in the leader's memory only. A monitor
//! that becomes leader starts afresh (every up OSD counts as having just sent a beacon, no
//! reports, no usage), which errs on the side of not marking OSDs down after a failover and
//! of leaving their fullness as the map has it. Only decisions are proposed:
//!
//! * an up OSD with no beacon for `osd_report_timeout_ms` is marked down;
//! * an up OSD reported failed by OSDs on at least `min_down_reporters` distinct hosts (1 when
//!   the cluster's OSDs all live on one host), each report older than
//!   `osd_heartbeat_grace_ms` counting from when the target stopped answering, is marked
//!   down; a report is withdrawn when the reporter says the target answers again;
//! * a down OSD that is still in is marked out `down_out_interval_ms` after the map says it
//!   went down, unless the `noout` flag is set;
//! * an up OSD whose latest beacon this term gave its usage (`bytes_total` > 0) is judged by
//!   its used share `(total - available) / total`: full at or above `full_ratio`, else nearfull at
//!   or above `nearfull_ratio`, else ok; when that differs from the map's `fullness` it is
//!   recorded (`PolicySetFullness`). A down OSD, or one whose usage is unknown, keeps the
//!   fullness the map has;
//! * (a booting OSD is marked up: that is the `Boot` command, see `state`.)
//!
//! `nodown` suppresses marking down. Decisions are conditional commands
//! (`PolicyMarkDown { up_from }`, `PolicyMarkOut { down_at }`), so a decision overtaken by a
//! reboot is refused when applied instead of hitting the new incarnation. A fullness
//! decision needs no condition: it states a fact about the OSD's storage, whatever its
//! incarnation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use clustermap::{ClusterFlag, ClusterMap, Fullness, OsdId, PgId, PgStatReport, UnixMillis};

use crate::config::FailureConfig;
use crate::state::MonCommand;

/// One pending failure report.
#[derive(Clone, Debug)]
struct Report {
    /// When the target stopped answering the reporter (report time minus `failed_for`).
    failed_since: Instant,
}

/// An OSD's storage as a beacon gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageUsage {
    /// Its size in bytes (> 0).
    pub bytes_total: u64,
    /// What is still available, in bytes.
    pub bytes_available: u64,
}

impl StorageUsage {
    /// The usage a beacon reports; `None` when the OSD does not know its size (total 0).
    pub fn from_beacon(bytes_total: u64, bytes_available: u64) -> Option<StorageUsage> {
        (bytes_total > 0).then_some(StorageUsage {
            bytes_total,
            bytes_available,
        })
    }

    /// The used share of the storage, in `[0, 1]`.
    pub fn used_ratio(&self) -> f64 {
        clustermap::used_ratio(self.bytes_total, self.bytes_available)
    }
}

/// The leader's soft state.
#[derive(Debug, Default)]
pub struct SoftState {
    /// The Raft term this soft state belongs to (reset when leadership changes).
    term: u64,
    beacons: HashMap<OsdId, Instant>,
    /// The storage usage of each OSD's latest beacon, when it knew it (ordered, so decisions
    /// come in OSD order).
    usage: BTreeMap<OsdId, StorageUsage>,
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

    /// Records a beacon and the storage usage it carried. `None` (the OSD does not know
    /// its size, or a boot, which carries none) forgets an earlier usage, so the OSD keeps
    /// the fullness the map has rather than one judged from old figures.
    pub fn beacon(&mut self, osd: OsdId, usage: Option<StorageUsage>, now: Instant) {
        self.beacons.insert(osd, now);
        match usage {
            Some(usage) => self.usage.insert(osd, usage),
            None => self.usage.remove(&osd),
        };
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
        // A down OSD keeps the fullness the map has: it takes no writes, and its figures
        // may predate the failure. Its next boot starts it afresh.
        self.usage.retain(|id, _| map.is_up(*id));
        for (&id, usage) in &self.usage {
            let Some(osd) = map.osd(id) else {
                continue;
            };
            let (fullness, verdict) = judge(usage.used_ratio(), config);
            if fullness != osd.fullness {
                tracing::info!(
                    osd = id,
                    "osd.{id} is {:.1}% used, {verdict}: marking {}",
                    usage.used_ratio() * 100.0,
                    fullness.name()
                );
                decisions.push(MonCommand::PolicySetFullness { id, fullness });
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

/// The fullness a used share of storage calls for, and the rule that decided it (for the
/// log).
fn judge(ratio: f64, config: &FailureConfig) -> (Fullness, String) {
    if ratio >= config.full_ratio {
        (
            Fullness::Full,
            format!("at or above full_ratio {}", config.full_ratio),
        )
    } else if ratio >= config.nearfull_ratio {
        (
            Fullness::Nearfull,
            format!(
                "at or above nearfull_ratio {} and below full_ratio {}",
                config.nearfull_ratio, config.full_ratio
            ),
        )
    } else {
        (
            Fullness::Ok,
            format!("below nearfull_ratio {}", config.nearfull_ratio),
        )
    }
}

fn decision_key(decision: &MonCommand) -> Option<(u8, OsdId)> {
    match decision {
        MonCommand::PolicyMarkDown { id, .. } => Some((0, *id)),
        MonCommand::PolicyMarkOut { id, .. } => Some((1, *id)),
        MonCommand::PolicySetFullness { id, .. } => Some((2, *id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clustermap::{MapChange, MonitorInfo, NewOsd, Uuid};

    /// Three OSDs on three hosts, all up and in.
    fn map() -> ClusterMap {
        let map = ClusterMap::new(
            Uuid::from_bytes([7; 16]),
            1_000,
            vec![MonitorInfo {
                name: "a".to_owned(),
                address: "127.0.0.1:7100".to_owned(),
            }],
            crush::CrushMap::new_default(),
        )
        .unwrap();
        let mut changes = Vec::new();
        for id in 0..3 {
            let uuid = Uuid::from_bytes([id as u8 + 1; 16]);
            changes.push(MapChange::NewOsd(NewOsd {
                uuid,
                id: Some(id),
                host: format!("h{id}"),
                location: Vec::new(),
                crush_weight: crush::WEIGHT_ONE,
                device_class: None,
            }));
            changes.push(MapChange::BootOsd {
                id,
                uuid,
                address: format!("127.0.0.1:{}", 7200 + id),
            });
            changes.push(MapChange::MarkIn { id });
        }
        map.apply(&changes, 2_000).unwrap()
    }

    fn used(percent: u64) -> Option<StorageUsage> {
        StorageUsage::from_beacon(1000, 1000 - percent * 10)
    }

    fn fullness_decisions(decisions: &[MonCommand]) -> Vec<(OsdId, Fullness)> {
        decisions
            .iter()
            .filter_map(|decision| match decision {
                MonCommand::PolicySetFullness { id, fullness } => Some((*id, *fullness)),
                _ => None,
            })
            .collect()
    }

    /// Applies what a fullness decision stands for, as the state machine would.
    fn apply(map: &ClusterMap, decisions: &[MonCommand]) -> ClusterMap {
        let changes: Vec<MapChange> = fullness_decisions(decisions)
            .into_iter()
            .map(|(id, fullness)| MapChange::SetOsdFullness { id, fullness })
            .collect();
        map.apply(&changes, 3_000).unwrap()
    }

    struct Leader {
        soft: SoftState,
        config: FailureConfig,
        now: Instant,
    }

    impl Leader {
        fn new() -> Leader {
            let mut soft = SoftState::default();
            soft.ensure_term(1);
            Leader {
                soft,
                config: FailureConfig::default(),
                now: Instant::now(),
            }
        }

        fn beacon(&mut self, osd: OsdId, usage: Option<StorageUsage>) {
            self.soft.beacon(osd, usage, self.now);
        }

        /// One policy round; settles every decision as if it had been applied.
        fn round(&mut self, map: &ClusterMap) -> Vec<MonCommand> {
            let decisions = self.soft.evaluate(map, &self.config, self.now, 2_000);
            for decision in &decisions {
                self.soft.settle(decision);
            }
            decisions
        }
    }

    #[test]
    fn the_used_share_is_judged_against_both_ratios() {
        let mut leader = Leader::new();
        let map = map();
        leader.beacon(0, used(96));
        leader.beacon(1, used(90));
        leader.beacon(2, used(50));
        let decisions = leader.round(&map);
        assert_eq!(
            fullness_decisions(&decisions),
            vec![(0, Fullness::Full), (1, Fullness::Nearfull)],
            "osd.2 is ok as the map says: {decisions:?}"
        );
        assert_eq!(decisions.len(), 2, "{decisions:?}");
        let map = apply(&map, &decisions);
        assert_eq!(map.osd(0).unwrap().fullness, Fullness::Full);
        assert_eq!(map.osd(1).unwrap().fullness, Fullness::Nearfull);

        // The map agrees now: nothing more to propose.
        assert!(leader.round(&map).is_empty());

        // Space freed: back to ok; full drops to nearfull.
        leader.beacon(0, used(90));
        leader.beacon(1, used(50));
        let decisions = leader.round(&map);
        let mut judged = fullness_decisions(&decisions);
        judged.sort();
        assert_eq!(judged, vec![(0, Fullness::Nearfull), (1, Fullness::Ok)]);
        let map = apply(&map, &decisions);
        leader.beacon(0, used(50));
        let map = apply(&map, &leader.round(&map));
        assert!(map.osds().values().all(|osd| osd.fullness == Fullness::Ok));
    }

    #[test]
    fn the_thresholds_are_inclusive_and_configurable() {
        let mut leader = Leader::new();
        leader.config.nearfull_ratio = 0.5;
        leader.config.full_ratio = 0.75;
        let map = map();
        leader.beacon(0, used(75));
        leader.beacon(1, used(50));
        leader.beacon(2, used(49));
        let mut judged = fullness_decisions(&leader.round(&map));
        judged.sort();
        assert_eq!(judged, vec![(0, Fullness::Full), (1, Fullness::Nearfull)]);
        assert_eq!(used(95).unwrap().used_ratio(), 0.95);
        assert_eq!(
            StorageUsage::from_beacon(100, 500).unwrap().used_ratio(),
            0.0,
            "more available than the total is nothing used"
        );
    }

    #[test]
    fn an_unknown_size_proposes_nothing_and_keeps_the_fullness() {
        let mut leader = Leader::new();
        assert_eq!(StorageUsage::from_beacon(0, 0), None);
        assert_eq!(StorageUsage::from_beacon(0, 5), None);
        let map = map();
        leader.beacon(0, StorageUsage::from_beacon(0, 0));
        assert!(leader.round(&map).is_empty());

        // Judged full, then the OSD loses track of its size: it stays full.
        leader.beacon(0, used(97));
        let map = apply(&map, &leader.round(&map));
        assert_eq!(map.osd(0).unwrap().fullness, Fullness::Full);
        leader.beacon(0, StorageUsage::from_beacon(0, 0));
        assert!(leader.round(&map).is_empty());
    }

    #[test]
    fn a_decision_is_not_repeated_while_in_flight() {
        let mut leader = Leader::new();
        let map = map();
        leader.beacon(2, used(99));
        let first = leader
            .soft
            .evaluate(&map, &leader.config, leader.now, 2_000);
        assert_eq!(fullness_decisions(&first), vec![(2, Fullness::Full)]);
        leader.beacon(2, used(99));
        assert!(leader
            .soft
            .evaluate(&map, &leader.config, leader.now, 2_000)
            .is_empty());
        // Refused or lost: once settled, the still-disagreeing map gets it proposed again.
        leader.soft.settle(&first[0]);
        assert_eq!(
            fullness_decisions(
                &leader
                    .soft
                    .evaluate(&map, &leader.config, leader.now, 2_000)
            ),
            vec![(2, Fullness::Full)]
        );
    }

    #[test]
    fn down_osds_and_new_terms_keep_the_last_fullness() {
        let mut leader = Leader::new();
        let map = map();
        leader.beacon(1, used(96));
        let map = apply(&map, &leader.round(&map));
        let map = map.apply(&[MapChange::MarkDown { id: 1 }], 4_000).unwrap();
        // A beacon that arrives while the map says down is not acted on.
        leader.beacon(1, used(10));
        assert!(leader.round(&map).is_empty());
        assert_eq!(map.osd(1).unwrap().fullness, Fullness::Full);

        // A new leader knows no usage until the OSDs report again.
        let map = map
            .apply(
                &[MapChange::BootOsd {
                    id: 1,
                    uuid: map.osd(1).unwrap().uuid,
                    address: "127.0.0.1:7201".to_owned(),
                }],
                5_000,
            )
            .unwrap();
        leader.soft.ensure_term(2);
        assert!(leader.round(&map).is_empty());
        leader.beacon(1, used(10));
        assert_eq!(
            fullness_decisions(&leader.round(&map)),
            vec![(1, Fullness::Ok)]
        );
    }
}
