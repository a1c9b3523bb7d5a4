//! Every `shoal rados` object subcommand, `pg dump`, `pg stat` and `osd df` against real
//! daemons started by the launcher, cross-checked with librados: what the CLI writes,
//! librados reads, and what librados writes (compound ops, guards, namespaces), the CLI
//! reads. Nothing is compared with output the same command produced before.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use librados::{Bytes, IoCtx, OpResult, RadosError, ReadOp, Version, WriteOp};
use serde_json::Value;
use shoal_tests::{connect, create_pool, describe, pattern, shoal, shoal_binary, start_with_osds};

const POOL: &str = "cli";
const PGS: u32 = 8;

/// `shoal -c CONF rados -p cli ARGS`, with `input` on its stdin.
fn rados_with_input(conf: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(shoal_binary())
        .arg("-c")
        .arg(conf)
        .args(["rados", "-p", POOL])
        .args(args)
        .env_remove("SHOAL_CONF")
        .env_remove("SHOAL_MON_HOST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the shoal binary runs");
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(input)
        .expect("the input is written");
    child.wait_with_output().expect("shoal finishes")
}

/// `shoal -c CONF rados -p cli ARGS`, which must succeed; its stdout.
fn rados(conf: &Path, args: &[&str]) -> Vec<u8> {
    let mut full = vec!["rados", "-p", POOL];
    full.extend_from_slice(args);
    let output = shoal(conf, &full);
    assert!(output.status.success(), "{full:?}: {}", describe(&output));
    output.stdout
}

/// `shoal -c CONF rados -p cli ARGS`, which must fail with `errno` first on stderr.
fn rados_fails(conf: &Path, args: &[&str], errno: &str) {
    let mut full = vec!["rados", "-p", POOL];
    full.extend_from_slice(args);
    let output = shoal(conf, &full);
    assert!(!output.status.success(), "{full:?} succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(errno),
        "{full:?}: {errno} missing: {stderr}"
    );
}

fn json_of(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(stdout)))
}

