//! What the launcher starts ([`ClusterSpec`], [`MonTimings`], [`OsdTimings`]) and the config
//! file it writes for the daemons and the clients (`DIR/shoal.conf`).
//!
//! The file has three tables. `[mon]` is the monitors' (see `monitor::config`): the initial
//! members, each found through its `mon.addr` file (every monitor listens on port 0), the
//! backend, the Raft timings, the failure policy (`[mon.failure]`) and the pool defaults
//! (`[mon.pool_defaults]`, whose `failure_domain` is `osd`: every OSD runs on this one
//! host, so a rule separating replicas by host could place one copy only). `[osd]` is the
//! OSDs' (see `osd::config`). `[client]` is the clients' (see `monclient::config`): the
//! monitors' addresses as they were when the file was last written, and the command
//! timeout; OSDs find the monitors through it too. Daemons read the file only when they
//! start, so it can be rewritten while they run. A rewrite keeps every key added by hand
//! (an `[osd] memtable_bytes` set for the next restart, say) and replaces the launcher's own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::DeployError;

/// The config file's name inside the cluster directory.
pub const CONF_FILE: &str = "shoal.conf";

/// The failure domain of the default CRUSH rule of a launched cluster
/// (`[mon.pool_defaults] failure_domain`): all its OSDs share this host, so replicas are
/// kept on distinct OSDs instead (Ceph's vstart: `osd_crush_chooseleaf_type = 0`).
pub const DEFAULT_FAILURE_DOMAIN: &str = "osd";

fn default_failure_domain() -> String {
    DEFAULT_FAILURE_DOMAIN.to_owned()
}

/// Monitor Raft timings; each `None` keeps the monitor's own default (`[mon.raft]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonTimings {
    /// Milliseconds per Raft tick (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_ms: Option<u64>,
    /// Ticks without a leader before an election (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub election_ticks: Option<u64>,
    /// Ticks between leader heartbeats (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ticks: Option<u64>,
    /// Applied entries between snapshots (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_interval: Option<u64>,
    /// Entries kept behind a snapshot (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_keep_entries: Option<u64>,
    /// How long a command may take to commit (default 10000); also the clients' command
    /// timeout in the written config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_timeout_ms: Option<u64>,
    /// Incrementals kept for `WatchMap` catch-up (default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_history: Option<u64>,
}

impl MonTimings {
    /// Short timings for tests on a loaded machine: 50 ms ticks (an election within 0.5 to
    /// 1 s), heartbeats every 100 ms, a snapshot every 500 entries, 5 s command timeout.
    pub fn fast() -> Self {
        MonTimings {
            tick_ms: Some(50),
            election_ticks: Some(10),
            heartbeat_ticks: Some(2),
            snapshot_interval: Some(500),
            log_keep_entries: Some(100),
            command_timeout_ms: Some(5_000),
            map_history: Some(500),
        }
    }

    fn raft_table(&self) -> toml::Table {
        integer_table(&[
            ("tick_ms", self.tick_ms),
            ("election_ticks", self.election_ticks),
            ("heartbeat_ticks", self.heartbeat_ticks),
            ("snapshot_interval", self.snapshot_interval),
            ("log_keep_entries", self.log_keep_entries),
            ("command_timeout_ms", self.command_timeout_ms),
            ("map_history", self.map_history),
        ])
    }

    fn validate(&self) -> Result<(), DeployError> {
        let positive = [
            ("timings.tick_ms", self.tick_ms),
            ("timings.election_ticks", self.election_ticks),
            ("timings.heartbeat_ticks", self.heartbeat_ticks),
            ("timings.snapshot_interval", self.snapshot_interval),
            ("timings.command_timeout_ms", self.command_timeout_ms),
            ("timings.map_history", self.map_history),
        ];
        for (field, value) in positive {
            if value == Some(0) {
                return Err(DeployError::InvalidSpec {
                    field,
                    reason: "must be > 0".to_owned(),
                });
            }
        }
        let election = self.election_ticks.unwrap_or(10);
        let heartbeat = self.heartbeat_ticks.unwrap_or(1);
        if election <= heartbeat {
            return Err(DeployError::InvalidSpec {
                field: "timings.election_ticks",
                reason: format!("({election}) must be greater than heartbeat_ticks ({heartbeat})"),
            });
        }
        Ok(())
    }
}

