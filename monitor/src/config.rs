//! The monitor's configuration: one TOML file, overridden by environment variables,
//! overridden by command-line flags (DESIGN.md §9). [`MonConfig::validate`] names the bad
//! field.
//!
//! # File format
//!
//! The monitor reads the `[mon]` table of the cluster's shared config file and ignores every
//! other table (the OSDs and the CLI read theirs from the same file). Per-monitor values (`id`,
//! `data_dir`, `listen`) usually come from flags, so one file serves every monitor:
//!
//! ```toml
//! [mon]
//! id = 1                        # this monitor's Raft id (> 0); flag --id
//! data_dir = "/var/lib/shoal/mon.1"   # flag --data
//! listen = "127.0.0.1:7100"     # gRPC address; port 0 picks a free one and writes the
//!                               # bound address to DATA/mon.addr. Default: this monitor's
//!                               # `members` address, else 127.0.0.1:(7099 + id)
//! backend = "fjall"             # kv engine: fjall | sled | memory
//! join = false                  # true: a monitor added at run time (`shoal mon add`); it
//!                               # waits for the leader instead of bootstrapping
//! fsid = "..."                  # optional cluster id (uuid) for a new cluster
//!
//! # The initial monitors. Every initial member must list the same ids. `addr_file` instead
//! # of `addr` reads the address from a file (another monitor's DATA/mon.addr), re-read until
//! # it exists: that is how monitors on port 0 find each other.
//! [[mon.members]]
//! id = 1
//! addr = "127.0.0.1:7100"
//! [[mon.members]]
//! id = 2
//! addr_file = "/var/lib/shoal/mon.2/mon.addr"
//!
//! [mon.raft]
//! tick_ms = 100                 # Raft clock; election after election_ticks..2x ticks
//! election_ticks = 10
//! heartbeat_ticks = 1
//! snapshot_interval = 1000      # snapshot the map and compact every N applied entries
//! log_keep_entries = 200        # entries kept behind a snapshot for slow followers
//! command_timeout_ms = 10000    # a command not committed by then fails with NO_QUORUM
//! map_history = 500             # incrementals kept for WatchMap catch-up
//! max_message_bytes = 268435456 # largest gRPC message (snapshots travel whole)
//!
//! [mon.failure]                 # DESIGN.md §4; defaults are Ceph's
//! osd_heartbeat_grace_ms = 20000
//! min_down_reporters = 2
//! osd_report_timeout_ms = 900000
//! down_out_interval_ms = 600000
//! check_interval_ms = 1000      # how often the leader runs the policy
//! nearfull_ratio = 0.85         # the used share of an OSD's storage (from its beacons)
//! full_ratio = 0.95             # that marks it nearfull / full; (0, 1], nearfull <= full
//!
//! [mon.pool_defaults]
//! pg_num = 32
//! size = 3
//! failure_domain = "host"       # CRUSH type the default rule (`replicated_rule`, made when
//!                               # the cluster is created) puts replicas apart across:
//!                               # `chooseleaf firstn 0 type <failure_domain>`; "osd" for
//!                               # clusters whose OSDs all share one host
//! ```
//!
//! # Environment
//!
//! `SHOAL_MON_ID`, `SHOAL_MON_DATA_DIR`, `SHOAL_MON_LISTEN`, `SHOAL_MON_BACKEND`,
//! `SHOAL_MON_JOIN`, `SHOAL_MON_FSID`, `SHOAL_MON_MEMBERS` (`1=host:port,2=host:port`),
//! `SHOAL_MON_TICK_MS`, `SHOAL_MON_COMMAND_TIMEOUT_MS`, `SHOAL_MON_SNAPSHOT_INTERVAL`.
//! `SHOAL_CONF` names the file when `-c` is not given.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A configuration value that is missing or wrong; names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has fields of the wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A field (from any source) has a bad value.
    #[error("invalid config value for `{field}`: {reason}")]
    Invalid {
        /// The field, as written in the file (`mon.raft.tick_ms`) or the variable's name.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// One initial monitor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Raft id (> 0).
    pub id: u64,
    /// Display name; default `"<id>"`.
    #[serde(default)]
    pub name: Option<String>,
    /// Its gRPC address (`host:port`).
    #[serde(default)]
    pub addr: Option<String>,
    /// A file holding its address (its `DATA/mon.addr`), read until it exists.
    #[serde(default)]
    pub addr_file: Option<PathBuf>,
}

