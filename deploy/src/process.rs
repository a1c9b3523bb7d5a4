//! Spawning daemons and signalling them safely.
//!
//! A pid in the state file may outlive its process and be reused by another program, so no
//! signal is sent before [`identify`] confirms through `/proc/PID` that the pid still runs
//! the daemon we started: same start time (field 22 of `/proc/PID/stat`, in clock ticks
//! since boot), same binary name and the same `--data` directory on its command line.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What a recorded pid is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Our daemon, still running.
    Ours,
    /// No such process, or it exited and awaits reaping (a zombie).
    Gone,
    /// The pid belongs to another program now (`description` says which).
    Other {
        /// The program's command line, for the message.
        description: String,
    },
}

/// The fields of `/proc/PID/stat` after the command name, starting with the state.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let after = &text[text.rfind(')')? + 1..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22).
pub fn start_time(pid: u32) -> Option<u64> {
    // Field 3 (the state) is index 0 after the name, so field 22 is index 19.
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The process state letter (`R`, `S`, `Z`, ...).
pub fn state(pid: u32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

/// The process's arguments (`/proc/PID/cmdline`); empty for zombies and kernel threads.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        bytes
            .split(|byte| *byte == 0)
            .filter(|arg| !arg.is_empty())
            .map(|arg| String::from_utf8_lossy(arg).into_owned())
            .collect(),
    )
}

/// What `pid` is now, for a daemon started as `binary_name` with `--data data_dir` at
/// `expected_start` (see the module documentation).
pub fn identify(pid: u32, expected_start: u64, binary_name: &str, data_dir: &Path) -> Identity {
    let Some(state) = state(pid) else {
        return Identity::Gone;
    };
    if state == 'Z' || state == 'X' {
        return Identity::Gone;
    }
    let args = cmdline(pid).unwrap_or_default();
    let description = if args.is_empty() {
        format!("pid {pid} (no command line)")
    } else {
        args.join(" ")
    };
    if start_time(pid) != Some(expected_start) {
        return Identity::Other { description };
    }
    let binary_matches = args
        .first()
        .and_then(|arg0| Path::new(arg0).file_name())
        .is_some_and(|name| name == binary_name);
    let data = data_dir.display().to_string();
    let data_matches = args
        .windows(2)
        .any(|pair| pair[0] == "--data" && pair[1] == data);
    if binary_matches && data_matches {
        Identity::Ours
    } else {
        Identity::Other { description }
    }
}

/// Sends `signal` to `pid`. Callers check [`identify`] first.
pub fn send_signal(pid: u32, signal: i32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "pid out of range"))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a positive pid
    // addresses exactly one process (never a group), checked by the caller.
    let result = unsafe { libc::kill(pid, signal) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// SIGTERM: ask a daemon to stop cleanly.
pub const SIGTERM: i32 = libc::SIGTERM;
/// SIGKILL: stop a daemon at once (crash simulation, or after a clean stop timed out).
pub const SIGKILL: i32 = libc::SIGKILL;

/// How to start one monitor.
#[derive(Clone, Debug)]
pub struct MonLaunch {
    /// The `shoal-mon` binary.
    pub binary: PathBuf,
    /// The cluster config file.
    pub conf: PathBuf,
    /// Raft id.
    pub id: u64,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where its output goes (appended).
    pub log_file: PathBuf,
    /// Start as a monitor added at run time (no bootstrap).
    pub join: bool,
    /// Have the kernel kill the daemon when the launching thread exits (tests: nothing
    /// outlives a test process killed by a timeout).
    pub die_with_launcher: bool,
}

/// How to start one OSD.
#[derive(Clone, Debug)]
pub struct OsdLaunch {
    /// The `shoal-osd` binary.
    pub binary: PathBuf,
    /// The cluster config file.
    pub conf: PathBuf,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where its output goes (appended).
    pub log_file: PathBuf,
    /// Have the kernel kill the daemon when the launching thread exits.
    pub die_with_launcher: bool,
}

/// Environment variables that would override the config file in a child: the launcher's
/// file is the whole truth for the daemons it starts. `SHOAL_MON_HOST` matters for OSDs
/// too: they find the monitors as clients do.
const SCRUBBED_ENV: &[&str] = &["SHOAL_CONF", "SHOAL_MON_HOST"];

/// Prefixes of the daemons' own override variables (`SHOAL_MON_ID`, `SHOAL_OSD_...`).
const SCRUBBED_PREFIXES: &[&str] = &["SHOAL_MON_", "SHOAL_OSD_"];

/// Starts a monitor (see [`spawn_daemon`]).
pub fn spawn_mon(launch: &MonLaunch) -> std::io::Result<Child> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "-c".into(),
        launch.conf.clone().into(),
        "--id".into(),
        launch.id.to_string().into(),
        "--data".into(),
        launch.data_dir.clone().into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    if launch.join {
        args.push("--join".into());
    }
    spawn_daemon(
        &launch.binary,
        &args,
        &launch.log_file,
        launch.die_with_launcher,
    )
}

