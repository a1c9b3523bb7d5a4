//! Bad input through the `shoal` binary against a running cluster: each mistake gets a
//! non-zero exit and an error naming what is wrong, and the map's epoch does not change.

use std::path::Path;

use shoal_tests::{describe, leader_epoch, shoal, start};

/// Runs `shoal ARGS`, expects failure with every `needles` in stderr.
fn expect_error(conf: &Path, args: &[&str], needles: &[&str]) {
    let output = shoal(conf, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "`shoal {}` succeeded:\n{}",
        args.join(" "),
        describe(&output)
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "`shoal {}` does not mention `{needle}`:\n{}",
            args.join(" "),
            describe(&output)
        );
    }
    println!("shoal {} -> {}", args.join(" "), stderr.trim());
}

fn expect_ok(conf: &Path, args: &[&str]) -> String {
    let output = shoal(conf, args);
    assert!(
        output.status.success(),
        "`shoal {}`:\n{}",
        args.join(" "),
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_named_and_changes_nothing() {
    let cluster = start(3).await;
    let conf = cluster.conf_path();
    let created = expect_ok(&conf, &["osd", "pool", "create", "p1", "8"]);
    assert!(created.contains("pool 'p1' created"), "{created}");
    expect_ok(
        &conf,
        &[
            "osd",
            "crush",
            "add-bucket",
            "rack-a",
            "rack",
            "root=default",
        ],
    );
    let got = tempfile::NamedTempFile::new().expect("a temporary file");
    expect_ok(
        &conf,
        &[
            "osd",
            "crush",
            "get-map",
            got.path().to_str().expect("utf-8 path"),
        ],
    );
    let crush_text = std::fs::read_to_string(got.path()).expect("the map file");
    assert!(crush_text.contains("rack-a"), "{crush_text}");

    let client = cluster.client().expect("a client");
    let epoch = leader_epoch(&client).await;

    expect_error(
        &conf,
        &["osd", "pool", "get", "nosuch", "size"],
        &["nosuch"],
    );
    expect_error(
        &conf,
        &["osd", "pool", "set", "nosuch", "size", "2"],
        &["nosuch"],
    );
    expect_error(
        &conf,
        &["osd", "pool", "create", "p1", "8"],
        &["p1", "exists"],
    );
    expect_error(
        &conf,
        &["osd", "pool", "create", "p2", "8", "--size", "0"],
        &["size"],
    );
    expect_error(
        &conf,
        &[
            "osd",
            "pool",
            "create",
            "p3",
            "8",
            "--size",
            "2",
            "--min-size",
            "3",
        ],
        &["min_size"],
    );
    expect_error(&conf, &["osd", "pool", "create", "p4", "0"], &["pg_num"]);
    expect_error(&conf, &["osd", "pool", "set", "p1", "size", "0"], &["size"]);
    expect_error(
        &conf,
        &[
            "osd",
            "crush",
            "rule",
            "create-replicated",
            "r1",
            "nosuchroot",
            "host",
        ],
        &["nosuchroot"],
    );
    expect_error(
        &conf,
        &["osd", "crush", "move", "default", "rack=rack-a"],
        &["cycle", "default"],
    );
    let bad_map = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(bad_map.path(), "# a CRUSH map\ndevice 0 osd.0\nbucket {\n").expect("write");
    let bad_path = bad_map.path().to_str().expect("utf-8 path");
    expect_error(
        &conf,
        &["osd", "crush", "set-map", bad_path],
        &[bad_path, "line"],
    );
    expect_error(
        &conf,
        &["osd", "pool", "rm", "p1"],
        &["yes-i-really-really-mean-it"],
    );
    expect_error(&conf, &["osd", "set", "nosuchflag"], &["nosuchflag"]);

    assert_eq!(
        leader_epoch(&client).await,
        epoch,
        "a refused command changed the epoch"
    );

    // The happy path still works, and removes the pool.
    expect_ok(
        &conf,
        &[
            "osd",
            "pool",
            "rm",
            "p1",
            "p1",
            "--yes-i-really-really-mean-it",
        ],
    );
    let pools = expect_ok(&conf, &["osd", "pool", "ls"]);
    assert!(!pools.lines().any(|line| line == "p1"), "{pools}");
}