/// OSD timings and the monitors' matching failure policy; each `None` keeps the daemon's
/// own default (Ceph's, DESIGN.md §4).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsdTimings {
    /// `[osd] heartbeat_interval_ms`: how often OSDs ping their peers (default 6000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_ms: Option<u64>,
    /// `[osd] heartbeat_grace_ms` and `[mon.failure] osd_heartbeat_grace_ms`: silence after
    /// which a peer is reported, and after which a report counts (default 20000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_grace_ms: Option<u64>,
    /// `[osd] beacon_interval_ms` (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beacon_interval_ms: Option<u64>,
    /// `[osd] pg_stats_interval_ms` (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_stats_interval_ms: Option<u64>,
    /// `[osd] op_timeout_ms`: how long an op waits for its PG to become writable
    /// (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op_timeout_ms: Option<u64>,
    /// `[mon.failure] min_down_reporters` (default 2; the monitors use 1 when every OSD
    /// is on one host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_down_reporters: Option<u64>,
    /// `[mon.failure] osd_report_timeout_ms`: an OSD without a beacon for this long is
    /// marked down (default 900000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_timeout_ms: Option<u64>,
    /// `[mon.failure] down_out_interval_ms`: a down OSD is marked out after this long
    /// (default 600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_out_interval_ms: Option<u64>,
    /// `[mon.failure] check_interval_ms`: how often the leader runs the policy
    /// (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_check_interval_ms: Option<u64>,
}

impl OsdTimings {
    /// Short timings for tests: pings every 500 ms, reported (and marked down) after 2 s
    /// of silence, beacons every second and a beacon timeout of 10 s, PG statistics every
    /// 500 ms, the policy checked every 200 ms. Down OSDs are marked out only after 60 s:
    /// the tests kill and restart OSDs and check what the survivors serve meanwhile, which
    /// a remap to other OSDs would change under them.
    pub fn fast() -> Self {
        OsdTimings {
            heartbeat_interval_ms: Some(500),
            heartbeat_grace_ms: Some(2_000),
            beacon_interval_ms: Some(1_000),
            pg_stats_interval_ms: Some(500),
            op_timeout_ms: None,
            min_down_reporters: Some(1),
            report_timeout_ms: Some(10_000),
            down_out_interval_ms: Some(60_000),
            failure_check_interval_ms: Some(200),
        }
    }

