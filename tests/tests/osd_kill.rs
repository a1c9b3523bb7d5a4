//! `kill -9` of one OSD under load: 3 monitors, 4 OSDs, a size-3 min_size-2 pool and four
//! writers running throughout, each recording every write that was acknowledged. The
//! killed OSD is marked down within the heartbeat grace plus a few seconds (test timings:
//! grace 2 s); writes go on (none fails); every acknowledged write reads back with its
//! content while the OSD is down, and again after it restarted with the same data
//! directory and the cluster is healthy again.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deploy::OsdTimings;
use librados::IoCtx;
use shoal_tests::{
    assert_placed_consistently, connect, create_pool, pattern, start_with_osds, stored_copies,
};

const POOL: &str = "kill";
const WRITERS: usize = 4;

/// What the writers saw: acknowledged writes by object, and failures.
#[derive(Default)]
struct Record {
    /// object -> the seed of its acknowledged content and when it was acknowledged.
    acked: BTreeMap<String, (u64, Instant)>,
    failed: Vec<String>,
}

fn content(seed: u64) -> Vec<u8> {
    pattern(seed, 512 + (seed as usize * 331) % 16_384)
}

/// Writes objects (some rewritten, so the latest acknowledged content is what counts)
/// until `stop`; one writer per task.
async fn writer(
    ioctx: IoCtx,
    writer: usize,
    stop: Arc<AtomicBool>,
    seq: Arc<AtomicUsize>,
    record: Arc<Mutex<Record>>,
) {
    let mut k = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Every fifth write rewrites an earlier object of this writer.
        let object = if k % 5 == 4 {
            format!("w{writer}-{}", k / 2)
        } else {
            format!("w{writer}-{k}")
        };
        let seed = seq.fetch_add(1, Ordering::Relaxed) as u64;
        match ioctx.write_full(&object, content(seed)).await {
            Ok(_) => {
                record
                    .lock()
                    .unwrap()
                    .acked
                    .insert(object, (seed, Instant::now()));
            }
            Err(error) => record
                .lock()
                .unwrap()
                .failed
                .push(format!("{object}: {error}")),
        }
        k += 1;
    }
}

/// Reads every acknowledged object back (8 readers) and compares it with its last
/// acknowledged content.
async fn check_all(ioctx: &IoCtx, acked: &BTreeMap<String, (u64, Instant)>, when: &str) {
    let entries: Vec<(String, u64)> = acked
        .iter()
        .map(|(object, (seed, _))| (object.clone(), *seed))
        .collect();
    let mut readers = tokio::task::JoinSet::new();
    for part in entries.chunks(entries.len().div_ceil(8).max(1)) {
        let part = part.to_vec();
        let ioctx = ioctx.clone();
        let when = when.to_owned();
        readers.spawn(async move {
            for (object, seed) in part {
                let data = ioctx
                    .read(&object, 0, 0)
                    .await
                    .unwrap_or_else(|error| panic!("{when}: read {object}: {error}"));
                assert!(
                    data == content(seed),
                    "{when}: {object} does not hold its last acknowledged content"
                );
            }
        });
    }
    while let Some(outcome) = readers.join_next().await {
        outcome.expect("a reader panicked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_osd_is_marked_down_and_no_acknowledged_write_is_lost() {
    let mut cluster = start_with_osds(3, 4).await;
    create_pool(&mut cluster, POOL, 16, 3, 2).await;
    let rados = connect(&cluster).await;
    let ioctx = rados.ioctx(POOL).await.expect("the pool's context");

    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicUsize::new(0));
    let record = Arc::new(Mutex::new(Record::default()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            tokio::spawn(writer(
                ioctx.clone(),
                n,
                Arc::clone(&stop),
                Arc::clone(&seq),
                Arc::clone(&record),
            ))
        })
        .collect();
    let acked = |record: &Mutex<Record>| record.lock().unwrap().acked.len();
    shoal_tests::wait_for("writes before the kill", Duration::from_secs(30), || {
        let count = acked(&record);
        async move { (count >= 200).then_some(()).ok_or(format!("{count} acked")) }
    })
    .await;

    // The victim: the primary of the first object written.
    let victim_id = ioctx
        .osd_map("w0-0")
        .expect("a mapping")
        .mapping
        .acting_primary;
    let victim = cluster.osd_number(victim_id).expect("a launched OSD");
    let killed_at = Instant::now();
    cluster.kill_osd(victim).await.expect("kill -9 the OSD");
    let grace = Duration::from_millis(
        OsdTimings::fast()
            .heartbeat_grace_ms
            .expect("fast timings set the grace"),
    );
    let allowed = grace + Duration::from_secs(6);
    let down_after = cluster
        .wait_osd_down(victim_id, allowed + Duration::from_secs(20))
        .await
        .expect("the killed OSD is marked down");
    let down_at = killed_at + down_after;
    println!(
        "osd.{victim_id} killed; marked down after {:.2} s (grace {:.1} s); {} writes acked so far",
        down_after.as_secs_f64(),
        grace.as_secs_f64(),
        acked(&record)
    );
    assert!(
        down_after <= allowed,
        "marked down after {down_after:?}, more than grace + 6 s"
    );

    // Writes go on while it is down.
    let before = acked(&record);
    shoal_tests::wait_for(
        "writes acknowledged after the OSD was marked down",
        Duration::from_secs(30),
        || {
            let count = acked(&record);
            async move {
                (count >= before + 200)
                    .then_some(())
                    .ok_or(format!("{} more acked", count - before))
            }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for task in writers {
        task.await.expect("a writer panicked");
    }
    let (acked_writes, failed) = {
        let record = record.lock().unwrap();
        (record.acked.clone(), record.failed.clone())
    };
    let after_down = acked_writes
        .values()
        .filter(|(_, at)| *at > down_at)
        .count();
    println!(
        "{} objects with acknowledged writes ({after_down} acknowledged after the OSD was \
         marked down), {} failed writes, {} writes in all",
        acked_writes.len(),
        failed.len(),
        seq.load(Ordering::Relaxed)
    );
    assert!(failed.is_empty(), "writes failed: {failed:?}");
    assert!(
        after_down > 0,
        "no write was acknowledged after the down mark"
    );

    let start = Instant::now();
    check_all(&ioctx, &acked_writes, "while the OSD is down").await;
    println!(
        "read back {} objects while osd.{victim_id} is down in {:.1} s",
        acked_writes.len(),
        start.elapsed().as_secs_f64()
    );

    // Back with the same data directory: same id, and every write is still there.
    cluster.restart_osd(victim).await.expect("restart the OSD");
    assert_eq!(cluster.osd_id(victim).expect("its id"), victim_id);
    check_all(&ioctx, &acked_writes, "after the restart").await;
    let start = Instant::now();
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .expect("HEALTH_OK once the OSD is back");
    println!(
        "HEALTH_OK {:.1} s after the restart",
        start.elapsed().as_secs_f64()
    );
    check_all(&ioctx, &acked_writes, "once healthy again").await;
    // Healthy means every replica is whole again: the restarted OSD caught up with the
    // writes it missed, in its own store.
    let map = rados.map();
    let copies = stored_copies(&map, ioctx.pool_id()).await;
    for object in acked_writes.keys() {
        assert_placed_consistently(&map, POOL, object, &copies);
    }
    cluster.cluster.shutdown().await.expect("a clean shutdown");
}
