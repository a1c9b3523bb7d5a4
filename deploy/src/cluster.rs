//! [`Cluster`]: a set of local monitor and OSD processes under one directory.
//!
//! [`Cluster::up`] starts them (or restarts the ones a stopped cluster in that directory
//! had): first the monitors, until each serves the map and a leader answers `Status`; then
//! the OSDs, until each booted (wrote `DATA/whoami`) and the map shows it up at the address
//! it serves on; then, with OSDs, until the cluster reports `HEALTH_OK`. It writes
//! `DIR/shoal.conf` and `DIR/cluster.json`. The returned value owns the child processes
//! and kills them when dropped (so a failing test leaves nothing behind), unless
//! [`Cluster::detach`] hands them over to the state file, as `shoal cluster up` does.
//! [`Cluster::down`] and [`Cluster::status`] work from the state file alone, from any
//! process.
//!
//! Per-process control for tests: monitors here ([`Cluster::kill_mon`] (SIGKILL),
//! [`Cluster::stop_mon`] (SIGTERM), [`Cluster::restart_mon`] (same data directory),
//! [`Cluster::wipe_mon`] (empty data directory; it rejoins through a snapshot) and
//! [`Cluster::add_mon`] (`mon add`)); OSDs ([`Cluster::kill_osd`], [`Cluster::stop_osd`],
//! [`Cluster::restart_osd`], [`Cluster::add_osd`], in the `osds` submodule); waits on the
//! cluster's state
//! ([`Cluster::wait_healthy`], [`Cluster::wait_osd_down`], ...: the `waits` submodule).

mod osds;
mod waits;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

use monclient::proto::mon::{command, Command, MonAdd};
use monclient::{ClientConfig, ClusterStatus, MonClient};
use serde::Serialize;

use crate::binaries::{Binaries, MON_BINARY, OSD_BINARY};
use crate::error::{io_error, DeployError};
use crate::process::{self, Identity, MonLaunch, SIGKILL, SIGTERM};
use crate::spec::{conf_text, mon_name, ClusterSpec, ConfMember, CONF_FILE};
use crate::state::{
    write_atomically, ClusterState, MonRecord, OsdRecord, ProcessRecord, STATE_FORMAT,
};

/// The monitor's address file (`monitor::ADDR_FILE`).
const ADDR_FILE: &str = "mon.addr";

/// The OSD's address file, written when it listens.
const OSD_ADDR_FILE: &str = "osd.addr";

/// The OSD's id file, written once it booted.
const WHOAMI_FILE: &str = "whoami";

/// How long a clean stop (SIGTERM) may take before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The poll interval of every wait.
const POLL: Duration = Duration::from_millis(20);

/// A per-call timeout for readiness probes: short, so one dead monitor does not hold up
/// the others.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a process was stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum StopOutcome {
    /// It exited after SIGTERM.
    Stopped,
    /// It ignored SIGTERM for too long and was killed.
    Killed,
    /// It had already exited.
    AlreadyGone,
    /// The pid now belongs to another program, which was left alone.
    NotOurs {
        /// That program's command line.
        description: String,
    },
}

/// What [`Cluster::down`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DownReport {
    /// The cluster directory.
    pub dir: PathBuf,
    /// Per monitor with a recorded process: its id, pid and outcome.
    pub mons: Vec<(u64, u32, StopOutcome)>,
    /// Per OSD with a recorded process: its number, pid and outcome (stopped before the
    /// monitors, so that no OSD reports its peers' exits as failures).
    pub osds: Vec<(u32, u32, StopOutcome)>,
}

/// One monitor in a [`ClusterReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MonReport {
    /// Raft id.
    pub id: u64,
    /// Its pid, when it runs.
    pub pid: Option<u32>,
    /// Whether the recorded process still runs our daemon.
    pub running: bool,
    /// The address it last served on.
    pub addr: Option<String>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log_file: PathBuf,
}

/// One OSD in a [`ClusterReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OsdReport {
    /// The launcher's number (`DIR/osd.<n>`).
    pub n: u32,
    /// Its OSD id, once it booted.
    pub id: Option<i32>,
    /// Its pid, when it runs.
    pub pid: Option<u32>,
    /// Whether the recorded process still runs our daemon.
    pub running: bool,
    /// The address it last served on.
    pub addr: Option<String>,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its log file.
    pub log_file: PathBuf,
}