    fn osd_fields(&self) -> [(&'static str, Option<u64>); 5] {
        [
            ("heartbeat_interval_ms", self.heartbeat_interval_ms),
            ("heartbeat_grace_ms", self.heartbeat_grace_ms),
            ("beacon_interval_ms", self.beacon_interval_ms),
            ("pg_stats_interval_ms", self.pg_stats_interval_ms),
            ("op_timeout_ms", self.op_timeout_ms),
        ]
    }

    fn failure_table(&self) -> toml::Table {
        integer_table(&[
            ("osd_heartbeat_grace_ms", self.heartbeat_grace_ms),
            ("min_down_reporters", self.min_down_reporters),
            ("osd_report_timeout_ms", self.report_timeout_ms),
            ("down_out_interval_ms", self.down_out_interval_ms),
            ("check_interval_ms", self.failure_check_interval_ms),
        ])
    }

    fn validate(&self) -> Result<(), DeployError> {
        let positive = [
            (
                "osd_timings.heartbeat_interval_ms",
                self.heartbeat_interval_ms,
            ),
            ("osd_timings.heartbeat_grace_ms", self.heartbeat_grace_ms),
            ("osd_timings.beacon_interval_ms", self.beacon_interval_ms),
            (
                "osd_timings.pg_stats_interval_ms",
                self.pg_stats_interval_ms,
            ),
            ("osd_timings.op_timeout_ms", self.op_timeout_ms),
            ("osd_timings.min_down_reporters", self.min_down_reporters),
            (
                "osd_timings.failure_check_interval_ms",
                self.failure_check_interval_ms,
            ),
        ];
        for (field, value) in positive {
            if value == Some(0) {
                return Err(DeployError::InvalidSpec {
                    field,
                    reason: "must be > 0".to_owned(),
                });
            }
        }
        let interval = self.heartbeat_interval_ms.unwrap_or(6_000);
        let grace = self.heartbeat_grace_ms.unwrap_or(20_000);
        if grace <= interval {
            return Err(DeployError::InvalidSpec {
                field: "osd_timings.heartbeat_grace_ms",
                reason: format!("({grace}) must be longer than heartbeat_interval_ms ({interval})"),
            });
        }
        Ok(())
    }
}

/// The OSDs' settings other than timings, for the `[osd]` table; each `None` keeps the
/// OSD's default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsdSettings {
    /// Storage engine (`fjall`, `sled`, `memory`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Largest object, bytes (default 128 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_object_size: Option<u64>,
    /// Bytes of the engine's cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_bytes: Option<u64>,
    /// `[osd] capacity_bytes`: the OSD's size, by which its fullness is judged
    /// ([`ClusterSpec::default`] sets [`LOCAL_OSD_CAPACITY`]; `None` writes none: the OSD
    /// then uses its file system's size and free space).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_bytes: Option<u64>,
}

/// A TOML table of the integer fields that are set.
fn integer_table(fields: &[(&str, Option<u64>)]) -> toml::Table {
    let mut table = toml::Table::new();
    for (name, value) in fields {
        if let Some(value) = value {
            table.insert(
                (*name).to_owned(),
                toml::Value::Integer(i64::try_from(*value).unwrap_or(i64::MAX)),
            );
        }
    }
    table
}

fn check_backend(field: &'static str, backend: Option<&String>) -> Result<(), DeployError> {
    match backend {
        Some(backend) if !["fjall", "sled", "memory"].contains(&backend.as_str()) => {
            Err(DeployError::InvalidSpec {
                field,
                reason: format!("`{backend}` is not one of fjall, sled, memory"),
            })
        }
        _ => Ok(()),
    }
}

/// The size each OSD the launcher starts declares (`[osd] capacity_bytes`), as Ceph's OSDs
/// on files declare `bluestore_block_size` (100 GiB by default): the OSDs of a local
/// cluster share one file system, so the monitors judge their fullness by what they
/// store rather than by how full the host's disk is with everything else.
pub const LOCAL_OSD_CAPACITY: u64 = 100 << 30;

/// What [`crate::Cluster::up`] starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Monitors (1, 3 or 5 make sense; any number from 1 works).
    pub mons: u32,
    /// OSDs (all on this host, numbered from 0: `DIR/osd.<n>`).
    pub osds: u32,
    /// Where the binaries are; `None` searches (see [`crate::Binaries::locate`]).
    pub bin_dir: Option<PathBuf>,
    /// Monitor storage backend (`fjall`, `sled`, `memory`); `None` keeps the default.
    pub backend: Option<String>,
    /// Raft timings.
    pub timings: MonTimings,
    /// OSD timings and the monitors' failure policy.
    pub osd_timings: OsdTimings,
    /// The OSDs' other settings.
    pub osd_settings: OsdSettings,
    /// `[client] op_timeout_ms` in the written config: how long a client op may take,
    /// resends included (`None`: librados's default).
    pub client_op_timeout_ms: Option<u64>,
    /// The CRUSH type the default rule puts replicas apart across, used when the cluster
    /// is created (default [`DEFAULT_FAILURE_DOMAIN`]; tests that register OSDs on
    /// several hosts themselves use `host`).
    pub failure_domain: String,
    /// How long to wait for the cluster to be ready: monitors with a leader, every OSD
    /// booted and up, and (with [`ClusterSpec::wait_healthy`]) `HEALTH_OK`.
    pub ready_timeout: Duration,
    /// With OSDs, wait for `HEALTH_OK` before [`crate::Cluster::up`] returns.
    pub wait_healthy: bool,
    /// Kill the daemons when the thread that started them exits, even if the launcher
    /// is killed before it can stop them (tests); `shoal cluster up` leaves it off so
    /// the daemons outlive the command.
    pub die_with_launcher: bool,
}