impl MemberConfig {
    /// The member's display name.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.id.to_string())
    }
}

/// Raft timing and log management.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// Milliseconds per Raft tick.
    pub tick_ms: u64,
    /// Ticks without a leader before an election (randomized up to twice that).
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Applied entries between two snapshots (log compactions).
    pub snapshot_interval: u64,
    /// Entries kept before a snapshot's index, for followers slightly behind.
    pub log_keep_entries: u64,
    /// Milliseconds a command may take to commit before failing with NO_QUORUM.
    pub command_timeout_ms: u64,
    /// Map incrementals kept for `WatchMap` catch-up.
    pub map_history: u64,
    /// Largest gRPC message accepted or sent, in bytes.
    pub max_message_bytes: usize,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 1,
            snapshot_interval: 1000,
            log_keep_entries: 200,
            command_timeout_ms: 10_000,
            map_history: 500,
            max_message_bytes: 256 << 20,
        }
    }
}

/// The failure policy's timings (DESIGN.md §4) and the fullness thresholds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureConfig {
    /// A failure report counts once the target has been silent this long.
    pub osd_heartbeat_grace_ms: u64,
    /// Distinct reporting hosts needed to mark an OSD down (1 in a single-host cluster).
    pub min_down_reporters: usize,
    /// An up OSD without a beacon for this long is marked down.
    pub osd_report_timeout_ms: u64,
    /// A down OSD is marked out after this long, unless `noout` is set.
    pub down_out_interval_ms: u64,
    /// How often the leader evaluates the policy.
    pub check_interval_ms: u64,
    /// An OSD whose used share of its storage reaches this is marked full (Ceph's
    /// `mon_osd_full_ratio`).
    pub full_ratio: f64,
    /// An OSD whose used share of its storage reaches this (and not `full_ratio`) is marked
    /// nearfull (Ceph's `mon_osd_nearfull_ratio`).
    pub nearfull_ratio: f64,
}

impl Default for FailureConfig {
    fn default() -> Self {
        FailureConfig {
            osd_heartbeat_grace_ms: 20_000,
            min_down_reporters: 2,
            osd_report_timeout_ms: 900_000,
            down_out_interval_ms: 600_000,
            check_interval_ms: 1_000,
            full_ratio: 0.95,
            nearfull_ratio: 0.85,
        }
    }
}

/// Defaults for `pool create`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolDefaults {
    /// Placement groups of a new pool.
    pub pg_num: u32,
    /// Replicas of a new pool.
    pub size: u32,
    /// The CRUSH type whose buckets hold at most one replica under the default rule that
    /// the first leader creates with the cluster (Ceph's `osd_crush_chooseleaf_type`).
    /// Read only then: changing it later does not edit the existing rule.
    pub failure_domain: String,
}

impl Default for PoolDefaults {
    fn default() -> Self {
        PoolDefaults {
            pg_num: 32,
            size: 3,
            failure_domain: "host".to_owned(),
        }
    }
}

/// Everything a monitor is configured with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonConfig {
    /// This monitor's Raft id.
    pub id: u64,
    /// This monitor's display name; default its member entry's name, else `"<id>"`.
    pub name: Option<String>,
    /// Data directory (Raft log, snapshots, `mon.addr`).
    pub data_dir: PathBuf,
    /// gRPC listen address; see the module doc for the default.
    pub listen: Option<String>,
    /// Storage backend name (`fjall`, `sled`, `memory`).
    pub backend: String,
    /// A monitor added at run time: do not bootstrap, wait for the leader.
    pub join: bool,
    /// Cluster id for a new cluster (a uuid); random when absent.
    pub fsid: Option<String>,
    /// The initial monitors.
    pub members: Vec<MemberConfig>,
    /// Raft timings and log management.
    pub raft: RaftConfig,
    /// Failure policy timings.
    pub failure: FailureConfig,
    /// Pool creation defaults.
    pub pool_defaults: PoolDefaults,
}

impl Default for MonConfig {
    fn default() -> Self {
        MonConfig {
            id: 0,
            name: None,
            data_dir: PathBuf::new(),
            listen: None,
            backend: kv::Backend::default().name().to_owned(),
            join: false,
            fsid: None,
            members: Vec::new(),
            raft: RaftConfig::default(),
            failure: FailureConfig::default(),
            pool_defaults: PoolDefaults::default(),
        }
    }
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    mon: Option<MonConfig>,
}

