//! [`Cluster`]: a set of local monitor processes under one directory.
//!
//! [`Cluster::up`] starts them (or restarts the ones a stopped cluster in that directory
//! had), waits until each serves the map and a leader answers `Status`, and writes
//! `DIR/shoal.conf` and `DIR/cluster.json`. The returned value owns the child processes and
//! kills them when dropped (so a failing test leaves nothing behind), unless
//! [`Cluster::detach`] hands them over to the state file, as `shoal cluster up` does.
//! [`Cluster::down`] and [`Cluster::status`] work from the state file alone, from any
//! process.
//!
//! Per-process control for tests: [`Cluster::kill_mon`] (SIGKILL), [`Cluster::stop_mon`]
//! (SIGTERM), [`Cluster::restart_mon`] (same data directory), [`Cluster::wipe_mon`] (empty
//! data directory; it rejoins through a snapshot) and [`Cluster::add_mon`] (`mon add`).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime};

use librados::proto::mon::{command, Command, MonAdd};
use librados::{ClientConfig, ClusterStatus, MonClient};
use serde::Serialize;

use crate::binaries::{Binaries, MON_BINARY};
use crate::error::{io_error, DeployError};
use crate::process::{self, Identity, MonLaunch, SIGKILL, SIGTERM};
use crate::spec::{conf_text, mon_name, ClusterSpec, ConfMember, StoredSpec, CONF_FILE};
use crate::state::{write_atomically, ClusterState, MonRecord, ProcessRecord, STATE_FORMAT};

/// The monitor's address file (`monitor::ADDR_FILE`).
const ADDR_FILE: &str = "mon.addr";

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

/// What [`Cluster::status`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClusterReport {
    /// The cluster directory.
    pub dir: PathBuf,
    /// The client config file.
    pub conf: PathBuf,
    /// The monitors the launcher manages.
    pub mons: Vec<MonReport>,
    /// The monitors' status, or why it could not be had.
    pub cluster: Result<ClusterStatus, String>,
}

/// A file's identity and modification time: a monitor that (re)writes its address file
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

fn read_addr(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(ADDR_FILE)).ok()?;
    let addr = text.trim();
    (!addr.is_empty()).then(|| addr.to_owned())
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

fn identify(record: &MonRecord, process: &ProcessRecord) -> Identity {
    process::identify(
        process.pid,
        process.start_time,
        MON_BINARY,
        &record.data_dir,
    )
}

/// Local monitor processes under one directory; see the module documentation.
pub struct Cluster {
    dir: PathBuf,
    state: ClusterState,
    /// The processes this value started, by monitor id.
    children: BTreeMap<u64, Child>,
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
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts a cluster in `dir` (created if needed) and waits until it is ready: every
    /// monitor serves the map and a leader answers `Status`. A directory holding a stopped
    /// cluster is restarted with its data (same monitors, same backend; the timings come
    /// from `spec`); one whose processes still run is refused.
    pub async fn up(dir: &Path, spec: ClusterSpec) -> Result<Cluster, DeployError> {
        spec.validate()?;
        std::fs::create_dir_all(dir).map_err(io_error(format!("create {}", dir.display())))?;
        let dir =
            std::fs::canonicalize(dir).map_err(io_error(format!("resolve {}", dir.display())))?;
        let binaries = Binaries::locate(spec.bin_dir.as_deref())?;
        let (state, resumed) = match ClusterState::load(&dir) {
            Ok(mut state) => {
                let running: Vec<u32> = state
                    .mons
                    .iter()
                    .filter_map(|mon| {
                        let process = mon.process?;
                        (identify(mon, &process) == Identity::Ours).then_some(process.pid)
                    })
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
                if spec.backend.is_some() && spec.backend != state.spec.backend {
                    return Err(DeployError::InvalidSpec {
                        field: "backend",
                        reason: format!(
                            "{:?} differs from the backend the existing cluster's data is in ({:?})",
                            spec.backend, state.spec.backend
                        ),
                    });
                }
                state.mon_binary = binaries.mon.clone();
                state.spec.timings = spec.timings.clone();
                for mon in &mut state.mons {
                    mon.process = None;
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
                    spec: StoredSpec {
                        backend: spec.backend.clone(),
                        timings: spec.timings.clone(),
                    },
                    mons,
                };
                (state, false)
            }
            Err(error) => return Err(error),
        };
        let mut cluster = Cluster {
            dir,
            state,
            children: BTreeMap::new(),
            ready_timeout: spec.ready_timeout,
            die_with_launcher: spec.die_with_launcher,
            detached: false,
            resumed,
        };
        cluster.write_conf()?;
        // From here on, an error drops `cluster`, which kills what was started.
        let ids = cluster.mon_ids();
        let mut stamps = BTreeMap::new();
        for id in &ids {
            stamps.insert(*id, cluster.spawn(*id)?);
        }
        let deadline = Instant::now() + cluster.ready_timeout;
        for id in &ids {
            cluster.wait_addr(*id, stamps[id], deadline).await?;
        }
        cluster.write_conf()?;
        cluster.wait_ready(deadline).await?;
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
        let text = conf_text(&self.state.spec, &members)?;
        write_atomically(&self.conf_path(), &text)
    }

