//! The replicated data path end to end: 3 monitors, 4 OSDs and a size-3 pool. 10,000
//! objects from 0 B to 8 MiB (mostly small, a few large: about 250 MB) are written with 16
//! in flight, some with xattrs and omap in the same compound op, then read back
//! byte-identical (whole, and a slice of each) with their xattrs and omap; the listing
//! names exactly those objects.
//! Finally every OSD's own store is scanned (`PgScan` with digests): every object is on
//! exactly the OSDs of its PG's acting set in the client's map, each copy at the version
//! the write was acknowledged with and with the same digest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use librados::{IoCtx, Version, WriteOp};
use shoal_tests::{
    assert_placed_consistently, connect, create_pool, disk_usage_of_files_named, pattern,
    start_with_osds, stored_copies,
};

const OBJECTS: usize = 10_000;
const IN_FLIGHT: usize = 16;
const POOL: &str = "data";

/// Object `i`'s size: 0 B and 8 MiB exactly once each, then every 500th object 4-8 MiB,
/// every 100th 256 KiB-1 MiB, every 10th 16-64 KiB, the rest 0-4 KiB.
fn size_of(i: usize) -> usize {
    let spread = i.wrapping_mul(7919);
    match i {
        0 => 0,
        1 => 8 << 20,
        _ if i.is_multiple_of(500) => (4 << 20) + spread % (4 << 20),
        _ if i.is_multiple_of(100) => (256 << 10) + spread % (768 << 10),
        _ if i.is_multiple_of(10) => (16 << 10) + spread % (48 << 10),
        _ => spread % 4097,
    }
}

fn name_of(i: usize) -> String {
    format!("obj-{i:05}")
}

/// Every 7th object also gets xattrs and omap entries, in the same op as its data.
fn has_metadata(i: usize) -> bool {
    i.is_multiple_of(7)
}

fn xattrs_of(i: usize) -> BTreeMap<String, Vec<u8>> {
    BTreeMap::from([
        ("user.index".to_owned(), i.to_string().into_bytes()),
        (
            "user.blob".to_owned(),
            pattern(i as u64 + 1_000_000, i % 300),
        ),
    ])
}

fn omap_of(i: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..=i % 5)
        .map(|j| {
            (
                format!("key-{j:02}").into_bytes(),
                pattern((i * 10 + j) as u64, 10 + j * 100),
            )
        })
        .collect()
}

/// Runs `work(i)` for every object index with `IN_FLIGHT` tasks.
async fn for_each_object<F, Fut>(work: F)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let next = Arc::clone(&next);
        let work = Arc::clone(&work);
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= OBJECTS {
                    return;
                }
                work(i).await;
            }
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        outcome.expect("a worker panicked");
    }
}

fn megabytes_per_second(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
}

async fn write_all(ioctx: &IoCtx) -> Vec<Version> {
    let versions = Arc::new(Mutex::new(vec![None; OBJECTS]));
    let shared = (ioctx.clone(), Arc::clone(&versions));
    for_each_object(move |i| {
        let (ioctx, versions) = shared.clone();
        async move {
            let name = name_of(i);
            let data = pattern(i as u64, size_of(i));
            let mut op = WriteOp::new().write_full(data);
            if has_metadata(i) {
                for (key, value) in xattrs_of(i) {
                    op = op.set_xattr(key, value);
                }
                op = op.omap_set(omap_of(i));
            }
            let version = ioctx
                .operate(&name, op)
                .await
                .unwrap_or_else(|error| panic!("write {name}: {error}"));
            versions.lock().unwrap()[i] = Some(version);
        }
    })
    .await;
    let versions = versions.lock().unwrap();
    versions
        .iter()
        .map(|version| version.expect("every write was acknowledged"))
        .collect()
}

