//! Full OSDs (Ceph's `OSD_FULL`): 3 monitors and 3 OSDs, each given a 512 MiB capacity, and
//! a size-3 pool, so every OSD holds every object. Objects of 1 MiB of random bytes are
//! written until a write is refused: the refusal is a typed no-space error (ENOSPC from the
//! CLI), the monitors report `OSD_FULL`, and every write acknowledged before reads back
//! intact. While full, writes that add data are refused but removals and truncations go on;
//! once enough is removed, the monitors clear the mark and writes succeed again, and the
//! cluster returns to `HEALTH_OK` with the remaining objects intact.

use std::time::Duration;

use deploy::ClusterSpec;
use librados::{IoCtx, RadosError};
use shoal_tests::{connect, create_pool, describe, pattern, shoal, start_with, wait_for};

const POOL: &str = "filling";
const CAPACITY: u64 = 512 << 20;
const OBJECT_BYTES: usize = 1 << 20;
/// More objects than fit: the loop fails if no write is ever refused.
const MAX_OBJECTS: u64 = 700;

fn name(n: u64) -> String {
    format!("fill-{n:04}")
}

async fn health_checks(cluster: &deploy::Cluster) -> Result<(String, Vec<String>), String> {
    let status = cluster
        .client()
        .map_err(|error| error.to_string())?
        .status()
        .await
        .map_err(|error| error.to_string())?;
    let health = status.health.ok_or("no health from this monitor")?;
    Ok((
        health.status,
        health.checks.into_iter().map(|check| check.code).collect(),
    ))
}

fn cli_json(cluster: &deploy::Cluster, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let output = shoal(&cluster.conf_path(), &all);
    assert!(output.status.success(), "{}", describe(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "`shoal {}` is not JSON: {error}\n{}",
            all.join(" "),
            describe(&output)
        )
    })
}

async fn check_objects(ioctx: &IoCtx, objects: impl Iterator<Item = u64>, when: &str) {
    for n in objects {
        let data = ioctx
            .read(&name(n), 0, 0)
            .await
            .unwrap_or_else(|error| panic!("{when}: reading {}: {error}", name(n)));
        assert!(
            data[..] == pattern(n, OBJECT_BYTES)[..],
            "{when}: {} does not read back as written",
            name(n)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_refuses_writes_that_need_space_keeps_what_it_acknowledged_and_recovers_once_space_is_freed(
) {
    let mut spec = ClusterSpec::for_tests_with_osds(3, 3);
    spec.osd_settings.capacity_bytes = Some(CAPACITY);
    let mut cluster = start_with(spec).await;
    create_pool(&mut cluster, POOL, 16, 3, 2).await;
    let rados = connect(&cluster).await;
    let ioctx = rados.ioctx(POOL).await.expect("the pool's context");

    let mut written = 0u64;
    let (object, reason) = loop {
        assert!(
            written < MAX_OBJECTS,
            "{written} MiB written on OSDs of {} MiB and no write was refused",
            CAPACITY >> 20
        );
        match ioctx
            .write_full(&name(written), pattern(written, OBJECT_BYTES))
            .await
        {
            Ok(_) => written += 1,
            Err(RadosError::NoSpace { object, reason }) => break (object, reason),
            Err(other) => panic!(
                "writing {}: expected success or no space: {other}",
                name(written)
            ),
        }
    };
    println!("write {written} refused: {object}: {reason}");
    assert_eq!(object, name(written));
    assert!(
        reason.contains("osd."),
        "the refusal names the full OSD: {reason}"
    );
    assert!(
        written >= 100,
        "only {written} MiB fit in OSDs of {} MiB",
        CAPACITY >> 20
    );

    let (status, codes) = wait_for(
        "OSD_FULL in the health",
        Duration::from_secs(30),
        || async {
            let (status, codes) = health_checks(&cluster).await?;
            if codes.iter().any(|code| code == "OSD_FULL") {
                Ok((status, codes))
            } else {
                Err(format!("{status} {codes:?}"))
            }
        },
    )
    .await;
    assert_eq!(status, "HEALTH_ERR", "{codes:?}");
    let dump = cli_json(&cluster, &["osd", "dump"]);
    let full_osds: Vec<&serde_json::Value> = dump["osds"]
        .as_array()
        .expect("osds in the dump")
        .iter()
        .filter(|osd| {
            osd["state"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s == "full"))
        })
        .collect();
    assert!(!full_osds.is_empty(), "no OSD shown full: {dump}");
    let df = cli_json(&cluster, &["osd", "df"]);
    for node in df["nodes"].as_array().expect("nodes in osd df") {
        assert_eq!(
            node["kb"],
            CAPACITY / 1024,
            "the capacity is the OSD's size: {node}"
        );
    }

    // While full: nothing that adds data, from the library or the CLI; everything acknowledged
    // reads back; removals and truncations are accepted.
    assert!(matches!(
        ioctx.set_xattr(&name(0), "user.more", vec![7u8; 64]).await,
        Err(RadosError::NoSpace { .. })
    ));
    assert!(matches!(
        ioctx.append(&name(1), vec![1u8; 4096]).await,
        Err(RadosError::NoSpace { .. })
    ));
    let file = cluster.dir().join("more.bin");
    std::fs::write(&file, pattern(u64::MAX, 4096)).expect("a file to put");
    let put = shoal(
        &cluster.conf_path(),
        &[
            "rados",
            "-p",
            POOL,
            "put",
            "from-cli",
            file.to_str().unwrap(),
        ],
    );
    assert!(!put.status.success(), "{}", describe(&put));
    assert!(
        String::from_utf8_lossy(&put.stderr).contains("ENOSPC"),
        "{}",
        describe(&put)
    );
    check_objects(&ioctx, 0..written, "while full").await;
    assert!(
        matches!(
            ioctx.stat(&name(written)).await,
            Err(RadosError::NotFound { .. })
        ),
        "the refused write left no object"
    );

    ioctx
        .truncate(&name(0), 0)
        .await
        .expect("a truncation is accepted while full");
    let kept = written / 4;
    for n in kept..written {
        ioctx
            .remove(&name(n))
            .await
            .unwrap_or_else(|error| panic!("removing {} while full: {error}", name(n)));
    }

    // The space is measured again, the monitors clear the mark, and writes are accepted.
    wait_for(
        "a write accepted again",
        Duration::from_secs(60),
        || async {
            match ioctx.write_full("after", pattern(9, OBJECT_BYTES)).await {
                Ok(_) => Ok(()),
                Err(error) => Err(error.to_string()),
            }
        },
    )
    .await;
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .expect("HEALTH_OK once space is freed");
    check_objects(&ioctx, 1..kept, "after freeing space").await;
    assert_eq!(
        ioctx
            .stat(&name(0))
            .await
            .expect("the truncated object")
            .size,
        0
    );
    let after = ioctx.read("after", 0, 0).await.expect("the new object");
    assert!(after[..] == pattern(9, OBJECT_BYTES)[..]);
}
