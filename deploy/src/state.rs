//! The state file `DIR/cluster.json`: which monitors and OSDs the launcher started, with the pid and
//! start time that identify each process, so that `cluster down` (often another process)
//! stops exactly those. Written atomically (temporary file, fsync, rename) after every
//! change, and versioned.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_error, DeployError};
use crate::spec::StoredSpec;

/// The state file's name inside the cluster directory.
pub const STATE_FILE: &str = "cluster.json";

/// The state file format this build writes and reads.
pub const STATE_FORMAT: u32 = 1;

/// One monitor the launcher manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonRecord {
    /// Raft id.
    pub id: u64,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Output file.
    pub log_file: PathBuf,
    /// Started with `--join` (added at run time, or rejoining after a wipe).
    pub join: bool,
    /// An initial member (listed in `[[mon.members]]`).
    pub initial: bool,
    /// The running process, if any.
    pub process: Option<ProcessRecord>,
    /// The address it last served on.
    pub addr: Option<String>,
}

/// One OSD the launcher manages. OSDs are numbered by the launcher from 0 in the order
/// they were created (`DIR/osd.<n>`); the monitors give each its id when it first boots,
/// which is `n` when they boot one after another into an empty cluster, as `up` does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsdRecord {
    /// The launcher's number for it.
    pub n: u32,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Output file.
    pub log_file: PathBuf,
    /// The running process, if any.
    pub process: Option<ProcessRecord>,
    /// The address it last served on.
    pub addr: Option<String>,
    /// Its OSD id, once it booted (`DATA/whoami`).
    pub id: Option<i32>,
}

/// A running daemon's identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// Its pid.
    pub pid: u32,
    /// Its start time (clock ticks since boot), which tells it from a later process that
    /// reuses the pid.
    pub start_time: u64,
}

/// Everything the launcher knows about one cluster directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// [`STATE_FORMAT`].
    pub format_version: u32,
    /// The `shoal-mon` binary the monitors run.
    pub mon_binary: PathBuf,
    /// Backend and timings, reused on restarts.
    pub spec: StoredSpec,
    /// The monitors, by id.
    pub mons: Vec<MonRecord>,
    /// The `shoal-osd` binary the OSDs run (absent for clusters without OSDs).
    #[serde(default)]
    pub osd_binary: Option<PathBuf>,
    /// The OSDs, by number (absent in state files from before OSDs).
    #[serde(default)]
    pub osds: Vec<OsdRecord>,
}

impl ClusterState {
    /// The state file of `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Reads the state of `dir`; [`DeployError::NoCluster`] when there is none.
    pub fn load(dir: &Path) -> Result<Self, DeployError> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(DeployError::NoCluster {
                    dir: dir.to_path_buf(),
                    state_file: path,
                })
            }
            Err(error) => return Err(io_error(format!("read {}", path.display()))(error)),
        };
        let state: ClusterState =
            serde_json::from_str(&text).map_err(|error| DeployError::BadState {
                path: path.clone(),
                reason: error.to_string(),
            })?;
        if state.format_version != STATE_FORMAT {
            return Err(DeployError::BadState {
                path,
                reason: format!(
                    "format version {} is not supported (this build reads {STATE_FORMAT})",
                    state.format_version
                ),
            });
        }
        Ok(state)
    }

    /// Writes the state of `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), DeployError> {
        let text = serde_json::to_string_pretty(self).map_err(|error| DeployError::BadState {
            path: Self::path(dir),
            reason: error.to_string(),
        })?;
        write_atomically(&Self::path(dir), &text)
    }

    /// The record of monitor `id`.
    pub fn mon(&self, id: u64) -> Result<&MonRecord, DeployError> {
        self.mons
            .iter()
            .find(|mon| mon.id == id)
            .ok_or(DeployError::UnknownMonitor { id })
    }

    /// The record of monitor `id`, for changes.
    pub fn mon_mut(&mut self, id: u64) -> Result<&mut MonRecord, DeployError> {
        self.mons
            .iter_mut()
            .find(|mon| mon.id == id)
            .ok_or(DeployError::UnknownMonitor { id })
    }

    /// The record of OSD number `n`.
    pub fn osd(&self, n: u32) -> Result<&OsdRecord, DeployError> {
        self.osds
            .iter()
            .find(|osd| osd.n == n)
            .ok_or(DeployError::UnknownOsd { n })
    }

    /// The record of OSD number `n`, for changes.
    pub fn osd_mut(&mut self, n: u32) -> Result<&mut OsdRecord, DeployError> {
        self.osds
            .iter_mut()
            .find(|osd| osd.n == n)
            .ok_or(DeployError::UnknownOsd { n })
    }
}

/// Writes `contents` to `path` through a temporary file, fsync and rename, so readers see
/// the old or the new file, never a part.
pub fn write_atomically(path: &Path, contents: &str) -> Result<(), DeployError> {
    use std::io::Write as _;
    let temporary = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&temporary)
            .map_err(io_error(format!("create {}", temporary.display())))?;
        file.write_all(contents.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_error(format!("write {}", temporary.display())))?;
    }
    std::fs::rename(&temporary, path).map_err(io_error(format!("rename to {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_other_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = ClusterState::load(dir.path()).unwrap_err();
        assert!(matches!(error, DeployError::NoCluster { .. }), "{error}");
        let mut state = ClusterState {
            format_version: STATE_FORMAT,
            mon_binary: PathBuf::from("/bin/shoal-mon"),
            spec: StoredSpec::default(),
            mons: vec![MonRecord {
                id: 1,
                data_dir: dir.path().join("mon.1"),
                log_file: dir.path().join("log/mon.1.log"),
                join: false,
                initial: true,
                process: Some(ProcessRecord {
                    pid: 42,
                    start_time: 7,
                }),
                addr: Some("127.0.0.1:1".to_owned()),
            }],
            osd_binary: Some(PathBuf::from("/bin/shoal-osd")),
            osds: vec![OsdRecord {
                n: 0,
                data_dir: dir.path().join("osd.0"),
                log_file: dir.path().join("log/osd.0.log"),
                process: None,
                addr: None,
                id: Some(0),
            }],
        };
        state.save(dir.path()).unwrap();
        assert_eq!(ClusterState::load(dir.path()).unwrap(), state);
        assert!(state.mon(2).is_err());
        assert!(state.osd(1).is_err());

        // A state file from before OSDs existed still loads.
        let mut old: serde_json::Value = serde_json::to_value(&state).unwrap();
        let object = old.as_object_mut().unwrap();
        object.remove("osds");
        object.remove("osd_binary");
        std::fs::write(ClusterState::path(dir.path()), old.to_string()).unwrap();
        let loaded = ClusterState::load(dir.path()).unwrap();
        assert!(loaded.osds.is_empty() && loaded.osd_binary.is_none());
        state.format_version = 99;
        state.save(dir.path()).unwrap();
        let error = ClusterState::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("99"), "{error}");
    }
}