fn lines(stdout: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

async fn omap_keys(ioctx: &IoCtx, object: &str) -> Vec<Bytes> {
    ioctx
        .omap_list_all(object, Bytes::new(), false)
        .await
        .expect("the omap lists")
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rados_cli_and_librados_agree_on_every_object_operation() {
    let mut cluster = start_with_osds(3, 3).await;
    create_pool(&mut cluster, POOL, PGS, 3, 0).await;
    let conf = cluster.conf_path();
    let rados_client = connect(&cluster).await;
    let mut ioctx = rados_client.ioctx(POOL).await.expect("the pool opens");

    // put from stdin and get to stdout, larger than one CLI op.
    let data = pattern(11, (4 << 20) + 4099);
    let put = rados_with_input(&conf, &["put", "piped", "-"], &data);
    assert!(put.status.success(), "{}", describe(&put));
    assert!(rados(&conf, &["get", "piped", "-"]) == data);
    assert!(ioctx.read("piped", 0, 0).await.expect("librados reads") == data);

    // stat, as librados sees it.
    let stat = json_of(&rados(&conf, &["stat", "piped", "--format", "json"]));
    let seen = ioctx.stat("piped").await.expect("librados stats");
    assert_eq!(stat["size"], data.len() as u64);
    assert_eq!(stat["version"], seen.version.to_string());
    let plain = String::from_utf8_lossy(&rados(&conf, &["stat", "piped"])).into_owned();
    assert!(plain.contains(&format!("size {}", data.len())), "{plain}");

    // truncate: shorter, then longer (the new tail reads as zeros).
    rados(&conf, &["truncate", "piped", "1000"]);
    assert_eq!(ioctx.stat("piped").await.expect("stat").size, 1000);
    assert!(rados(&conf, &["get", "piped", "-"]) == data[..1000]);
    rados(&conf, &["truncate", "piped", "1500"]);
    let mut grown = data[..1000].to_vec();
    grown.resize(1500, 0);
    assert!(ioctx.read("piped", 0, 0).await.expect("read") == grown);

    // xattrs: from an argument and from stdin (bytes that are not UTF-8).
    let binary = [0u8, 159, 255, 10, 7];
    rados(&conf, &["setxattr", "piped", "color", "blue"]);
    let set_from_stdin = rados_with_input(&conf, &["setxattr", "piped", "blob"], &binary);
    assert!(
        set_from_stdin.status.success(),
        "{}",
        describe(&set_from_stdin)
    );
    assert_eq!(rados(&conf, &["getxattr", "piped", "color"]), b"blue");
    assert_eq!(rados(&conf, &["getxattr", "piped", "blob"]), binary);
    assert_eq!(
        lines(&rados(&conf, &["listxattr", "piped"])),
        set(&["blob", "color"])
    );
    let xattrs = ioctx.get_xattrs("piped").await.expect("xattrs");
    assert_eq!(xattrs.get("blob").map(|v| &v[..]), Some(&binary[..]));
    rados(&conf, &["rmxattr", "piped", "color"]);
    assert_eq!(
        lines(&rados(&conf, &["listxattr", "piped"])),
        set(&["blob"])
    );
    rados_fails(&conf, &["getxattr", "piped", "color"], "ENODATA");
    assert!(matches!(
        ioctx.get_xattr("piped", "color").await,
        Err(RadosError::NoSuchXattr { .. })
    ));

    // omap: set from an argument and from stdin, read back, remove a key.
    rados(&conf, &["setomapval", "piped", "k1", "v1"]);
    let from_stdin = rados_with_input(&conf, &["setomapval", "piped", "k2"], b"second\n");
    assert!(from_stdin.status.success(), "{}", describe(&from_stdin));
    let got = json_of(&rados(
        &conf,
        &["getomapval", "piped", "k1", "--format", "json"],
    ));
    assert_eq!(got["value"], "v1");
    assert_eq!(
        String::from_utf8_lossy(&rados(&conf, &["listomapkeys", "piped"])),
        "k1\nk2\n"
    );
    let values = json_of(&rados(
        &conf,
        &["listomapvals", "piped", "--format", "json"],
    ));
    assert_eq!(values, serde_json::json!({"k1": "v1", "k2": "second\n"}));
    let fetched = ioctx
        .omap_get("piped", [Bytes::from_static(b"k2")])
        .await
        .expect("omap_get");
    assert_eq!(
        fetched.get(&Bytes::from_static(b"k2")),
        Some(&Bytes::from_static(b"second\n"))
    );
    rados(&conf, &["rmomapkey", "piped", "k1"]);
    assert_eq!(
        omap_keys(&ioctx, "piped").await,
        [Bytes::from_static(b"k2")]
    );
    rados_fails(&conf, &["getomapval", "piped", "k1"], "ENOENT");

    // librados: omap_rm and omap_clear, seen by the CLI.
    ioctx
        .omap_set(
            "piped",
            [(&b"k3"[..], &b"v3"[..]), (&b"k4"[..], &b"v4"[..])],
        )
        .await
        .expect("omap_set");
    ioctx.omap_rm("piped", [&b"k2"[..]]).await.expect("omap_rm");
    assert_eq!(
        lines(&rados(&conf, &["listomapkeys", "piped"])),
        set(&["k3", "k4"])
    );
    ioctx.omap_clear("piped").await.expect("omap_clear");
    assert!(rados(&conf, &["listomapkeys", "piped"]).is_empty());

    // Compound ops and version guards: a failed guard applies nothing.
    let version = ioctx.stat("piped").await.expect("stat").version;
    let stale = Version {
        epoch: version.epoch,
        version: version.version.saturating_sub(1),
    };
    let refused = ioctx
        .operate(
            "piped",
            WriteOp::new()
                .assert_version(stale)
                .write_full(&b"lost"[..])
                .set_xattr("guarded", &b"no"[..]),
        )
        .await;
    assert!(
        matches!(refused, Err(RadosError::VersionMismatch { actual, .. }) if actual == version),
        "{refused:?}"
    );
    assert!(rados(&conf, &["get", "piped", "-"]) == grown);
    assert_eq!(
        lines(&rados(&conf, &["listxattr", "piped"])),
        set(&["blob"])
    );
    ioctx
        .operate(
            "piped",
            WriteOp::new()
                .assert_version(version)
                .write_full(&b"replaced"[..])
                .set_xattr("guarded", &b"yes"[..])
                .omap_set([(&b"m"[..], &b"n"[..])]),
        )
        .await
        .expect("the guarded compound write");
    assert_eq!(rados(&conf, &["get", "piped", "-"]), b"replaced");
    assert_eq!(rados(&conf, &["getxattr", "piped", "guarded"]), b"yes");
    let after = ioctx.stat("piped").await.expect("stat").version;
    ioctx
        .assert_version("piped", after)
        .await
        .expect("the current version holds");
    assert!(matches!(
        ioctx.assert_version("piped", version).await,
        Err(RadosError::VersionMismatch { .. })
    ));
    let outcome = ioctx
        .operate_read(
            "piped",
            ReadOp::new()
                .assert_version(after)
                .stat()
                .read(2, 3)
                .get_xattr("guarded")
                .omap_get([Bytes::from_static(b"m")]),
        )
        .await
        .expect("the compound read");
    assert_eq!(outcome.results.len(), 5);
    assert!(matches!(&outcome.results[1], OpResult::Stat(stat) if stat.size == 8));
    assert_eq!(
        outcome.results[2],
        OpResult::Data(Bytes::from_static(b"pla"))
    );
    assert_eq!(
        outcome.results[3],
        OpResult::XattrValue(Bytes::from_static(b"yes"))
    );
    assert!(
        matches!(&outcome.results[4], OpResult::Omap(page) if page.entries == [(Bytes::from_static(b"m"), Bytes::from_static(b"n"))]),
        "{:?}",
        outcome.results[4]
    );

    // Namespaces: the same name in two namespaces is two objects; `ls` lists one
    // namespace, `ls --all` every one.
    ioctx.set_namespace("tenant");
    ioctx
        .write_full("piped", &b"in tenant"[..])
        .await
        .expect("a write in a namespace");
    ioctx.set_namespace("");
    assert_eq!(
        rados(&conf, &["-N", "tenant", "get", "piped", "-"]),
        b"in tenant"
    );
    assert_eq!(rados(&conf, &["get", "piped", "-"]), b"replaced");
    let file = cluster.dir.path().join("other.bin");
    std::fs::write(&file, b"other").expect("the input file");
    let path = file.to_str().expect("a path");
    rados(&conf, &["put", "a", path]);
    rados(&conf, &["put", "b", path]);
    assert_eq!(lines(&rados(&conf, &["ls"])), set(&["a", "b", "piped"]));
    assert_eq!(
        lines(&rados(&conf, &["-N", "tenant", "ls"])),
        set(&["piped"])
    );
    assert_eq!(
        lines(&rados(&conf, &["ls", "--all"])),
        set(&["\ta", "\tb", "\tpiped", "tenant\tpiped"])
    );

    // pg stat and pg dump count the objects where they are, from the OSDs' reports.
    let objects = 4u64;
    let stat = json_of(&shoal(&conf, &["pg", "stat", "--format", "json"]).stdout);
    assert_eq!(stat["num_pgs"], PGS);
    assert_eq!(stat["num_objects"], objects, "{stat}");
    assert_eq!(stat["by_state"], serde_json::json!({"active+clean": PGS}));
    let dump = json_of(&shoal(&conf, &["pg", "dump", "--format", "json"]).stdout);
    let rows = dump["pg_stats"].as_array().expect("pg_stats");
    assert_eq!(rows.len(), PGS as usize);
    let mut counted = 0;
    for row in rows {
        let acting: BTreeSet<i64> = row["acting"]
            .as_array()
            .expect("acting")
            .iter()
            .filter_map(Value::as_i64)
            .collect();
        assert_eq!(acting.len(), 3, "{row}");
        assert_eq!(row["acting_primary"], row["acting"][0], "{row}");
        assert_eq!(
            row["up"], row["acting"],
            "a healthy PG is served by CRUSH's OSDs: {row}"
        );
        counted += row["num_objects"].as_u64().expect("num_objects");
    }
    assert_eq!(counted, objects);
    let holder = ioctx
        .osd_map("a")
        .expect("the mapping")
        .mapping
        .pgid
        .to_string();
    let row = rows
        .iter()
        .find(|row| row["pgid"] == holder)
        .expect("the PG of `a` is listed");
    assert!(row["num_objects"].as_u64() >= Some(1), "{row}");
    let plain = String::from_utf8_lossy(&shoal(&conf, &["pg", "stat"]).stdout).into_owned();
    assert!(
        plain.starts_with(&format!("{PGS} pgs: {PGS} active+clean; {objects} objects")),
        "{plain}"
    );

    // osd df: one row per OSD, each holding a share of the PGs.
    let df = json_of(&shoal(&conf, &["osd", "df", "--format", "json"]).stdout);
    let nodes = df["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    let pgs: u64 = nodes.iter().filter_map(|node| node["pgs"].as_u64()).sum();
    assert_eq!(pgs, u64::from(PGS) * 3, "{df}");

    // rm: several at once; they are gone for the CLI and for librados.
    rados(&conf, &["rm", "a", "b"]);
    assert_eq!(lines(&rados(&conf, &["ls"])), set(&["piped"]));
    rados_fails(&conf, &["stat", "a"], "ENOENT");
    assert!(matches!(
        ioctx.stat("b").await,
        Err(RadosError::NotFound { .. })
    ));
    rados_fails(&conf, &["rm", "a"], "ENOENT");

    // bench prints a progress line each second, whose counts only grow, then its summary.
    let bench = rados(&conf, &["bench", "3", "write", "-b", "4K", "-t", "2"]);
    let text = String::from_utf8_lossy(&bench);
    let progress: Vec<Vec<&str>> = text
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields.len() == 8 && fields[0].parse::<u64>().is_ok())
        .collect();
    let seconds: Vec<u64> = progress.iter().map(|f| f[0].parse().unwrap_or(0)).collect();
    assert!(
        seconds.starts_with(&[0, 1, 2]),
        "progress lines for seconds 0, 1, 2:\n{text}"
    );
    let finished: Vec<u64> = progress.iter().map(|f| f[3].parse().unwrap_or(0)).collect();
    assert!(finished.windows(2).all(|w| w[0] <= w[1]), "{text}");
    let total: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("Total writes made:"))
        .and_then(|rest| rest.trim().parse().ok())
        .expect("a summary");
    assert!(
        total >= *finished.last().unwrap_or(&0) && total > 0,
        "{text}"
    );
    assert_eq!(
        lines(&rados(&conf, &["ls"])),
        set(&["piped"]),
        "bench cleans up"
    );
}
