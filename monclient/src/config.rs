//! The client's configuration: which monitors to talk to and how long to wait, read from the
//! cluster's shared TOML file (DESIGN.md §9), overridden by environment variables.
//!
//! The client reads its own `[client]` table and, so that one file serves daemons and
//! clients alike, the monitors' `[[mon.members]]` entries; every other table is ignored:
//!
//! ```toml
//! [client]
//! mon_host = ["127.0.0.1:7100", "127.0.0.1:7101"]   # or "127.0.0.1:7100,127.0.0.1:7101"
//! call_timeout_ms = 5000       # one map or status call to one monitor
//! command_timeout_ms = 10000   # a command, failovers included; then NO_QUORUM
//! connect_timeout_ms = 1000    # opening a connection to one monitor
//! op_timeout_ms = 30000        # one object op, resends included; then a Timeout error
//!
//! [[mon.members]]              # the monitors' own table: `addr`, or `addr_file` (the
//! id = 1                       # monitor's DATA/mon.addr, read when the config is loaded;
//! addr_file = "mon.1/mon.addr" # a relative path is relative to the config file)
//! ```
//!
//! Environment: `SHOAL_CONF` names the file when none is given; `SHOAL_MON_HOST`
//! (comma-separated addresses) replaces the addresses of the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The environment variable naming the config file when none is given.
pub const CONF_ENV: &str = "SHOAL_CONF";
/// The environment variable that replaces the monitors' addresses.
pub const MON_HOST_ENV: &str = "SHOAL_MON_HOST";

/// A configuration that cannot be used; names the file or the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No file was given and `SHOAL_CONF` is not set.
    #[error("no cluster config: pass -c FILE or set {CONF_ENV}")]
    NoConfigFile,
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a field has the wrong type.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A field has a bad value.
    #[error("invalid config value for `{field}`: {reason}")]
    Invalid {
        /// The field (`client.mon_host`) or the variable's name.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither `[client] mon_host` nor `[[mon.members]]` gave a monitor address.
    #[error("no monitor address in {source_name}: set [client] mon_host{hint}")]
    NoMonitors {
        /// Where the addresses were looked for.
        source_name: String,
        /// What else was found (address files that do not exist yet).
        hint: String,
    },
}

/// How the client finds and waits for the monitors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Monitor addresses (`host:port`), tried in order; more are learnt from the map.
    pub mon_hosts: Vec<String>,
    /// The longest one map or status call to one monitor may take.
    pub call_timeout: Duration,
    /// The longest a command may take, failovers included, before it fails with no quorum.
    pub command_timeout: Duration,
    /// The longest opening a connection to one monitor may take.
    pub connect_timeout: Duration,
    /// The longest one object operation may take, map refreshes and resends included,
    /// before it fails with a timeout (`[client] op_timeout_ms`).
    pub op_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            mon_hosts: Vec::new(),
            call_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
            op_timeout: Duration::from_secs(30),
        }
    }
}

/// `mon_host` as a list or as one comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum HostList {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
struct ClientSection {
    mon_host: Option<HostList>,
    call_timeout_ms: Option<u64>,
    command_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    op_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct MemberSection {
    addr: Option<String>,
    addr_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
struct MonSection {
    #[serde(default)]
    members: Vec<MemberSection>,
}

#[derive(Deserialize, Default)]
struct FileSections {
    #[serde(default)]
    client: ClientSection,
    #[serde(default)]
    mon: MonSection,
}

fn split_hosts(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .collect()
}

fn check_host(field: &str, host: &str) -> Result<(), ConfigError> {
    let valid = host
        .rsplit_once(':')
        .is_some_and(|(name, port)| !name.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: field.to_owned(),
            reason: format!("`{host}` is not a host:port address"),
        })
    }
}

fn timeout(field: &str, value: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(ConfigError::Invalid {
            field: field.to_owned(),
            reason: "must be > 0".to_owned(),
        }),
        Some(ms) => Ok(Duration::from_millis(ms)),
    }
}

