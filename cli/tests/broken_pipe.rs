//! `shoal ... | head`: when the reader of standard output goes away, `shoal` ends quietly
//! with status 0 instead of panicking with "failed printing to stdout: Broken pipe", both
//! for the text the cluster commands print line by line and for the reports the offline
//! CRUSH tools write through a buffer.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use common::*;

/// Fails unless `shoal` exited with 0 and said nothing about the closed pipe.
fn assert_quiet(output: &Output, what: &str) {
    let stderr = stderr_of(output);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: stderr {stderr:?}"
    );
    assert_success(output, what);
}

#[test]
fn printed_lines_meet_a_closed_pipe_quietly() {
    // `cluster down` on a directory whose state file records no daemon prints one line
    // ("nothing to stop in DIR") and needs no cluster. Its standard output is a pipe whose
    // reading end is closed before it starts, so that line meets a closed pipe every time.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cluster.json"),
        r#"{"format_version": 1, "mon_binary": "/nonexistent/shoal-mon", "spec": {}, "mons": []}"#,
    )
    .unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["cluster", "down", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run the shoal binary");
    assert_quiet(&output, "cluster down into a closed pipe");
}

#[test]
fn a_reader_that_stops_early_ends_a_long_report_quietly() {
    // Tens of thousands of mapping lines; the reader takes the first and goes away.
    let map = crush_data_dir().join("maps/racks3.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["crush", "test", "--map"])
        .arg(&map)
        .args([
            "--rule",
            "0",
            "--num-rep",
            "3",
            "--min-x",
            "0",
            "--max-x",
            "199999",
        ])
        .arg("--show-mappings")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the shoal binary");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("CRUSH rule 0 x 0 ["), "{first:?}");
    let output = child.wait_with_output().unwrap();
    assert_quiet(&output, "crush test | head -1");
}
