//! Cluster health: a pure function from the map (plus, optionally, the monitors in quorum,
//! the PG statistics the OSDs reported and the current time) to `HEALTH_OK`, `HEALTH_WARN`
//! or `HEALTH_ERR` with named checks, using Ceph's check codes and wording so that
//! operators recognise them:
//!
//! | code | severity | raised when |
//! | --- | --- | --- |
//! | `MON_DOWN` | warn | a monitor is not in the quorum given |
//! | `OSDMAP_FLAGS` | warn | a cluster flag (`noout`, ...) is set |
//! | `OSD_DOWN` | warn | an OSD that is in is down |
//! | `OSD_HOST_DOWN` | warn | every OSD of a host is down |
//! | `OSD_FULL` | error | the monitors judged an OSD full (its `fullness`, up or down) |
//! | `OSD_NEARFULL` | warn | the monitors judged an OSD nearfull |
//! | `TOO_FEW_OSDS` | warn | fewer OSDs exist than `osd_pool_default_size` |
//! | `POOL_NO_REDUNDANCY` | warn | a pool has size 1 |
//! | `PG_AVAILABILITY` | warn | a PG's acting set is below `min_size` (computed from the map), or reports say down / incomplete / peering / stale, or a PG has no report |
//! | `PG_DEGRADED` | warn | a PG's acting set is below the pool size (computed), or reports say degraded objects or PGs |
//! | `OBJECT_UNFOUND` | warn | reports count unfound objects |
//! | `PG_DAMAGED` | error | a report says inconsistent |
//! | `OSD_SCRUB_ERRORS` | error | reports count scrub errors |
//!
//! The PG checks that need no reports come from the mapping itself (§2), so a fresh
//! monitor can tell that data is degraded before any OSD has reported.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::map::ClusterMap;
use crate::placement::{format_osd_list, PgMapping};
use crate::types::{Epoch, Fullness, OsdId, PgId, UnixMillis};

/// How bad a check (or the whole cluster) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// `HEALTH_OK`.
    #[serde(rename = "HEALTH_OK")]
    Ok,
    /// `HEALTH_WARN`.
    #[serde(rename = "HEALTH_WARN")]
    Warn,
    /// `HEALTH_ERR`.
    #[serde(rename = "HEALTH_ERR")]
    Err,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Ok => "HEALTH_OK",
            Severity::Warn => "HEALTH_WARN",
            Severity::Err => "HEALTH_ERR",
        })
    }
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Ceph's code (`OSD_DOWN`).
    pub code: String,
    /// Warn or error.
    pub severity: Severity,
    /// One line (`2 osds down`).
    pub summary: String,
    /// One line per affected item (`osd.3 (root=default,host=h1) is down`), capped at
    /// [`HealthConfig::max_detail_lines`] plus a "... more" line.
    pub detail: Vec<String>,
    /// How many items are affected.
    pub count: u64,
}

/// The cluster's health: the worst severity and the failed checks, errors first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The worst severity of any check (`Ok` when there is none).
    pub status: Severity,
    /// Failed checks, by severity (errors first), then code.
    pub checks: Vec<HealthCheck>,
}

impl Health {
    /// A check by code.
    pub fn check(&self, code: &str) -> Option<&HealthCheck> {
        self.checks.iter().find(|check| check.code == code)
    }
}

impl fmt::Display for Health {
    /// `HEALTH_OK`, or `HEALTH_WARN 1 osds down; noout flag(s) set` as `ceph health`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.status)?;
        for (i, check) in self.checks.iter().enumerate() {
            f.write_str(if i == 0 { " " } else { "; " })?;
            f.write_str(&check.summary)?;
        }
        Ok(())
    }
}