impl MonConfig {
    /// Reads the `[mon]` table of a config file (an absent table gives the defaults).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses the `[mon]` table of a config text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: PathBuf::new(),
            message: error.to_string(),
        })?;
        Ok(file.mon.unwrap_or_default())
    }

    /// Applies `SHOAL_MON_*` variables from `lookup` (normally `std::env::var`).
    pub fn apply_env(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        fn number<T: std::str::FromStr>(var: &str, value: &str) -> Result<T, ConfigError> {
            value
                .trim()
                .parse()
                .map_err(|_| invalid(var, format!("`{value}` is not a number")))
        }
        if let Some(value) = lookup("SHOAL_MON_ID") {
            self.id = number("SHOAL_MON_ID", &value)?;
        }
        if let Some(value) = lookup("SHOAL_MON_DATA_DIR") {
            self.data_dir = PathBuf::from(value);
        }
        if let Some(value) = lookup("SHOAL_MON_LISTEN") {
            self.listen = Some(value);
        }
        if let Some(value) = lookup("SHOAL_MON_BACKEND") {
            self.backend = value;
        }
        if let Some(value) = lookup("SHOAL_MON_JOIN") {
            self.join = match value.trim() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" | "" => false,
                other => {
                    return Err(invalid(
                        "SHOAL_MON_JOIN",
                        format!("`{other}` is not a boolean"),
                    ))
                }
            };
        }
        if let Some(value) = lookup("SHOAL_MON_FSID") {
            self.fsid = Some(value);
        }
        if let Some(value) = lookup("SHOAL_MON_MEMBERS") {
            self.members =
                parse_members(&value).map_err(|reason| invalid("SHOAL_MON_MEMBERS", reason))?;
        }
        if let Some(value) = lookup("SHOAL_MON_TICK_MS") {
            self.raft.tick_ms = number("SHOAL_MON_TICK_MS", &value)?;
        }
        if let Some(value) = lookup("SHOAL_MON_COMMAND_TIMEOUT_MS") {
            self.raft.command_timeout_ms = number("SHOAL_MON_COMMAND_TIMEOUT_MS", &value)?;
        }
        if let Some(value) = lookup("SHOAL_MON_SNAPSHOT_INTERVAL") {
            self.raft.snapshot_interval = number("SHOAL_MON_SNAPSHOT_INTERVAL", &value)?;
        }
        Ok(())
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(invalid(
                "mon.id",
                "must be > 0 (set it in the file, SHOAL_MON_ID or --id)",
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid(
                "mon.data_dir",
                "is required (file, SHOAL_MON_DATA_DIR or --data)",
            ));
        }
        self.backend()?;
        if let Some(listen) = &self.listen {
            listen.parse::<std::net::SocketAddr>().map_err(|_| {
                invalid(
                    "mon.listen",
                    format!("`{listen}` is not an ip:port address"),
                )
            })?;
        }
        if let Some(fsid) = &self.fsid {
            fsid.parse::<clustermap::Uuid>()
                .map_err(|error| invalid("mon.fsid", error.to_string()))?;
        }
        let mut ids = BTreeSet::new();
        for member in &self.members {
            if member.id == 0 {
                return Err(invalid("mon.members.id", "must be > 0"));
            }
            if !ids.insert(member.id) {
                return Err(invalid(
                    "mon.members.id",
                    format!("{} is listed twice", member.id),
                ));
            }
            match (&member.addr, &member.addr_file) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "mon.members.addr",
                        format!("member {} has both addr and addr_file", member.id),
                    ))
                }
                (None, None) => {
                    return Err(invalid(
                        "mon.members.addr",
                        format!("member {} needs addr or addr_file", member.id),
                    ))
                }
                _ => {}
            }
        }
        if !self.join && !self.members.is_empty() && !ids.contains(&self.id) {
            return Err(invalid(
                "mon.members",
                format!("this monitor ({}) is not an initial member; set join = true to add it at run time", self.id),
            ));
        }
        let raft = &self.raft;
        if raft.tick_ms == 0 {
            return Err(invalid("mon.raft.tick_ms", "must be > 0"));
        }
        if raft.heartbeat_ticks == 0 {
            return Err(invalid("mon.raft.heartbeat_ticks", "must be > 0"));
        }
        if raft.election_ticks <= raft.heartbeat_ticks {
            return Err(invalid(
                "mon.raft.election_ticks",
                "must be greater than heartbeat_ticks",
            ));
        }
        if raft.snapshot_interval == 0 {
            return Err(invalid("mon.raft.snapshot_interval", "must be > 0"));
        }
        if raft.command_timeout_ms == 0 {
            return Err(invalid("mon.raft.command_timeout_ms", "must be > 0"));
        }
        if raft.map_history == 0 {
            return Err(invalid("mon.raft.map_history", "must be > 0"));
        }
        if raft.max_message_bytes < (1 << 20) {
            return Err(invalid(
                "mon.raft.max_message_bytes",
                "must be at least 1 MiB",
            ));
        }
        let failure = &self.failure;
        if failure.min_down_reporters == 0 {
            return Err(invalid("mon.failure.min_down_reporters", "must be > 0"));
        }
        if failure.check_interval_ms == 0 {
            return Err(invalid("mon.failure.check_interval_ms", "must be > 0"));
        }
        for (field, ratio) in [
            ("mon.failure.nearfull_ratio", failure.nearfull_ratio),
            ("mon.failure.full_ratio", failure.full_ratio),
        ] {
            // Written so that NaN fails too.
            if !(ratio > 0.0 && ratio <= 1.0) {
                return Err(invalid(
                    field,
                    format!("{ratio} is not in (0, 1] (a share of the OSD's storage)"),
                ));
            }
        }
        if failure.nearfull_ratio > failure.full_ratio {
            return Err(invalid(
                "mon.failure.nearfull_ratio",
                format!(
                    "{} is above full_ratio {}",
                    failure.nearfull_ratio, failure.full_ratio
                ),
            ));
        }
        if self.pool_defaults.pg_num == 0 {
            return Err(invalid("mon.pool_defaults.pg_num", "must be > 0"));
        }
        if self.pool_defaults.size == 0 {
            return Err(invalid("mon.pool_defaults.size", "must be > 0"));
        }
        let domain = &self.pool_defaults.failure_domain;
        if crush::CrushMap::new_default().type_id(domain).is_none() {
            return Err(invalid(
                "mon.pool_defaults.failure_domain",
                format!("`{domain}` is not a CRUSH type (osd, host, chassis, rack, ..., root)"),
            ));
        }
        Ok(())
    }

    /// The storage backend.
    pub fn backend(&self) -> Result<kv::Backend, ConfigError> {
        self.backend
            .parse()
            .map_err(|error: kv::Error| invalid("mon.backend", error.to_string()))
    }

    /// This monitor's display name.
    pub fn display_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        self.members
            .iter()
            .find(|member| member.id == self.id)
            .map(MemberConfig::display_name)
            .unwrap_or_else(|| self.id.to_string())
    }

    /// The address to listen on: `listen`, else this monitor's member address, else the
    /// default port 7099 + id on the loopback.
    pub fn listen_addr(&self) -> String {
        if let Some(listen) = &self.listen {
            return listen.clone();
        }
        if let Some(addr) = self
            .members
            .iter()
            .find(|member| member.id == self.id)
            .and_then(|member| member.addr.clone())
        {
            return addr;
        }
        let port = 7099u64.saturating_add(self.id).min(u64::from(u16::MAX));
        format!("127.0.0.1:{port}")
    }

    /// The Raft tick.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.raft.tick_ms)
    }

    /// The default command timeout.
    pub fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.raft.command_timeout_ms)
    }

    /// Settings suited to tests: fast ticks, short timeouts, small snapshot intervals, the
    /// memory backend is *not* chosen (callers pick).
    pub fn for_tests(id: u64, data_dir: PathBuf) -> Self {
        MonConfig {
            id,
            data_dir,
            listen: Some("127.0.0.1:0".to_owned()),
            raft: RaftConfig {
                tick_ms: 20,
                election_ticks: 10,
                heartbeat_ticks: 2,
                snapshot_interval: 50,
                log_keep_entries: 10,
                command_timeout_ms: 3_000,
                map_history: 100,
                ..RaftConfig::default()
            },
            failure: FailureConfig {
                osd_heartbeat_grace_ms: 500,
                min_down_reporters: 2,
                osd_report_timeout_ms: 2_000,
                down_out_interval_ms: 1_000,
                check_interval_ms: 50,
                ..FailureConfig::default()
            },
            ..MonConfig::default()
        }
    }
}

