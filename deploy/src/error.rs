//! [`DeployError`]: why the launcher could not start, stop or change a cluster. Every
//! variant names the directory, monitor, OSD, pid or file concerned.

use std::path::PathBuf;

use monclient::ClientError;

/// Why a launcher operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// A file or directory operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, with the path.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A daemon binary is in none of the places searched.
    #[error(
        "cannot find the `{name}` binary (looked in: {}); build it with `cargo build -p {package}` \
         or point SHOAL_BIN_DIR at the directory that holds it",
        .searched.iter().map(|dir| dir.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    BinaryNotFound {
        /// The binary's name.
        name: &'static str,
        /// The cargo package that builds it.
        package: &'static str,
        /// The directories looked in.
        searched: Vec<PathBuf>,
    },
    /// The cluster specification is unusable.
    #[error("invalid cluster spec: `{field}` {reason}")]
    InvalidSpec {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The directory already holds a cluster with running processes.
    #[error(
        "a cluster is already running in {dir} (pids {pids:?}); stop it with \
         `shoal cluster down --dir {dir}` or use another directory"
    )]
    AlreadyRunning {
        /// The cluster directory.
        dir: PathBuf,
        /// Its running processes.
        pids: Vec<u32>,
    },
    /// The directory holds no cluster state file.
    #[error("no cluster in {dir}: {state_file} does not exist (start one with `shoal cluster up --dir {dir}`)")]
    NoCluster {
        /// The directory.
        dir: PathBuf,
        /// The state file that is missing.
        state_file: PathBuf,
    },
    /// The state file is unreadable or from another format version.
    #[error("cluster state file {path}: {reason}")]
    BadState {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A restarted cluster was asked for a different number of monitors than it has.
    #[error(
        "{dir} holds a cluster of {existing} monitor(s), not {requested}; use --mons {existing} \
         or another directory"
    )]
    SpecMismatch {
        /// The directory.
        dir: PathBuf,
        /// Monitors recorded.
        existing: usize,
        /// Monitors asked for.
        requested: u32,
    },
    /// A restarted cluster was asked for fewer OSDs than it has.
    #[error(
        "{dir} holds a cluster of {existing} OSD(s), not {requested}; use --osds {existing} \
         (or more, to add OSDs) or another directory"
    )]
    OsdSpecMismatch {
        /// The directory.
        dir: PathBuf,
        /// OSDs recorded.
        existing: usize,
        /// OSDs asked for.
        requested: u32,
    },
    /// No OSD with that number was started by this launcher.
    #[error("osd number {n} is not part of this cluster")]
    UnknownOsd {
        /// The launcher's number.
        n: u32,
    },
    /// The operation needs the OSD stopped.
    #[error("osd number {n} is running (pid {pid}); stop or kill it first")]
    OsdRunning {
        /// The launcher's number.
        n: u32,
        /// Its pid.
        pid: u32,
    },
    /// The operation needs the OSD running (or booted once, for its id).
    #[error("osd number {n} is not running{detail}")]
    OsdNotRunning {
        /// The launcher's number.
        n: u32,
        /// What is missing, when more than the process.
        detail: String,
    },
    /// An OSD process exited while the launcher waited for it.
    #[error("osd number {n} exited ({status}) while starting; last lines of {log}:\n{tail}")]
    OsdExited {
        /// The launcher's number.
        n: u32,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// No monitor with that id was started by this launcher.
    #[error("monitor {id} is not part of this cluster")]
    UnknownMonitor {
        /// The id.
        id: u64,
    },
    /// The operation needs the monitor stopped.
    #[error("monitor {id} is running (pid {pid}); stop or kill it first")]
    MonitorRunning {
        /// The id.
        id: u64,
        /// Its pid.
        pid: u32,
    },
    /// The operation needs the monitor running.
    #[error("monitor {id} is not running")]
    MonitorNotRunning {
        /// The id.
        id: u64,
    },
    /// A monitor process exited while the launcher waited for it.
    #[error("monitor {id} exited ({status}) while starting; last lines of {log}:\n{tail}")]
    MonitorExited {
        /// The id.
        id: u64,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// Waiting for a condition took too long.
    #[error("timed out after {waited_ms} ms waiting for {what}{}", detail_suffix(.detail))]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited_ms: u128,
        /// The last error seen, or log lines.
        detail: String,
    },
    /// A signal could not be sent.
    #[error("cannot signal pid {pid} ({what}): {source}")]
    Signal {
        /// The pid.
        pid: u32,
        /// Which daemon it was.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A monitor call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The written config file cannot be read back as a client config.
    #[error(transparent)]
    Config(#[from] monclient::ConfigError),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// Builds the `Io` variant for an operation described by `what`.
pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DeployError {
    let what = what.into();
    move |source| DeployError::Io { what, source }
}