/// What [`Cluster::status`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterReport {
    /// The cluster directory.
    pub dir: PathBuf,
    /// The client config file.
    pub conf: PathBuf,
    /// The monitors the launcher manages.
    pub mons: Vec<MonReport>,
    /// The OSDs the launcher manages.
    pub osds: Vec<OsdReport>,
    /// The monitors' status, or why it could not be had.
    pub cluster: Result<ClusterStatus, String>,
}

/// One process the launcher manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Daemon {
    /// Monitor with this Raft id.
    Mon(u64),
    /// OSD with this launcher number.
    Osd(u32),
}

/// What the launcher records about one daemon, whichever kind.
#[derive(Clone, Debug)]
struct DaemonRecord {
    binary_name: &'static str,
    data_dir: PathBuf,
    log_file: PathBuf,
    process: Option<ProcessRecord>,
}

impl DaemonRecord {
    fn of_mon(record: &MonRecord) -> Self {
        DaemonRecord {
            binary_name: MON_BINARY,
            data_dir: record.data_dir.clone(),
            log_file: record.log_file.clone(),
            process: record.process,
        }
    }

    fn of_osd(record: &OsdRecord) -> Self {
        DaemonRecord {
            binary_name: OSD_BINARY,
            data_dir: record.data_dir.clone(),
            log_file: record.log_file.clone(),
            process: record.process,
        }
    }

    /// What the recorded pid is now.
    fn identify(&self) -> Identity {
        match self.process {
            Some(process) => process::identify(
                process.pid,
                process.start_time,
                self.binary_name,
                &self.data_dir,
            ),
            None => Identity::Gone,
        }
    }

    /// The recorded pid, when it still runs our daemon.
    fn running_pid(&self) -> Option<u32> {
        let process = self.process?;
        (self.identify() == Identity::Ours).then_some(process.pid)
    }
}

impl std::fmt::Display for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Daemon::Mon(id) => write!(f, "monitor {id}"),
            Daemon::Osd(n) => write!(f, "osd number {n}"),
        }
    }
}

/// What [`Cluster::send_signal`] did.
struct Sent {
    /// The recorded pid.
    pid: u32,
    /// Why no signal was sent, when none was.
    not_sent: Option<StopOutcome>,
}

/// A file's identity and modification time: a daemon that (re)writes its address file
/// replaces it (rename), which changes both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    modified: Option<SystemTime>,
}

fn file_stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        inode: metadata.ino(),
        modified: metadata.modified().ok(),
    })
}

/// The trimmed, non-empty content of `data_dir/file`.
fn read_trimmed(data_dir: &Path, file: &str) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(file)).ok()?;
    let value = text.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn read_addr(data_dir: &Path) -> Option<String> {
    read_trimmed(data_dir, ADDR_FILE)
}

/// The last `lines` lines of a log file, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A client of exactly one monitor.
fn pinned_client(addr: &str, timeout: Duration) -> Result<MonClient, DeployError> {
    let mut config = ClientConfig::with_mon_hosts([addr]);
    config.call_timeout = timeout;
    config.connect_timeout = timeout;
    Ok(MonClient::new(config)?)
}

