//! `cargo bench -p kv`: runs `kv::bench` with its default workload and prints the table.
//!
//! The directory is `$KV_BENCH_DIR` when set (point it at the disk you care about), else a
//! fresh directory under the system temp dir. Run without `--bench` (as `cargo test
//! --all-targets` does), it runs a tiny workload only, to check the benchmark still works.

use std::path::PathBuf;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let base = std::env::var_os("KV_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("kv-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the benchmark directory");
    let mut config = kv::bench::BenchConfig::default();
    if !full {
        config.small_puts = 16;
        config.large_puts = 2;
        config.rounds = 2;
    }
    let report = kv::bench::run(&dir, &config).expect("run the storage benchmark");
    std::fs::remove_dir(&dir).expect("remove the (emptied) benchmark directory");
    if !full {
        println!("smoke run (no --bench): a tiny workload, its figures mean nothing");
    }
    print!("{report}");
    assert!(
        report.winner.is_some(),
        "a durable backend must be measured"
    );
    assert!(report
        .targets
        .iter()
        .all(|target| target.figures.small_ops_per_sec > 0.0));
}