/// Parses `1=host:port,2=host:port` into members.
pub fn parse_members(text: &str) -> Result<Vec<MemberConfig>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (id, addr) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not ID=ADDR"))?;
            let id = id
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("`{id}` in `{part}` is not a monitor id"))?;
            Ok(MemberConfig {
                id,
                name: None,
                addr: Some(addr.trim().to_owned()),
                addr_file: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_env_and_validation() {
        let mut config = MonConfig::from_toml(
            r#"
            [osd]
            whatever = 1
            [mon]
            id = 2
            data_dir = "/tmp/mon.2"
            [[mon.members]]
            id = 1
            addr = "127.0.0.1:7100"
            [[mon.members]]
            id = 2
            addr = "127.0.0.1:7101"
            [mon.raft]
            tick_ms = 50
            "#,
        )
        .unwrap();
        assert_eq!(config.raft.tick_ms, 50);
        assert_eq!(config.raft.election_ticks, 10);
        assert_eq!(config.listen_addr(), "127.0.0.1:7101");
        config.validate().unwrap();
        config
            .apply_env(|name| (name == "SHOAL_MON_TICK_MS").then(|| "7".to_owned()))
            .unwrap();
        assert_eq!(config.raft.tick_ms, 7);
        let error = config
            .apply_env(|name| (name == "SHOAL_MON_ID").then(|| "two".to_owned()))
            .unwrap_err();
        assert!(error.to_string().contains("SHOAL_MON_ID"), "{error}");
        config.raft.election_ticks = 1;
        let error = config.validate().unwrap_err();
        assert!(
            error.to_string().contains("mon.raft.election_ticks"),
            "{error}"
        );
    }

    #[test]
    fn unknown_fields_and_bad_members_are_named() {
        let error = MonConfig::from_toml("[mon]\ntick = 5\n").unwrap_err();
        assert!(error.to_string().contains("tick"), "{error}");
        let mut config = MonConfig::for_tests(3, PathBuf::from("/tmp/x"));
        config.members = parse_members("1=127.0.0.1:1,2=127.0.0.1:2").unwrap();
        let error = config.validate().unwrap_err();
        assert!(error.to_string().contains("join"), "{error}");
        config.join = true;
        config.validate().unwrap();
        assert!(parse_members("1:127.0.0.1").is_err());
    }

    #[test]
    fn fullness_ratios_default_to_cephs_and_are_checked() {
        let config = MonConfig::from_toml("[mon]\nid = 1\ndata_dir = \"/tmp/m\"\n").unwrap();
        assert_eq!(config.failure.full_ratio, 0.95);
        assert_eq!(config.failure.nearfull_ratio, 0.85);
        config.validate().unwrap();

        let text = |nearfull: &str, full: &str| {
            format!(
                "[mon]\nid = 1\ndata_dir = \"/tmp/m\"\n[mon.failure]\n\
                 nearfull_ratio = {nearfull}\nfull_ratio = {full}\n"
            )
        };
        let config = MonConfig::from_toml(&text("0.7", "0.9")).unwrap();
        assert_eq!(config.failure.nearfull_ratio, 0.7);
        assert_eq!(config.failure.full_ratio, 0.9);
        config.validate().unwrap();
        MonConfig::from_toml(&text("1.0", "1.0"))
            .unwrap()
            .validate()
            .unwrap();

        for (nearfull, full, field) in [
            ("0.0", "0.9", "mon.failure.nearfull_ratio"),
            ("0.5", "1.5", "mon.failure.full_ratio"),
            ("-0.1", "0.9", "mon.failure.nearfull_ratio"),
            ("0.8", "nan", "mon.failure.full_ratio"),
            ("0.96", "0.95", "mon.failure.nearfull_ratio"),
        ] {
            let error = MonConfig::from_toml(&text(nearfull, full))
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(error.contains(field), "{nearfull}/{full}: {error}");
        }
    }

    #[test]
    fn the_failure_domain_defaults_to_host_and_must_be_a_crush_type() {
        let text = |domain: &str| {
            format!("[mon]\nid = 1\ndata_dir = \"/tmp/m\"\n[mon.pool_defaults]\nfailure_domain = \"{domain}\"\n")
        };
        assert_eq!(
            MonConfig::from_toml("[mon]\nid = 1\n")
                .unwrap()
                .pool_defaults
                .failure_domain,
            "host"
        );
        let config = MonConfig::from_toml(&text("osd")).unwrap();
        assert_eq!(config.pool_defaults.failure_domain, "osd");
        config.validate().unwrap();
        let error = MonConfig::from_toml(&text("shelf"))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("mon.pool_defaults.failure_domain") && error.contains("shelf"),
            "{error}"
        );
    }
}