/// A PG state as the OSDs report it; the declaration order is Ceph's printing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PgState {
    /// Being created.
    Creating,
    /// Serving I/O.
    Active,
    /// Every object has all its copies where they belong.
    Clean,
    /// A needed OSD is down and nothing can proceed.
    Down,
    /// Being scrubbed.
    Scrubbing,
    /// Some objects lack copies.
    Degraded,
    /// Scrub found copies that disagree.
    Inconsistent,
    /// Agreeing on the authoritative log.
    Peering,
    /// Being repaired.
    Repair,
    /// Copying changed objects to members that were behind.
    Recovering,
    /// Waiting to backfill.
    BackfillWait,
    /// Peering found no complete history.
    Incomplete,
    /// The primary stopped reporting.
    Stale,
    /// Acting differs from up (a `pg_temp` is in force).
    Remapped,
    /// The scrub is a deep scrub.
    Deep,
    /// Copying the whole PG to a new member.
    Backfilling,
    /// Fewer acting OSDs than the pool size.
    Undersized,
    /// Peering done, activation in progress.
    Activating,
    /// Peered but below `min_size`, so not active.
    Peered,
    /// No report.
    Unknown,
}

impl PgState {
    /// Ceph's name (`backfill_wait`).
    pub fn name(self) -> &'static str {
        match self {
            PgState::Creating => "creating",
            PgState::Active => "active",
            PgState::Clean => "clean",
            PgState::Down => "down",
            PgState::Scrubbing => "scrubbing",
            PgState::Degraded => "degraded",
            PgState::Inconsistent => "inconsistent",
            PgState::Peering => "peering",
            PgState::Repair => "repair",
            PgState::Recovering => "recovering",
            PgState::BackfillWait => "backfill_wait",
            PgState::Incomplete => "incomplete",
            PgState::Stale => "stale",
            PgState::Remapped => "remapped",
            PgState::Deep => "deep",
            PgState::Backfilling => "backfilling",
            PgState::Undersized => "undersized",
            PgState::Activating => "activating",
            PgState::Peered => "peered",
            PgState::Unknown => "unknown",
        }
    }
}

/// Writes a state set as Ceph does: `active+clean+inconsistent`.
pub fn format_pg_states(states: &BTreeSet<PgState>) -> String {
    if states.is_empty() {
        return PgState::Unknown.name().to_string();
    }
    states
        .iter()
        .map(|state| state.name())
        .collect::<Vec<_>>()
        .join("+")
}

/// What a PG's primary last reported about it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgStatReport {
    /// Its states.
    pub states: BTreeSet<PgState>,
    /// The map epoch of the report.
    pub reported_epoch: Epoch,
    /// When the monitor received it.
    pub reported_ms: UnixMillis,
    /// Objects stored.
    pub num_objects: u64,
    /// Bytes stored.
    pub num_bytes: u64,
    /// Object copies missing.
    pub num_objects_degraded: u64,
    /// Object copies in the wrong place.
    pub num_objects_misplaced: u64,
    /// Objects with no copy found.
    pub num_objects_unfound: u64,
    /// Errors the last scrub found.
    pub scrub_errors: u64,
}

/// Thresholds of the health rules (Ceph's defaults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `TOO_FEW_OSDS` fires below this many OSDs (`osd_pool_default_size`, 3; 0 disables).
    pub osd_pool_default_size: u32,
    /// A PG whose last report is older than this is stale (needs `now_ms`).
    pub pg_stale_after_ms: u64,
    /// Detail lines per check before "... and N more".
    pub max_detail_lines: usize,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            osd_pool_default_size: 3,
            pg_stale_after_ms: 900_000,
            max_detail_lines: 50,
        }
    }
}

/// The inputs of [`health`] besides the map. Every part is optional; checks that need a
/// missing part are skipped.
#[derive(Clone, Debug, Default)]
pub struct HealthInput<'a> {
    /// Names of the monitors in quorum (for `MON_DOWN`).
    pub quorum: Option<&'a BTreeSet<String>>,
    /// The latest report of each PG (for the report-based PG checks).
    pub pg_stats: Option<&'a BTreeMap<PgId, PgStatReport>>,
    /// The current time (for stale reports).
    pub now_ms: Option<UnixMillis>,
    /// Thresholds.
    pub config: HealthConfig,
}

/// Collects one check's items and turns them into a [`HealthCheck`].
struct Collector {
    detail: Vec<String>,
    count: u64,
    /// Detail lines not kept because of the cap.
    dropped: u64,
    max: usize,
}

impl Collector {
    fn new(max: usize) -> Self {
        Collector {
            detail: Vec::new(),
            count: 0,
            dropped: 0,
            max,
        }
    }