/// Local monitor and OSD processes under one directory; see the module documentation.
pub struct Cluster {
    dir: PathBuf,
    state: ClusterState,
    /// The processes this value started.
    children: BTreeMap<Daemon, Child>,
    ready_timeout: Duration,
    die_with_launcher: bool,
    detached: bool,
    resumed: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("mons", &self.state.mons)
            .field("osds", &self.state.osds)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts a cluster in `dir` (created if needed) and waits until it is ready: every
    /// monitor serves the map and a leader answers `Status`; every OSD booted and is up in
    /// the map; with OSDs (and [`ClusterSpec::wait_healthy`]), the cluster is
    /// `HEALTH_OK`. A directory holding a stopped cluster is restarted with its data (same
    /// monitors and OSDs, same backends; the timings come from `spec`; more OSDs than it
    /// had are added); one whose processes still run is refused.
    pub async fn up(dir: &Path, spec: ClusterSpec) -> Result<Cluster, DeployError> {
        spec.validate()?;
        std::fs::create_dir_all(dir).map_err(io_error(format!("create {}", dir.display())))?;
        let dir =
            std::fs::canonicalize(dir).map_err(io_error(format!("resolve {}", dir.display())))?;
        let binaries = Binaries::locate(spec.bin_dir.as_deref())?;
        let osd_binary = if spec.osds > 0 {
            Some(binaries.osd()?)
        } else {
            binaries.osd.clone()
        };
        let (mut state, resumed) = match ClusterState::load(&dir) {
            Ok(mut state) => {
                let running: Vec<u32> = state
                    .mons
                    .iter()
                    .map(DaemonRecord::of_mon)
                    .chain(state.osds.iter().map(DaemonRecord::of_osd))
                    .filter_map(|record| record.running_pid())
                    .collect();
                if !running.is_empty() {
                    return Err(DeployError::AlreadyRunning { dir, pids: running });
                }
                if state.mons.len() != spec.mons as usize {
                    return Err(DeployError::SpecMismatch {
                        dir,
                        existing: state.mons.len(),
                        requested: spec.mons,
                    });
                }
                if state.osds.len() > spec.osds as usize {
                    return Err(DeployError::OsdSpecMismatch {
                        dir,
                        existing: state.osds.len(),
                        requested: spec.osds,
                    });
                }
                let backends = [
                    ("backend", &spec.backend, &state.spec.backend),
                    (
                        "osd_settings.backend",
                        &spec.osd_settings.backend,
                        &state.spec.osd_settings.backend,
                    ),
                ];
                for (field, wanted, existing) in backends {
                    if wanted.is_some() && wanted != existing {
                        return Err(DeployError::InvalidSpec {
                            field,
                            reason: format!(
                                "{wanted:?} differs from the backend the existing cluster's \
                                 data is in ({existing:?})"
                            ),
                        });
                    }
                }
                // The data's backends stay; everything else comes from the new spec.
                let mut stored = spec.stored();
                stored.backend = state.spec.backend.clone();
                stored.osd_settings.backend = state.spec.osd_settings.backend.clone();
                // The default rule was made when the cluster was created.
                stored.failure_domain = state.spec.failure_domain.clone();
                state.spec = stored;
                state.mon_binary = binaries.mon.clone();
                state.osd_binary = osd_binary.clone().or(state.osd_binary);
                for mon in &mut state.mons {
                    mon.process = None;
                }
                for osd in &mut state.osds {
                    osd.process = None;
                }
                (state, true)
            }
            Err(DeployError::NoCluster { .. }) => {
                let mons = (1..=u64::from(spec.mons))
                    .map(|id| MonRecord {
                        id,
                        data_dir: dir.join(format!("mon.{id}")),
                        log_file: dir.join("log").join(format!("mon.{id}.log")),
                        join: false,
                        initial: true,
                        process: None,
                        addr: None,
                    })
                    .collect();
                let state = ClusterState {
                    format_version: STATE_FORMAT,
                    mon_binary: binaries.mon.clone(),
                    spec: spec.stored(),
                    mons,
                    osd_binary: osd_binary.clone(),
                    osds: Vec::new(),
                };
                (state, false)
            }
            Err(error) => return Err(error),
        };
        while state.osds.len() < spec.osds as usize {
            let n = state.osds.len() as u32;
            state.osds.push(osd_record(&dir, n));
        }
        let mut cluster = Cluster {
            dir,
            state,
            children: BTreeMap::new(),
            ready_timeout: spec.ready_timeout,
            die_with_launcher: spec.die_with_launcher,
            detached: false,
            resumed,
        };
        cluster.save()?;
        cluster.write_conf()?;
        // From here on, an error drops `cluster`, which kills what was started.
        let ids = cluster.mon_ids();
        let mut stamps = BTreeMap::new();
        for id in &ids {
            stamps.insert(*id, cluster.spawn_mon(*id)?);
        }
        let deadline = Instant::now() + cluster.ready_timeout;
        for id in &ids {
            cluster.wait_mon_addr(*id, stamps[id], deadline).await?;
        }
        cluster.write_conf()?;
        cluster.wait_ready(deadline).await?;
        if !cluster.state.osds.is_empty() {
            cluster.start_osds(deadline).await?;
            if spec.wait_healthy {
                let remaining = deadline.saturating_duration_since(Instant::now());
                cluster.wait_healthy(remaining).await?;
            }
        }
        Ok(cluster)
    }

    /// Leaves the processes running when this value is dropped; the state file keeps
    /// track of them for [`Cluster::down`].
    pub fn detach(mut self) {
        self.detached = true;
        self.children.clear();
    }