impl Default for ClusterSpec {
    fn default() -> Self {
        ClusterSpec {
            mons: 1,
            osds: 0,
            bin_dir: None,
            backend: None,
            timings: MonTimings::default(),
            osd_timings: OsdTimings::default(),
            osd_settings: OsdSettings {
                capacity_bytes: Some(LOCAL_OSD_CAPACITY),
                ..OsdSettings::default()
            },
            client_op_timeout_ms: None,
            failure_domain: default_failure_domain(),
            ready_timeout: Duration::from_secs(60),
            wait_healthy: true,
            die_with_launcher: false,
        }
    }
}

impl ClusterSpec {
    /// `mons` monitors with [`MonTimings::fast`] timings that die with the test, for tests.
    pub fn for_tests(mons: u32) -> Self {
        ClusterSpec {
            mons,
            timings: MonTimings::fast(),
            osd_timings: OsdTimings::fast(),
            die_with_launcher: true,
            ..ClusterSpec::default()
        }
    }

    /// `mons` monitors and `osds` OSDs with fast timings ([`MonTimings::fast`],
    /// [`OsdTimings::fast`]) that die with the test, for tests.
    pub fn for_tests_with_osds(mons: u32, osds: u32) -> Self {
        ClusterSpec {
            osds,
            ..ClusterSpec::for_tests(mons)
        }
    }

    /// The part kept in the state file.
    pub fn stored(&self) -> StoredSpec {
        StoredSpec {
            backend: self.backend.clone(),
            timings: self.timings.clone(),
            osd_timings: self.osd_timings.clone(),
            osd_settings: self.osd_settings.clone(),
            client_op_timeout_ms: self.client_op_timeout_ms,
            failure_domain: self.failure_domain.clone(),
        }
    }

    /// Checks the spec; the error names the bad field.
    pub fn validate(&self) -> Result<(), DeployError> {
        if self.mons == 0 {
            return Err(DeployError::InvalidSpec {
                field: "mons",
                reason: "must be at least 1".to_owned(),
            });
        }
        check_backend("backend", self.backend.as_ref())?;
        check_backend("osd_settings.backend", self.osd_settings.backend.as_ref())?;
        let positive = [
            (
                "osd_settings.max_object_size",
                self.osd_settings.max_object_size,
            ),
            ("client_op_timeout_ms", self.client_op_timeout_ms),
        ];
        for (field, value) in positive {
            if value == Some(0) {
                return Err(DeployError::InvalidSpec {
                    field,
                    reason: "must be > 0".to_owned(),
                });
            }
        }
        if self.ready_timeout.is_zero() {
            return Err(DeployError::InvalidSpec {
                field: "ready_timeout",
                reason: "must be > 0".to_owned(),
            });
        }
        if self.failure_domain.is_empty() {
            return Err(DeployError::InvalidSpec {
                field: "failure_domain",
                reason: "must name a CRUSH type (osd, host, rack, ...)".to_owned(),
            });
        }
        self.timings.validate()?;
        self.osd_timings.validate()
    }
}

