//! `shoal bench kv`: the storage benchmark runs without a cluster, in the directory given,
//! measures every backend against raw append+fdatasync, leaves nothing behind, and refuses
//! empty workloads.

mod common;

use common::*;

#[test]
fn measures_every_backend_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let args = [
        "bench",
        "kv",
        "--dir",
        dir_arg,
        "--small-puts",
        "8",
        "--large-puts",
        "1",
        "--rounds",
        "1",
        "-f",
        "json",
    ];
    let output = shoal(&args, None);
    assert_success(&output, "bench kv");
    let report: serde_json::Value = serde_json::from_str(&stdout_of(&output)).unwrap();
    assert!(report["raw"]["small_ops_per_s"].as_f64().unwrap() > 0.0);
    let labels: Vec<&str> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|target| target["label"].as_str().unwrap())
        .collect();
    for backend in ["fjall", "sled", "memory"] {
        assert!(
            labels.contains(&backend),
            "{backend} missing from {labels:?}"
        );
    }
    for target in report["targets"].as_array().unwrap() {
        let figures = &target["figures"];
        assert!(
            figures["small_ops_per_s"].as_f64().unwrap() > 0.0,
            "{target}"
        );
        assert!(
            figures["large_mb_per_s"].as_f64().unwrap() > 0.0,
            "{target}"
        );
        // Every target wrote the same workload.
        assert_eq!(
            figures["logical_bytes"], report["raw"]["logical_bytes"],
            "{target}"
        );
    }
    assert!(report["winner"].is_string());
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn an_empty_workload_is_refused() {
    for flag in ["--small-puts", "--large-puts", "--rounds"] {
        let output = shoal(&["bench", "kv", flag, "0"], None);
        let stderr = assert_failure(&output, 1, flag);
        assert!(
            stderr.contains("EINVAL") && stderr.contains(flag),
            "{stderr}"
        );
    }
}