async fn read_all(ioctx: &IoCtx, versions: &[Version]) {
    let shared = (ioctx.clone(), Arc::new(versions.to_vec()));
    for_each_object(move |i| {
        let (ioctx, versions) = shared.clone();
        async move {
            let name = name_of(i);
            let data = ioctx
                .read(&name, 0, 0)
                .await
                .unwrap_or_else(|error| panic!("read {name}: {error}"));
            let expected = pattern(i as u64, size_of(i));
            assert_eq!(data.len(), expected.len(), "size of {name}");
            assert!(data == expected, "{name} reads back different bytes");
            // A read of a given length (over the op link when it is small) gets that slice.
            if !expected.is_empty() {
                let offset = expected.len() / 3;
                let length = (expected.len() - offset).min(40 << 10);
                let part = ioctx
                    .read(&name, offset as u64, length as u64)
                    .await
                    .unwrap_or_else(|error| panic!("ranged read of {name}: {error}"));
                assert!(
                    part == expected[offset..offset + length],
                    "{name} reads back different bytes at {offset}+{length}"
                );
            }
            let stat = ioctx
                .stat(&name)
                .await
                .unwrap_or_else(|error| panic!("stat {name}: {error}"));
            assert_eq!(stat.size, expected.len() as u64, "stat size of {name}");
            assert_eq!(stat.version, versions[i], "stat version of {name}");
            if has_metadata(i) {
                let xattrs: BTreeMap<String, Vec<u8>> = ioctx
                    .get_xattrs(&name)
                    .await
                    .unwrap_or_else(|error| panic!("xattrs of {name}: {error}"))
                    .into_iter()
                    .map(|(key, value)| (key, value.to_vec()))
                    .collect();
                assert_eq!(xattrs, xattrs_of(i), "xattrs of {name}");
                let omap: Vec<(Vec<u8>, Vec<u8>)> = ioctx
                    .omap_list_all(&name, Vec::new(), true)
                    .await
                    .unwrap_or_else(|error| panic!("omap of {name}: {error}"))
                    .into_iter()
                    .map(|(key, value)| (key.to_vec(), value.to_vec()))
                    .collect();
                assert_eq!(omap, omap_of(i), "omap of {name}");
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_objects_round_trip_and_sit_exactly_where_crush_says() {
    let mut cluster = start_with_osds(3, 4).await;
    let pool_id = create_pool(&mut cluster, POOL, 32, 3, 2).await;
    let rados = connect(&cluster).await;
    let ioctx = rados.ioctx(POOL).await.expect("the pool's context");
    let total: usize = (0..OBJECTS).map(size_of).sum();

    let start = Instant::now();
    let versions = write_all(&ioctx).await;
    let elapsed = start.elapsed();
    println!(
        "wrote {OBJECTS} objects, {:.1} MiB, in {:.1} s ({:.1} MiB/s, {:.0} objects/s, {IN_FLIGHT} in flight)",
        total as f64 / (1 << 20) as f64,
        elapsed.as_secs_f64(),
        megabytes_per_second(total, elapsed),
        OBJECTS as f64 / elapsed.as_secs_f64()
    );

    let start = Instant::now();
    read_all(&ioctx, &versions).await;
    let elapsed = start.elapsed();
    println!(
        "read back and compared in {:.1} s ({:.1} MiB/s)",
        elapsed.as_secs_f64(),
        megabytes_per_second(total, elapsed)
    );

    // Whole 64 KiB chunks of incompressible data live in the OSDs' block files, written
    // once per copy: at least that much of the block files is written.
    let whole_chunks: u64 = (0..OBJECTS).map(|i| (size_of(i) as u64 >> 16) << 16).sum();
    let in_blocks = disk_usage_of_files_named(cluster.dir(), "blocks");
    assert!(
        in_blocks >= 3 * whole_chunks,
        "block files hold {in_blocks} bytes, less than 3 x {whole_chunks} bytes of whole chunks"
    );

    let listed: BTreeSet<String> = ioctx
        .list_objects()
        .collect_all()
        .await
        .expect("the listing")
        .into_iter()
        .map(|entry| {
            assert_eq!(entry.namespace, "", "{entry:?}");
            entry.name
        })
        .collect();
    let expected: BTreeSet<String> = (0..OBJECTS).map(name_of).collect();
    assert_eq!(listed.len(), OBJECTS, "listed objects");
    assert!(
        listed == expected,
        "the listing names exactly the objects written"
    );

    // Every OSD's own store: who holds what, at which version, with which digest.
    let start = Instant::now();
    let map = rados.map();
    let copies = stored_copies(&map, pool_id).await;
    println!(
        "scanned {} PGs on {} OSDs with digests in {:.1} s",
        map.pool(pool_id).expect("the pool").pg_num,
        map.osds().len(),
        start.elapsed().as_secs_f64()
    );
    let stray: Vec<&String> = copies
        .keys()
        .filter(|name| !expected.contains(*name))
        .collect();
    assert!(stray.is_empty(), "objects nobody wrote: {stray:?}");
    for (i, acknowledged) in versions.iter().enumerate() {
        let name = name_of(i);
        let version = assert_placed_consistently(&map, POOL, &name, &copies);
        assert_eq!(
            version,
            (acknowledged.epoch, acknowledged.version),
            "{name}: the stored version is not the acknowledged one"
        );
        assert_eq!(copies[&name][0].size, size_of(i) as u64, "{name} size");
        assert_eq!(
            map.osd_map(POOL, &name, "")
                .expect("a mapping")
                .mapping
                .acting
                .len(),
            3,
            "{name} has 3 replicas"
        );
    }
    cluster.cluster.shutdown().await.expect("a clean shutdown");
}