/// The persistent part of the spec, kept in the state file so a restart uses the same
/// settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSpec {
    /// Storage backend, when one was chosen.
    #[serde(default)]
    pub backend: Option<String>,
    /// Raft timings.
    #[serde(default)]
    pub timings: MonTimings,
    /// OSD timings and failure policy.
    #[serde(default)]
    pub osd_timings: OsdTimings,
    /// The OSDs' other settings.
    #[serde(default)]
    pub osd_settings: OsdSettings,
    /// `[client] op_timeout_ms`.
    #[serde(default)]
    pub client_op_timeout_ms: Option<u64>,
    /// `[mon.pool_defaults] failure_domain`; empty writes none (the monitors' default,
    /// `host`).
    #[serde(default = "default_failure_domain")]
    pub failure_domain: String,
}

impl StoredSpec {
    /// A spec that sets every setting: its config holds every key the launcher may write.
    /// Struct literals without `..`, so a new setting cannot be left out of it.
    fn every_setting() -> Self {
        let some = Some(1);
        StoredSpec {
            backend: Some(String::new()),
            timings: MonTimings {
                tick_ms: some,
                election_ticks: some,
                heartbeat_ticks: some,
                snapshot_interval: some,
                log_keep_entries: some,
                command_timeout_ms: some,
                map_history: some,
            },
            osd_timings: OsdTimings {
                heartbeat_interval_ms: some,
                heartbeat_grace_ms: some,
                beacon_interval_ms: some,
                pg_stats_interval_ms: some,
                op_timeout_ms: some,
                min_down_reporters: some,
                report_timeout_ms: some,
                down_out_interval_ms: some,
                failure_check_interval_ms: some,
            },
            osd_settings: OsdSettings {
                backend: Some(String::new()),
                max_object_size: some,
                cache_bytes: some,
                capacity_bytes: some,
            },
            client_op_timeout_ms: some,
            failure_domain: "osd".to_owned(),
        }
    }
}

/// The name the launcher gives monitor `id`, as Ceph names them: 1 → `a`, 2 → `b`, ...,
/// 26 → `z`, 27 → `aa`.
pub fn mon_name(id: u64) -> String {
    let mut name = Vec::new();
    let mut rest = id;
    while rest > 0 {
        rest -= 1;
        name.push(b'a' + (rest % 26) as u8);
        rest /= 26;
    }
    name.reverse();
    String::from_utf8(name).unwrap_or_default()
}

/// One monitor as the config file lists it.
pub struct ConfMember<'a> {
    /// Raft id.
    pub id: u64,
    /// Its `mon.addr` file.
    pub addr_file: &'a Path,
    /// Its current address, when known.
    pub addr: Option<&'a str>,
    /// True for an initial member (listed in `[[mon.members]]`); monitors added later are
    /// only in `[client] mon_host`.
    pub initial: bool,
}