    fn add(&mut self, line: impl FnOnce() -> String) {
        self.count += 1;
        if self.detail.len() < self.max {
            self.detail.push(line());
        } else {
            self.dropped += 1;
        }
    }

    /// Takes over another collector's items (for checks that merge several reasons).
    fn absorb(&mut self, other: Collector) {
        self.count += other.count;
        self.dropped += other.dropped;
        for line in other.detail {
            if self.detail.len() < self.max {
                self.detail.push(line);
            } else {
                self.dropped += 1;
            }
        }
    }

    fn finish(mut self, code: &str, severity: Severity, summary: String) -> HealthCheck {
        if self.dropped > 0 {
            self.detail.push(format!("... and {} more", self.dropped));
        }
        HealthCheck {
            code: code.to_string(),
            severity,
            summary,
            detail: self.detail,
            count: self.count,
        }
    }
}

/// `1 pg` / `3 pgs`, Ceph's way of counting.
fn pgs(count: u64) -> String {
    if count == 1 {
        "1 pg".to_string()
    } else {
        format!("{count} pgs")
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Evaluates the cluster's health. Pure: the same inputs give the same answer.
pub fn health(map: &ClusterMap, input: &HealthInput<'_>) -> Health {
    let max = input.config.max_detail_lines;
    let mut checks = Vec::new();

    if let Some(quorum) = input.quorum {
        let mut down = Collector::new(max);
        for (rank, mon) in map.monitors().iter().enumerate() {
            if !quorum.contains(&mon.name) {
                down.add(|| {
                    format!(
                        "mon.{} (rank {rank}) addr {} is down (out of quorum)",
                        mon.name, mon.address
                    )
                });
            }
        }
        if down.count > 0 {
            let in_quorum: Vec<&str> = map
                .monitors()
                .iter()
                .filter(|mon| quorum.contains(&mon.name))
                .map(|mon| mon.name.as_str())
                .collect();
            let summary = format!(
                "{}/{} mons down, quorum {}",
                down.count,
                map.monitors().len(),
                in_quorum.join(",")
            );
            checks.push(down.finish("MON_DOWN", Severity::Warn, summary));
        }
    }

    if !map.flags().is_empty() {
        let names: Vec<&str> = map.flags().iter().map(|flag| flag.name()).collect();
        let mut flags = Collector::new(max);
        for name in &names {
            flags.add(|| format!("{name} flag is set"));
        }
        let summary = format!("{} flag(s) set", names.join(","));
        checks.push(flags.finish("OSDMAP_FLAGS", Severity::Warn, summary));
    }

    let mut osd_down = Collector::new(max);
    for osd in map.osds().values().filter(|osd| osd.is_in && !osd.up) {
        osd_down.add(|| format!("osd.{} ({}) is down", osd.id, crush_path(map, osd.id)));
    }
    if osd_down.count > 0 {
        let summary = format!("{} osds down", osd_down.count);
        checks.push(osd_down.finish("OSD_DOWN", Severity::Warn, summary));
    }

    let mut host_down = Collector::new(max);
    let mut host_down_osds = 0u64;
    for (host, osds) in crate::crush_edit::osds_by_host(map.crush()) {
        let existing: Vec<_> = osds.iter().filter_map(|id| map.osd(*id)).collect();
        let all_down = !existing.is_empty() && existing.iter().all(|osd| !osd.up);
        if all_down && existing.iter().any(|osd| osd.is_in) {
            host_down_osds += existing.len() as u64;
            host_down.add(|| format!("host {host} with {} osds is down", existing.len()));
        }
    }
    if host_down.count > 0 {
        let summary = format!(
            "{} host{} ({} osds) down",
            host_down.count,
            if host_down.count == 1 { "" } else { "s" },
            host_down_osds
        );
        checks.push(host_down.finish("OSD_HOST_DOWN", Severity::Warn, summary));
    }

    // Down OSDs count too: their data is still on them, and the fullness they last
    // reported is what they will come back with.
    let mut full = Collector::new(max);
    let mut nearfull = Collector::new(max);
    for osd in map.osds().values() {
        match osd.fullness {
            Fullness::Full => full.add(|| format!("osd.{} is full", osd.id)),
            Fullness::Nearfull => nearfull.add(|| format!("osd.{} is near full", osd.id)),
            Fullness::Ok => {}
        }
    }
    if full.count > 0 {
        let summary = format!("{} full osd(s)", full.count);
        checks.push(full.finish("OSD_FULL", Severity::Err, summary));
    }
    if nearfull.count > 0 {
        let summary = format!("{} nearfull osd(s)", nearfull.count);
        checks.push(nearfull.finish("OSD_NEARFULL", Severity::Warn, summary));
    }

    let default_size = input.config.osd_pool_default_size;
    let osd_count = map.osds().len() as u64;
    if default_size > 0 && osd_count < u64::from(default_size) {
        let mut few = Collector::new(max);
        few.count = 1;
        let summary = format!("OSD count {osd_count} < osd_pool_default_size {default_size}");
        checks.push(few.finish("TOO_FEW_OSDS", Severity::Warn, summary));
    }

    let mut no_redundancy = Collector::new(max);
    for pool in map.pools().values().filter(|pool| pool.size == 1) {
        no_redundancy.add(|| format!("pool '{}' has no replicas configured", pool.name));
    }
    if no_redundancy.count > 0 {
        let summary = format!(
            "{} pool(s) have no replicas configured",
            no_redundancy.count
        );
        checks.push(no_redundancy.finish("POOL_NO_REDUNDANCY", Severity::Warn, summary));
    }

    checks.extend(pg_checks(map, input));
    checks.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(&b.code)));
    Health {
        status: checks
            .iter()
            .map(|check| check.severity)
            .max()
            .unwrap_or(Severity::Ok),
        checks,
    }
}

