//! Helpers shared by the CLI's black-box tests: running the built `shoal` binary and
//! finding the test data (the CRUSH golden vectors live in the crush crate).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The crush crate's test data (maps, vectors, manifest); a missing directory fails the
/// test rather than skipping it.
pub fn crush_data_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crush/tests/data");
    assert!(
        dir.join("manifest.json").is_file(),
        "CRUSH test data missing at {}",
        dir.display()
    );
    dir
}

/// This crate's own test data (crushtool reports).
pub fn cli_data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Reads a file of the crush test data, gunzipping `NAME.gz` when only that exists.
pub fn read_crush_data(rel: &str) -> String {
    let path = crush_data_dir().join(rel);
    if path.is_file() {
        return std::fs::read_to_string(&path).unwrap();
    }
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(&gz).unwrap_or_else(|e| panic!("{}: {e}", gz.display())),
    )
    .read_to_string(&mut text)
    .unwrap();
    text
}

/// Runs `shoal ARGS`, feeding `stdin` if given.
pub fn shoal<S: AsRef<std::ffi::OsStr>>(args: &[S], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the shoal binary");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Standard output as text.
pub fn stdout_of(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// Standard error as text.
pub fn stderr_of(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// Fails with the command's stderr unless it exited with 0.
pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what}: exit {:?}, stderr: {}",
        output.status.code(),
        stderr_of(output)
    );
}

/// Fails unless the command exited with `code` and said nothing on stdout; returns stderr.
pub fn assert_failure(output: &Output, code: i32, what: &str) -> String {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: stdout {:?}, stderr {:?}",
        stdout_of(output),
        stderr_of(output)
    );
    assert!(
        output.stdout.is_empty(),
        "{what}: printed {:?}",
        stdout_of(output)
    );
    stderr_of(output)
}