/// The text of `DIR/shoal.conf`.
pub fn conf_text(
    spec: &StoredSpec,
    members: &[ConfMember<'_>],
    previous: Option<&str>,
) -> Result<String, DeployError> {
    let mut root = conf_table(spec, members);
    if let Some(previous) = previous {
        let previous: toml::Table =
            toml::from_str(previous).map_err(|error| DeployError::InvalidSpec {
                field: "shoal.conf",
                reason: format!(
                    "cannot be read to keep its settings ({error}); fix it, or remove it to \
                     have it written afresh"
                ),
            })?;
        let launchers = conf_table(&StoredSpec::every_setting(), members);
        keep_settings(&mut root, previous, &launchers);
    }
    let body = toml::to_string(&root).map_err(|error| DeployError::InvalidSpec {
        field: "config",
        reason: error.to_string(),
    })?;
    Ok(format!(
        "# Written by the Shoal launcher (`shoal cluster up`): the monitors read [mon] and the\n\
         # OSDs [osd] when they start; clients and OSDs find the monitors through [client] and\n\
         # the members' address files. Rewritten on changes: the launcher's own keys are\n\
         # replaced, keys added by hand are kept (comments are not).\n{body}"
    ))
}

/// The tables the launcher writes for `spec`.
fn conf_table(spec: &StoredSpec, members: &[ConfMember<'_>]) -> toml::Table {
    let mut client = toml::Table::new();
    let hosts: Vec<toml::Value> = members
        .iter()
        .filter_map(|member| member.addr)
        .map(|addr| toml::Value::String(addr.to_owned()))
        .collect();
    client.insert("mon_host".to_owned(), toml::Value::Array(hosts));
    client.extend(integer_table(&[
        ("command_timeout_ms", spec.timings.command_timeout_ms),
        ("op_timeout_ms", spec.client_op_timeout_ms),
    ]));

    let mut mon = toml::Table::new();
    if let Some(backend) = &spec.backend {
        mon.insert("backend".to_owned(), toml::Value::String(backend.clone()));
    }
    let initial: Vec<toml::Value> = members
        .iter()
        .filter(|member| member.initial)
        .map(|member| {
            let mut entry = toml::Table::new();
            entry.insert(
                "id".to_owned(),
                toml::Value::Integer(i64::try_from(member.id).unwrap_or(i64::MAX)),
            );
            entry.insert("name".to_owned(), toml::Value::String(mon_name(member.id)));
            entry.insert(
                "addr_file".to_owned(),
                toml::Value::String(member.addr_file.display().to_string()),
            );
            toml::Value::Table(entry)
        })
        .collect();
    mon.insert("members".to_owned(), toml::Value::Array(initial));
    let raft = spec.timings.raft_table();
    if !raft.is_empty() {
        mon.insert("raft".to_owned(), toml::Value::Table(raft));
    }
    let failure = spec.osd_timings.failure_table();
    if !failure.is_empty() {
        mon.insert("failure".to_owned(), toml::Value::Table(failure));
    }
    if !spec.failure_domain.is_empty() {
        let mut pool_defaults = toml::Table::new();
        pool_defaults.insert(
            "failure_domain".to_owned(),
            toml::Value::String(spec.failure_domain.clone()),
        );
        mon.insert(
            "pool_defaults".to_owned(),
            toml::Value::Table(pool_defaults),
        );
    }

    let mut osd = integer_table(&spec.osd_timings.osd_fields());
    osd.extend(integer_table(&[
        ("max_object_size", spec.osd_settings.max_object_size),
        ("cache_bytes", spec.osd_settings.cache_bytes),
        ("capacity_bytes", spec.osd_settings.capacity_bytes),
    ]));
    if let Some(backend) = &spec.osd_settings.backend {
        osd.insert("backend".to_owned(), toml::Value::String(backend.clone()));
    }

    let mut root = toml::Table::new();
    root.insert("client".to_owned(), toml::Value::Table(client));
    root.insert("mon".to_owned(), toml::Value::Table(mon));
    root.insert("osd".to_owned(), toml::Value::Table(osd));
    root
}

/// Adds to `written` the settings of `previous` that are not the launcher's (tables merged
/// key by key), so a rewrite keeps what an operator added, say `[osd] memtable_bytes`. A key
/// the launcher may write (`launchers`: every key of a spec with every setting) takes its new
/// value, or goes when the new spec leaves it out (a cluster restarted without `--fast`
/// loses the short timings).
fn keep_settings(written: &mut toml::Table, previous: toml::Table, launchers: &toml::Table) {
    for (key, value) in previous {
        match (launchers.get(&key), value) {
            (None, value) => {
                written.insert(key, value);
            }
            (Some(toml::Value::Table(launchers)), toml::Value::Table(theirs)) => {
                if let toml::Value::Table(ours) = written
                    .entry(key)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                {
                    keep_settings(ours, theirs, launchers);
                }
            }
            (Some(_), _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_lists_initial_members_and_every_address() {
        let spec = StoredSpec {
            backend: Some("fjall".to_owned()),
            timings: MonTimings::fast(),
            osd_timings: OsdTimings::fast(),
            osd_settings: OsdSettings {
                max_object_size: Some(1 << 20),
                ..OsdSettings::default()
            },
            client_op_timeout_ms: Some(3_000),
            failure_domain: DEFAULT_FAILURE_DOMAIN.to_owned(),
        };
        let one = PathBuf::from("/c/mon.1/mon.addr");
        let four = PathBuf::from("/c/mon.4/mon.addr");
        let text = conf_text(
            &spec,
            &[
                ConfMember {
                    id: 1,
                    addr_file: &one,
                    addr: Some("127.0.0.1:5001"),
                    initial: true,
                },
                ConfMember {
                    id: 4,
                    addr_file: &four,
                    addr: Some("127.0.0.1:5004"),
                    initial: false,
                },
            ],
            None,
        )
        .unwrap();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        let hosts = parsed["client"]["mon_host"].as_array().unwrap();
        assert_eq!(hosts.len(), 2);
        let members = parsed["mon"]["members"].as_array().unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0]["addr_file"].as_str(), Some("/c/mon.1/mon.addr"));
        assert_eq!(members[0]["name"].as_str(), Some("a"));
        assert_eq!(parsed["mon"]["raft"]["tick_ms"].as_integer(), Some(50));
        assert_eq!(
            parsed["client"]["command_timeout_ms"].as_integer(),
            Some(5000)
        );
        assert_eq!(parsed["client"]["op_timeout_ms"].as_integer(), Some(3000));
        // Every OSD shares this host: the default rule must separate replicas by OSD.
        assert_eq!(
            parsed["mon"]["pool_defaults"]["failure_domain"].as_str(),
            Some("osd")
        );
        let failure = &parsed["mon"]["failure"];
        assert_eq!(failure["osd_heartbeat_grace_ms"].as_integer(), Some(2000));
        assert_eq!(failure["check_interval_ms"].as_integer(), Some(200));
        let osd = parsed["osd"].as_table().unwrap();
        assert_eq!(osd["heartbeat_interval_ms"].as_integer(), Some(500));
        assert_eq!(osd["heartbeat_grace_ms"].as_integer(), Some(2000));
        assert_eq!(osd["max_object_size"].as_integer(), Some(1 << 20));
        // Only the OSD's own keys: it refuses unknown ones.
        let known = [
            "listen",
            "backend",
            "heartbeat_interval_ms",
            "heartbeat_grace_ms",
            "beacon_interval_ms",
            "pg_stats_interval_ms",
            "op_timeout_ms",
            "max_object_size",
            "cache_bytes",
            "capacity_bytes",
        ];
        for key in osd.keys() {
            assert!(known.contains(&key.as_str()), "unknown [osd] key {key}");
        }
        // Default timings write no timing keys at all.
        let text = conf_text(&StoredSpec::default(), &[], None).unwrap();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert!(parsed["osd"].as_table().unwrap().is_empty());
        assert!(parsed["mon"].get("failure").is_none());
        assert!(parsed["mon"].get("pool_defaults").is_none());
    }

    #[test]
    fn a_rewrite_keeps_settings_added_by_hand_and_replaces_the_launchers_own() {
        let spec = StoredSpec {
            osd_settings: OsdSettings {
                max_object_size: Some(1 << 20),
                ..OsdSettings::default()
            },
            ..StoredSpec::default()
        };
        let addr_file = PathBuf::from("/c/mon.1/mon.addr");
        let members = [ConfMember {
            id: 1,
            addr_file: &addr_file,
            addr: Some("127.0.0.1:6001"),
            initial: true,
        }];
        let previous = "[client]\nmon_host = [\"127.0.0.1:1\"]\n\
                        [osd]\nmemtable_bytes = 4194304\nmax_object_size = 7\n\
                        [mon.raft]\nmax_message_bytes = 8388608\n[mon.pool_defaults]\nsize = 2\n[custom]\nnote = \"mine\"\n";
        let text = conf_text(&spec, &members, Some(previous)).unwrap();
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(parsed["osd"]["memtable_bytes"].as_integer(), Some(4 << 20));
        assert_eq!(parsed["osd"]["max_object_size"].as_integer(), Some(1 << 20));
        assert_eq!(
            parsed["mon"]["raft"]["max_message_bytes"].as_integer(),
            Some(8 << 20)
        );
        assert_eq!(parsed["mon"]["pool_defaults"]["size"].as_integer(), Some(2));
        assert_eq!(parsed["custom"]["note"].as_str(), Some("mine"));
        let hosts = parsed["client"]["mon_host"].as_array().unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].as_str(), Some("127.0.0.1:6001"));
        assert_eq!(parsed["mon"]["members"].as_array().unwrap().len(), 1);
        // Written again from its own output: nothing changes.
        assert_eq!(conf_text(&spec, &members, Some(&text)).unwrap(), text);
        // A cluster started with short timings, then restarted without them: the launcher's
        // timing keys go, the hand-added ones stay.
        let fast = StoredSpec {
            timings: MonTimings::fast(),
            osd_timings: OsdTimings::fast(),
            ..spec.clone()
        };
        let fast_text = conf_text(&fast, &members, Some(&text)).unwrap();
        let parsed: toml::Table = toml::from_str(&fast_text).unwrap();
        assert_eq!(parsed["osd"]["heartbeat_grace_ms"].as_integer(), Some(2000));
        assert_eq!(parsed["mon"]["raft"]["tick_ms"].as_integer(), Some(50));
        let slow_text = conf_text(&spec, &members, Some(&fast_text)).unwrap();
        let parsed: toml::Table = toml::from_str(&slow_text).unwrap();
        assert!(
            parsed["osd"].get("heartbeat_grace_ms").is_none(),
            "{slow_text}"
        );
        assert!(
            parsed["mon"]["raft"].get("tick_ms").is_none(),
            "{slow_text}"
        );
        assert_eq!(
            parsed["mon"]["raft"]["max_message_bytes"].as_integer(),
            Some(8 << 20)
        );
        assert_eq!(parsed["osd"]["memtable_bytes"].as_integer(), Some(4 << 20));
        // A file that is not TOML is not silently replaced.
        let error = conf_text(&spec, &members, Some("[osd\nmemtable_bytes = 1")).unwrap_err();
        assert!(error.to_string().contains("shoal.conf"), "{error}");
    }

    #[test]
    fn monitors_are_named_like_cephs() {
        let names: Vec<String> = [1, 2, 26, 27, 52, 53].into_iter().map(mon_name).collect();
        assert_eq!(names, ["a", "b", "z", "aa", "az", "ba"]);
    }

    #[test]
    fn bad_specs_name_the_field() {
        let mut spec = ClusterSpec::for_tests(0);
        assert!(spec.validate().unwrap_err().to_string().contains("mons"));
        spec.mons = 3;
        spec.osds = 2;
        spec.validate().unwrap();
        spec.osd_timings.heartbeat_grace_ms = Some(400);
        let error = spec.validate().unwrap_err().to_string();
        assert!(error.contains("heartbeat_grace_ms"), "{error}");
        spec.osd_timings = OsdTimings::fast();
        spec.osd_settings.backend = Some("tape".to_owned());
        let error = spec.validate().unwrap_err().to_string();
        assert!(error.contains("osd_settings.backend"), "{error}");
        spec.osd_settings.backend = None;
        spec.timings.election_ticks = Some(2);
        let error = spec.validate().unwrap_err().to_string();
        assert!(error.contains("election_ticks"), "{error}");
        spec.timings = MonTimings::default();
        spec.backend = Some("rocks".to_owned());
        assert!(spec.validate().unwrap_err().to_string().contains("rocks"));
    }
}