    /// True when [`Cluster::up`] restarted an existing cluster rather than creating one.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The cluster directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file for clients (`shoal -c`).
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join(CONF_FILE)
    }

    /// Every monitor's id.
    pub fn mon_ids(&self) -> Vec<u64> {
        self.state.mons.iter().map(|mon| mon.id).collect()
    }

    /// The monitors the launcher believes are running.
    pub fn running_mon_ids(&self) -> Vec<u64> {
        self.state
            .mons
            .iter()
            .filter(|mon| mon.process.is_some())
            .map(|mon| mon.id)
            .collect()
    }

    /// The address monitor `id` last served on.
    pub fn mon_addr(&self, id: u64) -> Result<String, DeployError> {
        let record = self.state.mon(id)?;
        record
            .addr
            .clone()
            .or_else(|| read_addr(&record.data_dir))
            .ok_or(DeployError::MonitorNotRunning { id })
    }

    /// Monitor `id`'s data directory.
    pub fn data_dir(&self, id: u64) -> Result<PathBuf, DeployError> {
        Ok(self.state.mon(id)?.data_dir.clone())
    }

    /// Monitor `id`'s log file.
    pub fn log_file(&self, id: u64) -> Result<PathBuf, DeployError> {
        Ok(self.state.mon(id)?.log_file.clone())
    }

    /// Monitor `id`'s pid, when it runs.
    pub fn pid(&self, id: u64) -> Result<Option<u32>, DeployError> {
        Ok(self.state.mon(id)?.process.map(|process| process.pid))
    }

    /// A client of every monitor, configured from `DIR/shoal.conf`.
    pub fn client(&self) -> Result<MonClient, DeployError> {
        Ok(MonClient::new(ClientConfig::load(Some(
            &self.conf_path(),
        ))?)?)
    }

    /// A client of monitor `id` alone (no failover), with the config's timeouts.
    pub fn mon_client(&self, id: u64) -> Result<MonClient, DeployError> {
        let addr = self.mon_addr(id)?;
        let base = ClientConfig::load(Some(&self.conf_path()))?;
        let mut config = ClientConfig::with_mon_hosts([addr]);
        config.call_timeout = base.call_timeout;
        config.command_timeout = base.command_timeout;
        config.connect_timeout = base.connect_timeout;
        Ok(MonClient::new(config)?)
    }

    /// The leader's id, waiting until the running monitors have one.
    pub async fn leader(&self, timeout: Duration) -> Result<u64, DeployError> {
        let start = Instant::now();
        let client = self.client()?;
        loop {
            let last = match client.status().await {
                Ok(status) if status.leader_id != 0 => return Ok(status.leader_id),
                Ok(_) => "no leader yet".to_owned(),
                Err(error) => error.to_string(),
            };
            if start.elapsed() >= timeout {
                return Err(DeployError::Timeout {
                    what: "a monitor leader".to_owned(),
                    waited_ms: start.elapsed().as_millis(),
                    detail: last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Rewrites `DIR/shoal.conf` from the current addresses.
    fn write_conf(&self) -> Result<(), DeployError> {
        let addr_files: Vec<PathBuf> = self
            .state
            .mons
            .iter()
            .map(|mon| mon.data_dir.join(ADDR_FILE))
            .collect();
        let members: Vec<ConfMember<'_>> = self
            .state
            .mons
            .iter()
            .zip(&addr_files)
            .map(|(mon, addr_file)| ConfMember {
                id: mon.id,
                addr_file,
                addr: mon.addr.as_deref(),
                initial: mon.initial,
            })
            .collect();
        let path = self.conf_path();
        let previous = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(DeployError::Io {
                    what: format!("read {}", path.display()),
                    source,
                })
            }
        };
        let text = conf_text(&self.state.spec, &members, previous.as_deref())?;
        write_atomically(&path, &text)
    }

    fn save(&self) -> Result<(), DeployError> {
        self.state.save(&self.dir)
    }

    /// What the state records about `daemon`.
    fn record(&self, daemon: Daemon) -> Result<DaemonRecord, DeployError> {
        Ok(match daemon {
            Daemon::Mon(id) => DaemonRecord::of_mon(self.state.mon(id)?),
            Daemon::Osd(n) => DaemonRecord::of_osd(self.state.osd(n)?),
        })
    }

    /// Records `daemon`'s process (or that it has none).
    fn set_process(
        &mut self,
        daemon: Daemon,
        process: Option<ProcessRecord>,
    ) -> Result<(), DeployError> {
        match daemon {
            Daemon::Mon(id) => self.state.mon_mut(id)?.process = process,
            Daemon::Osd(n) => self.state.osd_mut(n)?.process = process,
        }
        Ok(())
    }

    /// Records a just-spawned child as `daemon`'s process.
    fn adopt(&mut self, daemon: Daemon, child: Child) -> Result<(), DeployError> {
        let pid = child.id();
        // A process that already exited has no stat file; record 0 and let the wait report
        // the exit.
        let start_time = process::start_time(pid).unwrap_or(0);
        self.set_process(daemon, Some(ProcessRecord { pid, start_time }))?;
        self.children.insert(daemon, child);
        self.save()?;
        tracing::debug!(%daemon, pid, "daemon started");
        Ok(())
    }

    /// Starts monitor `id`'s process; returns its address file's stamp from before.
    fn spawn_mon(&mut self, id: u64) -> Result<Option<FileStamp>, DeployError> {
        let conf = self.conf_path();
        let binary = self.state.mon_binary.clone();
        let record = self.state.mon(id)?;
        std::fs::create_dir_all(&record.data_dir)
            .map_err(io_error(format!("create {}", record.data_dir.display())))?;
        let before = file_stamp(&record.data_dir.join(ADDR_FILE));
        let launch = MonLaunch {
            binary,
            conf,
            id,
            data_dir: record.data_dir.clone(),
            log_file: record.log_file.clone(),
            join: record.join,
            die_with_launcher: self.die_with_launcher,
        };
        let child = process::spawn_mon(&launch).map_err(io_error(format!(
            "start {} for monitor {id}",
            launch.binary.display()
        )))?;
        self.adopt(Daemon::Mon(id), child)?;
        Ok(before)
    }

    /// Fails when `daemon`'s process is not running any more.
    fn check_alive(&mut self, daemon: Daemon) -> Result<(), DeployError> {
        let record = self.record(daemon)?;
        let exited = match self.children.get_mut(&daemon) {
            Some(child) => child
                .try_wait()
                .map_err(io_error(format!("wait for {daemon}")))?
                .map(|status| status.to_string()),
            None if record.identify() == Identity::Ours => None,
            None => Some("not running".to_owned()),
        };
        let Some(status) = exited else {
            return Ok(());
        };
        self.children.remove(&daemon);
        self.set_process(daemon, None)?;
        self.save()?;
        let tail = log_tail(&record.log_file, 20);
        let log = record.log_file;
        Err(match daemon {
            Daemon::Mon(id) => DeployError::MonitorExited {
                id,
                status,
                log,
                tail,
            },
            Daemon::Osd(n) => DeployError::OsdExited {
                n,
                status,
                log,
                tail,
            },
        })
    }

    /// Waits until `daemon` (re)wrote its address file `file` (a stamp other than
    /// `before`); returns the address.
    async fn wait_addr_file(
        &mut self,
        daemon: Daemon,
        file: &str,
        before: Option<FileStamp>,
        deadline: Instant,
    ) -> Result<String, DeployError> {
        let start = Instant::now();
        let data_dir = self.record(daemon)?.data_dir;
        let path = data_dir.join(file);
        loop {
            self.check_alive(daemon)?;
            let stamp = file_stamp(&path);
            if stamp.is_some() && stamp != before {
                if let Some(addr) = read_trimmed(&data_dir, file) {
                    return Ok(addr);
                }
            }
            if Instant::now() >= deadline {
                return Err(DeployError::Timeout {
                    what: format!("{daemon} to write {}", path.display()),
                    waited_ms: start.elapsed().as_millis(),
                    detail: log_tail(&self.record(daemon)?.log_file, 10),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until monitor `id` (re)wrote its address file; records the address.
    async fn wait_mon_addr(
        &mut self,
        id: u64,
        before: Option<FileStamp>,
        deadline: Instant,
    ) -> Result<String, DeployError> {
        let addr = self
            .wait_addr_file(Daemon::Mon(id), ADDR_FILE, before, deadline)
            .await?;
        self.state.mon_mut(id)?.addr = Some(addr.clone());
        self.save()?;
        Ok(addr)
    }

    /// Waits until every running monitor serves a map and knows a leader, and the leader
    /// answers `Status`.
    async fn wait_ready(&mut self, deadline: Instant) -> Result<(), DeployError> {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            let mut ready = true;
            for id in self.running_mon_ids() {
                self.check_alive(Daemon::Mon(id))?;
                let addr = self.mon_addr(id)?;
                match pinned_client(&addr, PROBE_TIMEOUT)?.status_local().await {
                    Ok(status) if status.has_leader_and_map() => {}
                    Ok(status) => {
                        ready = false;
                        last = format!(
                            "monitor {id}: epoch {}, leader {}",
                            status.epoch, status.leader_id
                        );
                    }
                    Err(error) => {
                        ready = false;
                        last = format!("monitor {id}: {error}");
                    }
                }
            }
            if ready {
                match self.client()?.status().await {
                    Ok(status) if status.leader_id != 0 => return Ok(()),
                    Ok(_) => last = "the leader's status names no leader".to_owned(),
                    Err(error) => last = error.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(DeployError::Timeout {
                    what: "the monitors to elect a leader and serve the map".to_owned(),
                    waited_ms: start.elapsed().as_millis(),
                    detail: last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until monitor `id` serves a map at `epoch` or later.
    pub async fn wait_mon_epoch(
        &mut self,
        id: u64,
        epoch: u64,
        timeout: Duration,
    ) -> Result<ClusterStatus, DeployError> {
        let start = Instant::now();
        loop {
            self.check_alive(Daemon::Mon(id))?;
            let addr = self.mon_addr(id)?;
            let last = match pinned_client(&addr, PROBE_TIMEOUT)?.status_local().await {
                Ok(status) if status.epoch >= epoch => return Ok(status),
                Ok(status) => format!("it is at epoch {}", status.epoch),
                Err(error) => error.to_string(),
            };
            if start.elapsed() >= timeout {
                return Err(DeployError::Timeout {
                    what: format!("monitor {id} to reach epoch {epoch}"),
                    waited_ms: start.elapsed().as_millis(),
                    detail: last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends `signal` to `daemon` if its recorded pid is still our daemon, then waits (up
    /// to `grace`) for it to exit; reaps it when it is our child.
    async fn signal_and_wait(
        &mut self,
        daemon: Daemon,
        signal: i32,
        grace: Duration,
    ) -> Result<Option<(u32, StopOutcome)>, DeployError> {
        let Some(sent) = self.send_signal(daemon, signal)? else {
            return Ok(None);
        };
        self.finish_stop(daemon, signal, grace, sent)
            .await
            .map(Some)
    }

    /// Sends `signal` to `daemon` if its recorded pid is still our daemon. `None` when no
    /// process is recorded; else the pid, and why nothing was sent if nothing was.
    fn send_signal(&self, daemon: Daemon, signal: i32) -> Result<Option<Sent>, DeployError> {
        let record = self.record(daemon)?;
        let Some(process) = record.process else {
            return Ok(None);
        };
        let not_sent = match record.identify() {
            Identity::Gone => Some(StopOutcome::AlreadyGone),
            Identity::Other { description } => Some(StopOutcome::NotOurs { description }),
            Identity::Ours => {
                process::send_signal(process.pid, signal).map_err(|source| {
                    DeployError::Signal {
                        pid: process.pid,
                        what: daemon.to_string(),
                        source,
                    }
                })?;
                None
            }
        };
        Ok(Some(Sent {
            pid: process.pid,
            not_sent,
        }))
    }

    /// After [`Cluster::send_signal`]: waits (up to `grace`) for the process to exit,
    /// kills it if a SIGTERM was not enough, reaps our child and forgets the process.
    async fn finish_stop(
        &mut self,
        daemon: Daemon,
        signal: i32,
        grace: Duration,
        sent: Sent,
    ) -> Result<(u32, StopOutcome), DeployError> {
        let record = self.record(daemon)?;
        let outcome = match sent.not_sent {
            Some(outcome) => outcome,
            None => {
                let deadline = Instant::now() + grace;
                let mut outcome = if signal == SIGKILL {
                    StopOutcome::Killed
                } else {
                    StopOutcome::Stopped
                };
                while record.identify() == Identity::Ours {
                    if Instant::now() >= deadline {
                        if signal == SIGKILL {
                            break;
                        }
                        // A clean stop that takes too long: the process is still ours
                        // (just checked), so it is safe to kill.
                        tracing::warn!(%daemon, pid = sent.pid, "no exit after SIGTERM; killing it");
                        let _ = process::send_signal(sent.pid, SIGKILL);
                        outcome = StopOutcome::Killed;
                        let kill_deadline = Instant::now() + grace;
                        while record.identify() == Identity::Ours && Instant::now() < kill_deadline
                        {
                            tokio::time::sleep(POLL).await;
                        }
                        break;
                    }
                    tokio::time::sleep(POLL).await;
                }
                outcome
            }
        };
        if let Some(mut child) = self.children.remove(&daemon) {
            // The process has exited (or, if it somehow did not, is ours to kill): reap it.
            if !matches!(outcome, StopOutcome::NotOurs { .. }) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.set_process(daemon, None)?;
        self.save()?;
        Ok((sent.pid, outcome))
    }

    /// Kills monitor `id` with SIGKILL (a crash) and waits until it is gone.
    pub async fn kill_mon(&mut self, id: u64) -> Result<(), DeployError> {
        self.expect_running(id)?;
        self.signal_and_wait(Daemon::Mon(id), SIGKILL, STOP_GRACE)
            .await?;
        Ok(())
    }

    /// Stops monitor `id` cleanly (SIGTERM; SIGKILL after 10 s).
    pub async fn stop_mon(&mut self, id: u64) -> Result<(), DeployError> {
        self.expect_running(id)?;
        self.signal_and_wait(Daemon::Mon(id), SIGTERM, STOP_GRACE)
            .await?;
        Ok(())
    }

    fn expect_running(&self, id: u64) -> Result<(), DeployError> {
        if self.state.mon(id)?.process.is_none() {
            return Err(DeployError::MonitorNotRunning { id });
        }
        Ok(())
    }

    fn expect_stopped(&self, id: u64) -> Result<(), DeployError> {
        if let Some(process) = self.state.mon(id)?.process {
            return Err(DeployError::MonitorRunning {
                id,
                pid: process.pid,
            });
        }
        Ok(())
    }

    /// Starts stopped monitor `id` again with its data directory, and waits until it
    /// serves a map (for a wiped monitor: until the leader sent it a snapshot).
    pub async fn restart_mon(&mut self, id: u64) -> Result<(), DeployError> {
        self.expect_stopped(id)?;
        let before = self.spawn_mon(id)?;
        let deadline = Instant::now() + self.ready_timeout;
        self.wait_mon_addr(id, before, deadline).await?;
        self.write_conf()?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.wait_mon_epoch(id, 1, remaining).await?;
        Ok(())
    }

    /// Deletes stopped monitor `id`'s data directory (its store, id file and everything
    /// else) except its address file, so that it comes back on the same port, as a monitor
    /// whose disk was replaced comes back on the same host. Its next start joins the
    /// cluster like a new monitor and catches up through a snapshot.
    ///
    /// The address is kept because a monitor that returns on another port is not found:
    /// its peers keep sending to the address they learnt, and a joining monitor never
    /// speaks first (a monitor limitation, see the `deploy` report).
    pub fn wipe_mon(&mut self, id: u64) -> Result<(), DeployError> {
        self.expect_stopped(id)?;
        let data_dir = self.state.mon(id)?.data_dir.clone();
        let addr = read_addr(&data_dir);
        match std::fs::remove_dir_all(&data_dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(format!("remove {}", data_dir.display()))(error)),
        }
        if let Some(addr) = addr {
            std::fs::create_dir_all(&data_dir)
                .map_err(io_error(format!("create {}", data_dir.display())))?;
            write_atomically(&data_dir.join(ADDR_FILE), &format!("{addr}\n"))?;
        }
        self.state.mon_mut(id)?.join = true;
        self.save()
    }

    /// Starts a new monitor (the next id), adds it with `mon add` and waits until it has
    /// caught up with the epoch that added it. Returns its id.
    pub async fn add_mon(&mut self) -> Result<u64, DeployError> {
        let id = self.state.mons.iter().map(|mon| mon.id).max().unwrap_or(0) + 1;
        self.state.mons.push(MonRecord {
            id,
            data_dir: self.dir.join(format!("mon.{id}")),
            log_file: self.dir.join("log").join(format!("mon.{id}.log")),
            join: true,
            initial: false,
            process: None,
            addr: None,
        });
        self.save()?;
        let before = self.spawn_mon(id)?;
        let deadline = Instant::now() + self.ready_timeout;
        let addr = self.wait_mon_addr(id, before, deadline).await?;
        let command = Command {
            kind: Some(command::Kind::MonAdd(MonAdd {
                id,
                addr,
                name: mon_name(id),
            })),
        };
        let outcome = self.client()?.command(command).await?;
        self.write_conf()?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.wait_mon_epoch(id, outcome.epoch, remaining).await?;
        Ok(id)
    }

    /// Stops every OSD, then every monitor, cleanly and waits for them; the data stays
    /// for a later [`Cluster::up`].
    pub async fn shutdown(mut self) -> Result<DownReport, DeployError> {
        let mut report = DownReport {
            dir: self.dir.clone(),
            mons: Vec::new(),
            osds: Vec::new(),
        };
        // SIGTERM to every OSD first, then wait for each: they stop in parallel.
        let mut signalled = Vec::new();
        for n in self.osd_numbers() {
            if let Some(sent) = self.send_signal(Daemon::Osd(n), SIGTERM)? {
                signalled.push((n, sent));
            }
        }
        for (n, sent) in signalled {
            let (pid, outcome) = self
                .finish_stop(Daemon::Osd(n), SIGTERM, STOP_GRACE, sent)
                .await?;
            report.osds.push((n, pid, outcome));
        }
        for id in self.mon_ids() {
            if let Some((pid, outcome)) = self
                .signal_and_wait(Daemon::Mon(id), SIGTERM, STOP_GRACE)
                .await?
            {
                report.mons.push((id, pid, outcome));
            }
        }
        Ok(report)
    }

    /// Stops the processes recorded in `dir`'s state file, checking each pid first (see
    /// [`crate::process`]). Works from any process; the data stays.
    pub async fn down(dir: &Path) -> Result<DownReport, DeployError> {
        let dir =
            std::fs::canonicalize(dir).map_err(io_error(format!("resolve {}", dir.display())))?;
        let state = ClusterState::load(&dir)?;
        let cluster = Cluster {
            dir,
            state,
            children: BTreeMap::new(),
            ready_timeout: Duration::from_secs(1),
            die_with_launcher: false,
            detached: true,
            resumed: true,
        };
        cluster.shutdown().await
    }

    /// What `dir`'s state file records, which of those processes run, and the monitors'
    /// status (within `timeout`).
    pub async fn status(dir: &Path, timeout: Duration) -> Result<ClusterReport, DeployError> {
        let dir =
            std::fs::canonicalize(dir).map_err(io_error(format!("resolve {}", dir.display())))?;
        let state = ClusterState::load(&dir)?;
        let mons: Vec<MonReport> = state
            .mons
            .iter()
            .map(|mon| {
                let pid = DaemonRecord::of_mon(mon).running_pid();
                MonReport {
                    id: mon.id,
                    pid,
                    running: pid.is_some(),
                    addr: mon.addr.clone(),
                    data_dir: mon.data_dir.clone(),
                    log_file: mon.log_file.clone(),
                }
            })
            .collect();
        let osds: Vec<OsdReport> = state
            .osds
            .iter()
            .map(|osd| {
                let pid = DaemonRecord::of_osd(osd).running_pid();
                OsdReport {
                    n: osd.n,
                    id: osd.id,
                    pid,
                    running: pid.is_some(),
                    addr: osd.addr.clone(),
                    data_dir: osd.data_dir.clone(),
                    log_file: osd.log_file.clone(),
                }
            })
            .collect();
        let conf = dir.join(CONF_FILE);
        let cluster = if mons.iter().any(|mon| mon.running) {
            let outcome = async {
                let mut config = ClientConfig::load(Some(&conf))?;
                config.call_timeout = timeout;
                MonClient::new(config)?.status().await
            };
            outcome
                .await
                .map_err(|error: monclient::ClientError| error.to_string())
        } else {
            Err("no monitor is running".to_owned())
        };
        Ok(ClusterReport {
            dir,
            conf,
            mons,
            osds,
            cluster,
        })
    }
}

/// The record of a new OSD number `n` in `dir`.
fn osd_record(dir: &Path, n: u32) -> OsdRecord {
    OsdRecord {
        n,
        data_dir: dir.join(format!("osd.{n}")),
        log_file: dir.join("log").join(format!("osd.{n}.log")),
        process: None,
        addr: None,
        id: None,
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        // Our own unreaped children cannot have had their pid reused, so killing them
        // through the handle is safe without the /proc check.
        let daemons: Vec<Daemon> = self.children.keys().copied().collect();
        for daemon in daemons {
            if let Some(mut child) = self.children.remove(&daemon) {
                let _ = child.kill();
                let _ = child.wait();
            }
            let _ = self.set_process(daemon, None);
        }
        let _ = self.save();
    }
}
