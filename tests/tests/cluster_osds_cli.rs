//! The README's first command for real: `shoal cluster up --dir D` (the CLI binary, default
//! settings: 3 monitors, 3 OSDs, Ceph's default timings) returns once the cluster is
//! `HEALTH_OK`; `shoal -c D/shoal.conf` then creates a pool and `rados put`/`get` an
//! object byte for byte; `cluster status` lists the OSDs; `cluster down` stops exactly
//! the six recorded processes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use shoal_tests::{alive, bin_dir, describe, osd_binary, pattern, shoal, shoal_binary};

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
        .env_remove("SHOAL_CONF")
        .env_remove("SHOAL_MON_HOST")
        .output()
        .expect("the shoal binary runs")
}

/// The number on the line of a bench summary that starts with `label`.
fn counted(text: &str, label: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(label))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0)
}

/// The pids the state file records, monitors and OSDs.
fn recorded_pids(dir: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(dir.join("cluster.json")).expect("the state file");
    let state: serde_json::Value = serde_json::from_str(&text).expect("JSON state");
    ["mons", "osds"]
        .iter()
        .flat_map(|kind| state[kind].as_array().cloned().unwrap_or_default())
        .filter_map(|daemon| daemon["process"]["pid"].as_u64())
        .map(|pid| u32::try_from(pid).expect("a pid"))
        .collect()
}

#[test]
fn cluster_up_with_defaults_serves_objects_and_down_stops_exactly_its_processes() {
    osd_binary();
    let dir = tempfile::Builder::new()
        .prefix("shoal-cli-osds-")
        .tempdir()
        .expect("a temporary directory");
    let _guard = DownOnDrop(dir.path().to_path_buf());

    let start = Instant::now();
    let up = cluster_cmd(&["up"], dir.path());
    assert!(up.status.success(), "{}", describe(&up));
    println!(
        "`shoal cluster up` returned after {:.1} s:\n{}",
        start.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&up.stdout)
    );
    let stdout = String::from_utf8_lossy(&up.stdout);
    assert!(
        stdout.contains("3 monitor(s), 3 OSD(s), HEALTH_OK"),
        "{stdout}"
    );
    let pids = recorded_pids(dir.path());
    assert_eq!(pids.len(), 6, "3 monitors and 3 OSDs: {}", describe(&up));
    assert!(
        pids.iter().all(|pid| alive(*pid)),
        "daemons outlive `cluster up`"
    );

    let conf = dir.path().join("shoal.conf");
    let status = shoal(&conf, &["status"]);
    assert!(status.status.success(), "{}", describe(&status));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("HEALTH_OK"),
        "{}",
        describe(&status)
    );
    let created = shoal(&conf, &["osd", "pool", "create", "demo", "8"]);
    assert!(created.status.success(), "{}", describe(&created));

    let input = dir.path().join("input.bin");
    let output = dir.path().join("output.bin");
    let data = pattern(42, 3 * 1024 * 1024 + 17);
    std::fs::write(&input, &data).expect("write the input file");
    demo_rados(&conf, &["put", "greeting", input.to_str().expect("a path")]);
    demo_rados(
        &conf,
        &["get", "greeting", output.to_str().expect("a path")],
    );
    assert!(
        std::fs::read(&output).expect("the output file") == data,
        "rados get returns what rados put stored"
    );
    let listed = demo_rados(&conf, &["ls"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "greeting");

    // `rados bench`: a short write run of incompressible data, kept for seq and rand reads,
    // then cleaned up.
    let write = demo_rados(
        &conf,
        &[
            "bench",
            "2",
            "write",
            "-b",
            "64K",
            "-t",
            "4",
            "--no-cleanup",
            "--random-data",
            "--run-name",
            "bt",
        ],
    );
    let text = String::from_utf8_lossy(&write.stdout);
    assert!(counted(&text, "Total writes made:") > 0, "{text}");
    for line in [
        "Bandwidth (MB/sec):",
        "Average IOPS:",
        "Average Latency(s):",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    let first = dir.path().join("bench-object0.bin");
    demo_rados(
        &conf,
        &["get", "bt_object0", first.to_str().expect("a path")],
    );
    let stored = std::fs::read(&first).expect("the bench object");
    assert_eq!(stored.len(), 64 * 1024);
    let repeats = (0..stored.len() - 251)
        .filter(|&index| stored[index] == stored[index + 251])
        .count();
    assert!(
        repeats < 1024,
        "--random-data wrote a cycle ({repeats} repeats)"
    );
    for mode in ["seq", "rand"] {
        let read = demo_rados(&conf, &["bench", "1", mode, "-t", "4"]);
        let text = String::from_utf8_lossy(&read.stdout);
        assert!(counted(&text, "Total reads made:") > 0, "{mode}: {text}");
    }
    demo_rados(&conf, &["cleanup", "--prefix", "bt"]);
    let listed = demo_rados(&conf, &["ls"]);
    let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|name| name.starts_with("bt_"))
        .map(str::to_owned)
        .collect();
    assert!(names.is_empty(), "cleanup left {names:?}");

    let report = cluster_cmd(&["status"], dir.path());
    assert!(report.status.success(), "{}", describe(&report));
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(text.matches("running, pid").count(), 6, "{text}");
    for id in 0..3 {
        assert!(text.contains(&format!("osd.{id} ")), "{text}");
    }

    let down = cluster_cmd(&["down"], dir.path());
    assert!(down.status.success(), "{}", describe(&down));
    let text = String::from_utf8_lossy(&down.stdout);
    assert_eq!(text.matches(": stopped").count(), 6, "{}", describe(&down));
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} still runs after `cluster down`");
    }
}

/// Runs `shoal rados -p demo ARGS` and checks that it succeeded.
fn demo_rados(conf: &Path, args: &[&str]) -> Output {
    let mut full = vec!["rados", "-p", "demo"];
    full.extend_from_slice(args);
    let output = shoal(conf, &full);
    assert!(output.status.success(), "{}", describe(&output));
    output
}