impl ClientConfig {
    /// A configuration naming these monitors, with default timeouts.
    pub fn with_mon_hosts(hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        ClientConfig {
            mon_hosts: hosts.into_iter().map(Into::into).collect(),
            ..ClientConfig::default()
        }
    }

    /// Loads `path`, else the file named by `SHOAL_CONF`, then applies `SHOAL_MON_HOST`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(path, |name| std::env::var(name).ok())
    }

    /// [`ClientConfig::load`] with the environment given by `lookup`.
    pub fn load_with_env(
        path: Option<&Path>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env_hosts = lookup(MON_HOST_ENV).map(|text| split_hosts(&text));
        let path = path
            .map(Path::to_path_buf)
            .or_else(|| lookup(CONF_ENV).map(PathBuf::from));
        let mut config = match (&path, &env_hosts) {
            (Some(path), _) => Self::from_file(path, env_hosts.is_some())?,
            (None, Some(_)) => ClientConfig::default(),
            (None, None) => return Err(ConfigError::NoConfigFile),
        };
        if let Some(hosts) = env_hosts {
            for host in &hosts {
                check_host(MON_HOST_ENV, host)?;
            }
            if hosts.is_empty() {
                return Err(ConfigError::Invalid {
                    field: MON_HOST_ENV.to_owned(),
                    reason: "names no address".to_owned(),
                });
            }
            config.mon_hosts = hosts;
        }
        Ok(config)
    }

    /// Reads a config file. With `hosts_optional`, a file without monitor addresses is
    /// accepted (the caller has them from elsewhere).
    fn from_file(path: &Path, hosts_optional: bool) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let config = Self::parse_sections(&text, base).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })?;
        if config.mon_hosts.is_empty() && !hosts_optional {
            return Err(Self::no_monitors(&text, base, &path.display().to_string()));
        }
        Ok(config)
    }

    /// Parses a config text; relative `addr_file` paths are taken relative to `base`.
    /// `source_name` names the text in errors.
    pub fn parse(text: &str, base: &Path, source_name: &str) -> Result<Self, ConfigError> {
        let config = Self::parse_sections(text, base)?;
        if config.mon_hosts.is_empty() {
            return Err(Self::no_monitors(text, base, source_name));
        }
        Ok(config)
    }

    fn no_monitors(text: &str, base: &Path, source_name: &str) -> ConfigError {
        let missing = Self::missing_addr_files(text, base);
        let hint = if missing.is_empty() {
            " or [[mon.members]] addr".to_owned()
        } else {
            format!(
                " (address files not written yet: {}; is the cluster running?)",
                missing.join(", ")
            )
        };
        ConfigError::NoMonitors {
            source_name: source_name.to_owned(),
            hint,
        }
    }

    fn sections(text: &str) -> Result<FileSections, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: PathBuf::new(),
            message: error.to_string(),
        })
    }

    fn missing_addr_files(text: &str, base: &Path) -> Vec<String> {
        let Ok(sections) = Self::sections(text) else {
            return Vec::new();
        };
        sections
            .mon
            .members
            .iter()
            .filter(|member| member.addr.is_none())
            .filter_map(|member| member.addr_file.as_ref())
            .map(|file| base.join(file))
            .filter(|file| !file.exists())
            .map(|file| file.display().to_string())
            .collect()
    }

    fn parse_sections(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let sections = Self::sections(text)?;
        let defaults = ClientConfig::default();
        let client = sections.client;
        let mut hosts = match client.mon_host {
            None => Vec::new(),
            Some(HostList::One(text)) => split_hosts(&text),
            Some(HostList::Many(list)) => list.iter().flat_map(|host| split_hosts(host)).collect(),
        };
        for host in &hosts {
            check_host("client.mon_host", host)?;
        }
        for member in &sections.mon.members {
            let addr = match (&member.addr, &member.addr_file) {
                (Some(addr), _) => Some(addr.trim().to_owned()),
                (None, Some(file)) => std::fs::read_to_string(base.join(file))
                    .ok()
                    .map(|text| text.trim().to_owned())
                    .filter(|addr| !addr.is_empty()),
                (None, None) => None,
            };
            if let Some(addr) = addr {
                check_host("mon.members.addr", &addr)?;
                if !hosts.contains(&addr) {
                    hosts.push(addr);
                }
            }
        }
        Ok(ClientConfig {
            mon_hosts: hosts,
            call_timeout: timeout(
                "client.call_timeout_ms",
                client.call_timeout_ms,
                defaults.call_timeout,
            )?,
            command_timeout: timeout(
                "client.command_timeout_ms",
                client.command_timeout_ms,
                defaults.command_timeout,
            )?,
            connect_timeout: timeout(
                "client.connect_timeout_ms",
                client.connect_timeout_ms,
                defaults.connect_timeout,
            )?,
            op_timeout: timeout(
                "client.op_timeout_ms",
                client.op_timeout_ms,
                defaults.op_timeout,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_table_and_members_are_merged() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mon.2")).unwrap();
        std::fs::write(dir.path().join("mon.2/mon.addr"), "127.0.0.1:7102\n").unwrap();
        let text = r#"
            [client]
            mon_host = "127.0.0.1:7100, 127.0.0.1:7101"
            command_timeout_ms = 2500
            op_timeout_ms = 1500
            [mon]
            backend = "fjall"
            [[mon.members]]
            id = 1
            addr = "127.0.0.1:7100"
            [[mon.members]]
            id = 2
            addr_file = "mon.2/mon.addr"
            [[mon.members]]
            id = 3
            addr_file = "mon.3/mon.addr"
            [mon.raft]
            tick_ms = 50
        "#;
        let config = ClientConfig::parse(text, dir.path(), "test").unwrap();
        assert_eq!(
            config.mon_hosts,
            vec!["127.0.0.1:7100", "127.0.0.1:7101", "127.0.0.1:7102"]
        );
        assert_eq!(config.command_timeout, Duration::from_millis(2500));
        assert_eq!(config.op_timeout, Duration::from_millis(1500));
        assert_eq!(config.call_timeout, ClientConfig::default().call_timeout);
    }

    #[test]
    fn errors_name_the_field_or_the_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let error = ClientConfig::parse("[client]\nmon_host = [\"nowhere\"]\n", dir.path(), "t")
            .unwrap_err();
        assert!(error.to_string().contains("client.mon_host"), "{error}");
        assert!(error.to_string().contains("nowhere"), "{error}");
        let error = ClientConfig::parse(
            "[client]\nmon_host = \"127.0.0.1:1\"\ncall_timeout_ms = 0\n",
            dir.path(),
            "t",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("client.call_timeout_ms"),
            "{error}"
        );
        let error = ClientConfig::parse(
            "[[mon.members]]\nid = 1\naddr_file = \"mon.1/mon.addr\"\n",
            dir.path(),
            "shoal.conf",
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("shoal.conf") && text.contains("mon.1/mon.addr"),
            "{text}"
        );
        let error = ClientConfig::parse("[client\n", dir.path(), "t").unwrap_err();
        assert!(matches!(error, ConfigError::Parse { .. }), "{error}");
    }

    #[test]
    fn environment_overrides_and_missing_file() {
        let error = ClientConfig::load_with_env(None, |_| None).unwrap_err();
        assert!(matches!(error, ConfigError::NoConfigFile), "{error}");
        let config = ClientConfig::load_with_env(None, |name| {
            (name == MON_HOST_ENV).then(|| "127.0.0.1:9,127.0.0.1:10".to_owned())
        })
        .unwrap();
        assert_eq!(config.mon_hosts, vec!["127.0.0.1:9", "127.0.0.1:10"]);
        let error =
            ClientConfig::load_with_env(Some(Path::new("/nonexistent/shoal.conf")), |_| None)
                .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/shoal.conf"),
            "{error}"
        );
    }
}
