//! Local mistakes in `shoal rados ...` fail before any cluster is contacted, with a message
//! naming the mistake (exit code 1 for checks of ours, 2 for clap's usage errors), and
//! never a panic. The config names a monitor address nobody listens on: a command that
//! tried to connect would fail differently (no monitor answered).

mod common;

use common::*;

/// A file under the temporary directory, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(name: &str, content: &str) -> TempFile {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "shoal-rados-args-{}-{unique}-{name}",
            std::process::id()
        ));
        std::fs::write(&path, content).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A config file whose monitor does not exist.
fn dead_conf() -> TempFile {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    TempFile::new("shoal.conf", &format!("[client]\nmon_host = \"{addr}\"\n"))
}

fn run(args: &[&str]) -> std::process::Output {
    let conf = dead_conf();
    let mut all = vec!["-c", conf.path().to_str().unwrap()];
    all.extend_from_slice(args);
    shoal(&all, None)
}

#[test]
fn a_missing_input_file_is_named() {
    let output = run(&[
        "rados",
        "-p",
        "data",
        "put",
        "obj",
        "/nonexistent/input.bin",
    ]);
    let stderr = assert_failure(&output, 1, "put from a missing file");
    assert!(stderr.contains("/nonexistent/input.bin"), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn a_missing_pool_argument_is_named() {
    let input = TempFile::new("input", "data");
    let output = run(&["rados", "put", "obj", input.path().to_str().unwrap()]);
    let stderr = assert_failure(&output, 1, "put without -p");
    assert!(stderr.contains("-p POOL"), "{stderr}");
}

#[test]
fn an_output_file_in_a_missing_directory_is_named() {
    let output = run(&[
        "rados",
        "-p",
        "data",
        "get",
        "obj",
        "/nonexistent/dir/out.bin",
    ]);
    let stderr = assert_failure(&output, 1, "get into a missing directory");
    assert!(stderr.contains("/nonexistent/dir"), "{stderr}");
}

#[test]
fn bad_bench_arguments_are_named() {
    let stderr = assert_failure(
        &run(&["rados", "-p", "data", "bench", "0", "write"]),
        1,
        "bench 0",
    );
    assert!(stderr.contains("SECONDS"), "{stderr}");
    let stderr = assert_failure(
        &run(&["rados", "-p", "data", "bench", "5", "write", "-t", "0"]),
        1,
        "bench -t 0",
    );
    assert!(stderr.contains("-t"), "{stderr}");
    let stderr = assert_failure(
        &run(&["rados", "-p", "data", "bench", "5", "write", "-b", "4X"]),
        2,
        "bench -b 4X",
    );
    assert!(stderr.contains("unknown unit"), "{stderr}");
    let stderr = assert_failure(
        &run(&["rados", "-p", "data", "bench", "5", "scribble"]),
        2,
        "bench with an unknown mode",
    );
    assert!(stderr.contains("scribble"), "{stderr}");
    let stderr = assert_failure(
        &run(&["rados", "-p", "data", "bench", "5", "write", "-b", "1G"]),
        1,
        "bench -b 1G",
    );
    assert!(stderr.contains("128 MiB"), "{stderr}");
}

#[test]
fn an_unreachable_cluster_is_reported_not_hung() {
    let output = run(&["rados", "-p", "data", "ls"]);
    let stderr = assert_failure(&output, 1, "ls without monitors");
    assert!(stderr.contains("no monitor answered"), "{stderr}");
}