/// `root=default,rack=r1,host=h1` for an OSD, from the ordinary CRUSH hierarchy.
fn crush_path(map: &ClusterMap, id: OsdId) -> String {
    let crush = map.crush();
    let mut parts = Vec::new();
    let mut current = id;
    while let Some(parent) = crush.parent_of(current) {
        if parts.len() > crush.buckets.len() {
            break; // a cycle; validation keeps them out, but never loop forever
        }
        let type_name = crush.types.get(&parent.type_id).map_or("?", String::as_str);
        parts.push(format!("{type_name}={}", parent.name));
        current = parent.id;
    }
    parts.reverse();
    if parts.is_empty() {
        "not in the crush map".to_string()
    } else {
        parts.join(",")
    }
}

/// The PG checks: computed from the mapping, then from the reports if there are any.
fn pg_checks(map: &ClusterMap, input: &HealthInput<'_>) -> Vec<HealthCheck> {
    let max = input.config.max_detail_lines;
    let mut inactive = Collector::new(max);
    let mut undersized = Collector::new(max);
    let mut down = Collector::new(max);
    let mut incomplete = Collector::new(max);
    let mut peering = Collector::new(max);
    let mut stale = Collector::new(max);
    let mut unknown = Collector::new(max);
    let mut degraded = Collector::new(max);
    let mut damaged = Collector::new(max);
    let mut unfound_pgs = Collector::new(max);
    let (mut objects_degraded, mut object_copies) = (0u64, 0u64);
    let (mut objects_unfound, mut objects_total) = (0u64, 0u64);
    let mut scrub_errors = 0u64;

    let mut mapper = map.pg_mapper();
    for pool in map.pools().values() {
        for pgid in pool.pgs() {
            let Ok(mapping) = mapper.map(pgid) else {
                continue;
            };
            let acting = mapping.acting_count() as u64;
            if acting < u64::from(pool.min_size) {
                inactive.add(|| {
                    format!(
                        "pg {pgid} is inactive: acting {} has {acting} of min_size {} OSDs",
                        format_osd_list(&mapping.acting),
                        pool.min_size
                    )
                });
            }
            if acting < u64::from(pool.size) {
                undersized.add(|| {
                    format!(
                        "pg {pgid} is undersized: acting {} has {acting} of {} OSDs",
                        format_osd_list(&mapping.acting),
                        pool.size
                    )
                });
            }

            let Some(stats) = input.pg_stats else {
                continue;
            };
            let Some(report) = stats.get(&pgid) else {
                unknown.add(|| format!("pg {pgid} is unknown: no report"));
                continue;
            };
            let states = format_pg_states(&report.states);
            let describe = |what: &str, mapping: &PgMapping| {
                format!(
                    "pg {pgid} is {what}, current state {states}, acting {}",
                    format_osd_list(&mapping.acting)
                )
            };
            let age = input
                .now_ms
                .map(|now| now.saturating_sub(report.reported_ms));
            let too_old = age.is_some_and(|age| age > input.config.pg_stale_after_ms);
            if too_old || report.states.contains(&PgState::Stale) {
                stale.add(|| match age {
                    Some(age) if too_old => {
                        format!("pg {pgid} is stale: last reported {} s ago", age / 1000)
                    }
                    _ => describe("stale", &mapping),
                });
            }
            if report.states.contains(&PgState::Down) {
                down.add(|| describe("down", &mapping));
            }
            if report.states.contains(&PgState::Incomplete) {
                incomplete.add(|| describe("incomplete", &mapping));
            }
            if report.states.contains(&PgState::Peering) {
                peering.add(|| describe("peering", &mapping));
            }
            if report.states.contains(&PgState::Degraded) || report.num_objects_degraded > 0 {
                degraded.add(|| describe("degraded", &mapping));
            }
            if report.states.contains(&PgState::Inconsistent) {
                damaged.add(|| describe("inconsistent", &mapping));
            }
            if report.num_objects_unfound > 0 {
                unfound_pgs.add(|| {
                    format!(
                        "pg {pgid} has {} unfound objects",
                        report.num_objects_unfound
                    )
                });
            }
            objects_degraded += report.num_objects_degraded;
            object_copies += report.num_objects * u64::from(pool.size);
            objects_unfound += report.num_objects_unfound;
            objects_total += report.num_objects;
            scrub_errors += report.scrub_errors;
        }
    }

    let mut checks = Vec::new();

    // PG_AVAILABILITY: every reason a PG may not serve I/O, in one check as Ceph has it.
    let availability = [
        (inactive, "inactive"),
        (down, "down"),
        (incomplete, "incomplete"),
        (peering, "peering"),
        (stale, "stale"),
        (unknown, "unknown"),
    ];
    let parts: Vec<String> = availability
        .iter()
        .filter(|(c, _)| c.count > 0)
        .map(|(c, what)| format!("{} {what}", pgs(c.count)))
        .collect();
    if !parts.is_empty() {
        let mut merged = Collector::new(max);
        for (collector, _) in availability {
            merged.absorb(collector);
        }
        let summary = format!("Reduced data availability: {}", parts.join(", "));
        // A PG can be counted under several reasons, as it gets one detail line for each.
        checks.push(merged.finish("PG_AVAILABILITY", Severity::Warn, summary));
    }

    // PG_DEGRADED: computed undersized PGs, reported degraded PGs and objects.
    let mut parts = Vec::new();
    if objects_degraded > 0 {
        parts.push(format!(
            "{objects_degraded}/{object_copies} objects degraded ({:.3}%)",
            percent(objects_degraded, object_copies)
        ));
    }
    if degraded.count > 0 {
        parts.push(format!("{} degraded", pgs(degraded.count)));
    }
    if undersized.count > 0 {
        parts.push(format!("{} undersized", pgs(undersized.count)));
    }
    if !parts.is_empty() {
        let mut merged = Collector::new(max);
        merged.absorb(degraded);
        merged.absorb(undersized);
        let summary = format!("Degraded data redundancy: {}", parts.join(", "));
        checks.push(merged.finish("PG_DEGRADED", Severity::Warn, summary));
    }

    if objects_unfound > 0 {
        let summary = format!(
            "{objects_unfound}/{objects_total} objects unfound ({:.3}%)",
            percent(objects_unfound, objects_total)
        );
        checks.push(unfound_pgs.finish("OBJECT_UNFOUND", Severity::Warn, summary));
    }
    if damaged.count > 0 {
        let summary = format!("Possible data damage: {} inconsistent", pgs(damaged.count));
        checks.push(damaged.finish("PG_DAMAGED", Severity::Err, summary));
    }
    if scrub_errors > 0 {
        let mut errors = Collector::new(max);
        errors.count = scrub_errors;
        let summary = format!("{scrub_errors} scrub errors");
        checks.push(errors.finish("OSD_SCRUB_ERRORS", Severity::Err, summary));
    }
    checks
}