    fn save(&self) -> Result<(), DeployError> {
        self.state.save(&self.dir)
    }

    /// Starts monitor `id`'s process; returns its address file's stamp from before.
    fn spawn(&mut self, id: u64) -> Result<Option<FileStamp>, DeployError> {
        let conf = self.conf_path();
        let binary = self.state.mon_binary.clone();
        let record = self.state.mon_mut(id)?;
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
        let pid = child.id();
        // A process that already exited has no stat file; record 0 and let the wait report
        // the exit.
        let start_time = process::start_time(pid).unwrap_or(0);
        record.process = Some(ProcessRecord { pid, start_time });
        self.children.insert(id, child);
        self.save()?;
        tracing::debug!(id, pid, "monitor started");
        Ok(before)
    }

    /// Fails when monitor `id`'s process is not running any more.
    fn check_alive(&mut self, id: u64) -> Result<(), DeployError> {
        let record = self.state.mon(id)?.clone();
        let exited = match self.children.get_mut(&id) {
            Some(child) => child
                .try_wait()
                .map_err(io_error(format!("wait for monitor {id}")))?
                .map(|status| status.to_string()),
            None => match record.process {
                Some(process) if identify(&record, &process) == Identity::Ours => None,
                _ => Some("not running".to_owned()),
            },
        };
        match exited {
            None => Ok(()),
            Some(status) => {
                self.children.remove(&id);
                self.state.mon_mut(id)?.process = None;
                self.save()?;
                Err(DeployError::MonitorExited {
                    id,
                    status,
                    tail: log_tail(&record.log_file, 20),
                    log: record.log_file,
                })
            }
        }
    }