/// Starts an OSD on a free port of the loopback (see [`spawn_daemon`]).
pub fn spawn_osd(launch: &OsdLaunch) -> std::io::Result<Child> {
    let args: Vec<std::ffi::OsString> = vec![
        "-c".into(),
        launch.conf.clone().into(),
        "--data".into(),
        launch.data_dir.clone().into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    spawn_daemon(
        &launch.binary,
        &args,
        &launch.log_file,
        launch.die_with_launcher,
    )
}

/// Starts a daemon in its own process group (a Ctrl-C at the launcher's terminal does not
/// reach it), with its output appended to `log_file` and without the environment
/// variables that would override the config file.
pub fn spawn_daemon(
    binary: &Path,
    args: &[std::ffi::OsString],
    log_file: &Path,
    die_with_launcher: bool,
) -> std::io::Result<Child> {
    if let Some(parent) = log_file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file)?;
    let mut command = Command::new(binary);
    command.args(args);
    for name in SCRUBBED_ENV {
        command.env_remove(name);
    }
    for (name, _) in std::env::vars_os() {
        let scrubbed = name.to_str().is_some_and(|name| {
            SCRUBBED_PREFIXES
                .iter()
                .any(|prefix| name.starts_with(prefix))
        });
        if scrubbed {
            command.env_remove(name);
        }
    }
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", "info");
    }
    command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    if die_with_launcher {
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed; prctl(2) is one, and it touches no memory.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_identified_and_a_wrong_expectation_is_not() {
        let pid = std::process::id();
        let start = start_time(pid).expect("our own start time");
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().into_owned();
        // The test binary has no --data argument: it is never taken for a daemon.
        let identity = identify(pid, start, &name, Path::new("/nowhere"));
        assert!(matches!(identity, Identity::Other { .. }), "{identity:?}");
        let identity = identify(pid, start + 1, "shoal-mon", Path::new("/nowhere"));
        assert!(matches!(identity, Identity::Other { .. }), "{identity:?}");
        assert_eq!(
            identify(u32::MAX - 1, start, "shoal-mon", Path::new("/x")),
            Identity::Gone
        );
    }

    #[test]
    fn a_spawned_process_is_ours_until_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        // A shell stands in for a daemon: `sh -c "sleep 30; exit 0" sh --data DIR` keeps the
        // `--data DIR` arguments on its command line.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("sleep 30; exit 0")
            .arg("sh")
            .arg("--data")
            .arg(dir.path())
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        // Between fork and exec the child has no command line of its own yet.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while cmdline(pid).is_none_or(|args| args.first().map(String::as_str) != Some("/bin/sh")) {
            assert!(std::time::Instant::now() < deadline, "sh never started");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let start = start_time(pid).expect("start time");
        assert_eq!(identify(pid, start, "sh", dir.path()), Identity::Ours);
        assert!(matches!(
            identify(pid, start, "shoal-mon", dir.path()),
            Identity::Other { .. }
        ));
        send_signal(pid, SIGKILL).unwrap();
        // Until reaped it is a zombie, which counts as gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while identify(pid, start, "sh", dir.path()) != Identity::Gone {
            assert!(
                std::time::Instant::now() < deadline,
                "the process did not die"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.wait().unwrap();
        assert_eq!(identify(pid, start, "sh", dir.path()), Identity::Gone);
    }
}
