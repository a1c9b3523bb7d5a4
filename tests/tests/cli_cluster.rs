//! `shoal cluster up|status|down` end to end: the CLI starts daemons that outlive it, the
//! config file it writes works with `shoal -c`, and `down` (another process) stops exactly
//! the recorded processes.

use std::path::{Path, PathBuf};
use std::process::Command;

use shoal_tests::{bin_dir, describe, shoal, shoal_binary};

/// Runs `shoal cluster down --dir DIR` when dropped, so a failing test stops its daemons.
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(shoal_binary())
            .args(["cluster", "down", "--dir"])
            .arg(&self.0)
            .output();
    }
}

fn cluster_cmd(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(shoal_binary())
        .arg("cluster")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .env("SHOAL_BIN_DIR", bin_dir())
        .output()
        .expect("the shoal binary runs")
}

fn recorded_pids(dir: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).expect("the state file");
    let state: serde_json::Value = serde_json::from_str(&text).expect("JSON state");
    state["mons"]
        .as_array()
        .expect("mons")
        .iter()
        .filter_map(|mon| mon["process"]["pid"].as_u64())
        .map(|pid| u32::try_from(pid).expect("a pid"))
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

#[test]
fn cluster_up_status_and_down_through_the_cli() {
    let dir = tempfile::Builder::new()
        .prefix("shoal-cli-cluster-")
        .tempdir()
        .expect("a temporary directory");
    let _guard = DownOnDrop(dir.path().to_path_buf());

    let refused = cluster_cmd(&["up", "--mons", "1", "--backend", "tape"], dir.path());
    assert!(!refused.status.success(), "{}", describe(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("tape"),
        "{}",
        describe(&refused)
    );

    // Monitors only here; `cluster_osds_cli` covers the default cluster with OSDs.
    let up = cluster_cmd(&["up", "--mons", "3", "--osds", "0", "--fast"], dir.path());
    assert!(up.status.success(), "{}", describe(&up));
    let pids = recorded_pids(dir.path());
    assert_eq!(pids.len(), 3, "{}", describe(&up));
    assert!(
        pids.iter().all(|pid| alive(*pid)),
        "daemons outlive `cluster up`"
    );

    let again = cluster_cmd(&["up", "--mons", "3", "--osds", "0"], dir.path());
    assert!(!again.status.success(), "{}", describe(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already running"),
        "{}",
        describe(&again)
    );

    let status = cluster_cmd(&["status"], dir.path());
    assert!(status.status.success(), "{}", describe(&status));
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(text.matches("running, pid").count(), 3, "{text}");
    assert!(text.contains("leader mon."), "{text}");

    let conf = dir.path().join("shoal.conf");
    let output = shoal(&conf, &["status"]);
    assert!(output.status.success(), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("mon: 3 daemons"),
        "{}",
        describe(&output)
    );
    let output = shoal(&conf, &["osd", "pool", "create", "cli-pool", "8"]);
    assert!(output.status.success(), "{}", describe(&output));

    let down = cluster_cmd(&["down"], dir.path());
    assert!(down.status.success(), "{}", describe(&down));
    assert_eq!(
        String::from_utf8_lossy(&down.stdout)
            .matches(": stopped")
            .count(),
        3,
        "{}",
        describe(&down)
    );
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} still runs after `cluster down`");
    }
    let status = cluster_cmd(&["status"], dir.path());
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("stopped"),
        "{}",
        describe(&status)
    );

    // The data stays: `up` again restarts the same cluster with its pool.
    let up = cluster_cmd(&["up", "--mons", "3", "--osds", "0", "--fast"], dir.path());
    assert!(up.status.success(), "{}", describe(&up));
    assert!(
        String::from_utf8_lossy(&up.stdout).contains("restarted"),
        "{}",
        describe(&up)
    );
    let output = shoal(&conf, &["osd", "pool", "ls"]);
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("cli-pool"),
        "{}",
        describe(&output)
    );
    let down = cluster_cmd(&["down"], dir.path());
    assert!(down.status.success(), "{}", describe(&down));
}
