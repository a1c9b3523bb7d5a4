//! What the launcher starts ([`ClusterSpec`], [`MonTimings`]) and the config file it writes
//! for the monitors and the clients (`DIR/shoal.conf`).
//!
//! The file has two tables. `[mon]` is the monitors' (see `monitor::config`): the initial
//! members, each found through its `mon.addr` file (every monitor listens on port 0), the
//! backend and the Raft timings. `[client]` is the clients' (see `librados::config`): the
//! monitors' addresses as they were when the file was last written, and the command
//! timeout. Monitors read it only when they start, so it can be rewritten while they run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::DeployError;

/// The config file's name inside the cluster directory.
pub const CONF_FILE: &str = "shoal.conf";

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
        let mut table = toml::Table::new();
        let fields = [
            ("tick_ms", self.tick_ms),
            ("election_ticks", self.election_ticks),
            ("heartbeat_ticks", self.heartbeat_ticks),
            ("snapshot_interval", self.snapshot_interval),
            ("log_keep_entries", self.log_keep_entries),
            ("command_timeout_ms", self.command_timeout_ms),
            ("map_history", self.map_history),
        ];
        for (name, value) in fields {
            if let Some(value) = value {
                table.insert(
                    name.to_owned(),
                    toml::Value::Integer(i64::try_from(value).unwrap_or(i64::MAX)),
                );
            }
        }
        table
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

/// What [`crate::Cluster::up`] starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Monitors (1, 3 or 5 make sense; any number from 1 works).
    pub mons: u32,
    /// OSDs; must be 0 until `shoal-osd` exists.
    pub osds: u32,
    /// Where the binaries are; `None` searches (see [`crate::Binaries::locate`]).
    pub bin_dir: Option<PathBuf>,
    /// Monitor storage backend (`fjall`, `sled`, `memory`); `None` keeps the default.
    pub backend: Option<String>,
    /// Raft timings.
    pub timings: MonTimings,
    /// How long to wait for the monitors to elect a leader and serve the map.
    pub ready_timeout: Duration,
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
            ready_timeout: Duration::from_secs(60),
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
            die_with_launcher: true,
            ..ClusterSpec::default()
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
        if self.osds > 0 {
            return Err(DeployError::OsdsUnsupported {
                requested: self.osds,
            });
        }
        if let Some(backend) = &self.backend {
            if !["fjall", "sled", "memory"].contains(&backend.as_str()) {
                return Err(DeployError::InvalidSpec {
                    field: "backend",
                    reason: format!("`{backend}` is not one of fjall, sled, memory"),
                });
            }
        }
        if self.ready_timeout.is_zero() {
            return Err(DeployError::InvalidSpec {
                field: "ready_timeout",
                reason: "must be > 0".to_owned(),
            });
        }
        self.timings.validate()
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
pub fn conf_text(spec: &StoredSpec, members: &[ConfMember<'_>]) -> Result<String, DeployError> {
    let mut client = toml::Table::new();
    let hosts: Vec<toml::Value> = members
        .iter()
        .filter_map(|member| member.addr)
        .map(|addr| toml::Value::String(addr.to_owned()))
        .collect();
    client.insert("mon_host".to_owned(), toml::Value::Array(hosts));
    if let Some(timeout) = spec.timings.command_timeout_ms {
        client.insert(
            "command_timeout_ms".to_owned(),
            toml::Value::Integer(i64::try_from(timeout).unwrap_or(i64::MAX)),
        );
    }

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

    let mut root = toml::Table::new();
    root.insert("client".to_owned(), toml::Value::Table(client));
    root.insert("mon".to_owned(), toml::Value::Table(mon));
    let body = toml::to_string(&root).map_err(|error| DeployError::InvalidSpec {
        field: "config",
        reason: error.to_string(),
    })?;
    Ok(format!(
        "# Written by the Shoal launcher (`shoal cluster up`): the monitors read [mon] when they\n\
         # start, clients read [client] and the members' address files. Rewritten on changes.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_lists_initial_members_and_every_address() {
        let spec = StoredSpec {
            backend: Some("fjall".to_owned()),
            timings: MonTimings::fast(),
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
        let error = spec.validate().unwrap_err().to_string();
        assert!(
            error.contains("shoal-osd") && error.contains('2'),
            "{error}"
        );
        spec.osds = 0;
        spec.timings.election_ticks = Some(2);
        let error = spec.validate().unwrap_err().to_string();
        assert!(error.contains("election_ticks"), "{error}");
        spec.timings = MonTimings::default();
        spec.backend = Some("rocks".to_owned());
        assert!(spec.validate().unwrap_err().to_string().contains("rocks"));
    }
}