    /// Waits until monitor `id` (re)wrote its address file; records the address.
    async fn wait_addr(
        &mut self,
        id: u64,
        before: Option<FileStamp>,
        deadline: Instant,
    ) -> Result<String, DeployError> {
        let start = Instant::now();
        let data_dir = self.state.mon(id)?.data_dir.clone();
        let path = data_dir.join(ADDR_FILE);
        loop {
            self.check_alive(id)?;
            let stamp = file_stamp(&path);
            if stamp.is_some() && stamp != before {
                if let Some(addr) = read_addr(&data_dir) {
                    self.state.mon_mut(id)?.addr = Some(addr.clone());
                    self.save()?;
                    return Ok(addr);
                }
            }
            if Instant::now() >= deadline {
                let log = self.state.mon(id)?.log_file.clone();
                return Err(DeployError::Timeout {
                    what: format!("monitor {id} to write {}", path.display()),
                    waited_ms: start.elapsed().as_millis(),
                    detail: log_tail(&log, 10),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every running monitor serves a map and knows a leader, and the leader
    /// answers `Status`.
    async fn wait_ready(&mut self, deadline: Instant) -> Result<(), DeployError> {
        let start = Instant::now();
        let mut last = String::new();
        loop {
            let mut ready = true;
            for id in self.running_mon_ids() {
                self.check_alive(id)?;
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
            self.check_alive(id)?;
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

    /// Sends `signal` to monitor `id` if its recorded pid is still our daemon, then waits
    /// (up to `grace`) for it to exit; reaps it when it is our child.
    async fn signal_and_wait(
        &mut self,
        id: u64,
        signal: i32,
        grace: Duration,
    ) -> Result<Option<(u32, StopOutcome)>, DeployError> {
        let record = self.state.mon(id)?.clone();
        let Some(process) = record.process else {
            return Ok(None);
        };
        let outcome = match identify(&record, &process) {
            Identity::Gone => StopOutcome::AlreadyGone,
            Identity::Other { description } => StopOutcome::NotOurs { description },
            Identity::Ours => {
                process::send_signal(process.pid, signal).map_err(|source| {
                    DeployError::Signal {
                        pid: process.pid,
                        what: format!("monitor {id}"),
                        source,
                    }
                })?;
                let deadline = Instant::now() + grace;
                let mut outcome = if signal == SIGKILL {
                    StopOutcome::Killed
                } else {
                    StopOutcome::Stopped
                };
                while identify(&record, &process) == Identity::Ours {
                    if Instant::now() >= deadline {
                        if signal == SIGKILL {
                            break;
                        }
                        // A clean stop that takes too long: the process is still ours
                        // (just checked), so it is safe to kill.
                        let _ = process::send_signal(process.pid, SIGKILL);
                        outcome = StopOutcome::Killed;
                        let kill_deadline = Instant::now() + grace;
                        while identify(&record, &process) == Identity::Ours
                            && Instant::now() < kill_deadline
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
        if let Some(mut child) = self.children.remove(&id) {
            // The process has exited (or, if it somehow did not, is ours to kill): reap it.
            if !matches!(outcome, StopOutcome::NotOurs { .. }) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.state.mon_mut(id)?.process = None;
        self.save()?;
        Ok(Some((process.pid, outcome)))
    }

    /// Kills monitor `id` with SIGKILL (a crash) and waits until it is gone.
    pub async fn kill_mon(&mut self, id: u64) -> Result<(), DeployError> {
        self.expect_running(id)?;
        self.signal_and_wait(id, SIGKILL, STOP_GRACE).await?;
        Ok(())
    }

    /// Stops monitor `id` cleanly (SIGTERM; SIGKILL after 10 s).
    pub async fn stop_mon(&mut self, id: u64) -> Result<(), DeployError> {
        self.expect_running(id)?;
        self.signal_and_wait(id, SIGTERM, STOP_GRACE).await?;
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
        let before = self.spawn(id)?;
        let deadline = Instant::now() + self.ready_timeout;
        self.wait_addr(id, before, deadline).await?;
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
        let before = self.spawn(id)?;
        let deadline = Instant::now() + self.ready_timeout;
        let addr = self.wait_addr(id, before, deadline).await?;
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

    /// Stops every monitor cleanly and waits for them; the data stays for a later
    /// [`Cluster::up`].
    pub async fn shutdown(mut self) -> Result<DownReport, DeployError> {
        let mut report = DownReport {
            dir: self.dir.clone(),
            mons: Vec::new(),
        };
        for id in self.mon_ids() {
            if let Some((pid, outcome)) = self.signal_and_wait(id, SIGTERM, STOP_GRACE).await? {
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
                let running = mon
                    .process
                    .is_some_and(|process| identify(mon, &process) == Identity::Ours);
                MonReport {
                    id: mon.id,
                    pid: mon.process.filter(|_| running).map(|process| process.pid),
                    running,
                    addr: mon.addr.clone(),
                    data_dir: mon.data_dir.clone(),
                    log_file: mon.log_file.clone(),
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
                .map_err(|error: librados::ClientError| error.to_string())
        } else {
            Err("no monitor is running".to_owned())
        };
        Ok(ClusterReport {
            dir,
            conf,
            mons,
            cluster,
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        // Our own unreaped children cannot have had their pid reused, so killing them
        // through the handle is safe without the /proc check.
        let ids: Vec<u64> = self.children.keys().copied().collect();
        for id in ids {
            if let Some(mut child) = self.children.remove(&id) {
                let _ = child.kill();
                let _ = child.wait();
            }
            if let Ok(record) = self.state.mon_mut(id) {
                record.process = None;
            }
        }
        let _ = self.save();
    }
}
