//! `min_size`: 3 monitors, 3 OSDs, a size-3 min_size-2 pool (every PG on all three OSDs).
//! With two OSDs killed, a write does not succeed with a single copy: it waits, then fails
//! with a timeout error naming the object (short client op timeout; the OSDs give up on a
//! waiting op after 1.5 s and say BUSY, and the client resends until its own timeout), and
//! the surviving OSD's store does not hold it. Once one OSD returns, writes succeed again.

use std::time::{Duration, Instant};

use deploy::ClusterSpec;
use librados::RadosError;
use shoal_tests::{
    connect, connect_with_op_timeout, create_pool, osd_admin, pattern, scan_pg, start_with,
};

const POOL: &str = "guarded";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wait_then_time_out_below_min_size_and_resume_when_an_osd_returns() {
    let mut spec = ClusterSpec::for_tests_with_osds(3, 3);
    spec.osd_timings.op_timeout_ms = Some(1_500);
    let mut cluster = start_with(spec).await;
    create_pool(&mut cluster, POOL, 8, 3, 2).await;
    let rados = connect(&cluster).await;
    let ioctx = rados.ioctx(POOL).await.expect("the pool's context");
    ioctx
        .write_full("before", pattern(1, 4096))
        .await
        .expect("a write with every OSD up");

    // Kill two of the three OSDs; the survivor is the one CRUSH puts last for "blocked".
    let acting = ioctx.osd_map("blocked").expect("a mapping").mapping.acting;
    assert_eq!(acting.len(), 3, "{acting:?}");
    let survivor_id = acting[2];
    let survivor = cluster.osd_number(survivor_id).expect("a launched OSD");
    let mut killed = Vec::new();
    for id in &acting[..2] {
        let n = cluster.osd_number(*id).expect("a launched OSD");
        cluster.kill_osd(n).await.expect("kill -9");
        killed.push((n, *id));
    }
    for (_, id) in &killed {
        cluster
            .wait_osd_down(*id, Duration::from_secs(30))
            .await
            .expect("the killed OSDs are marked down");
    }

    // A single copy is not enough: the write waits, then fails with a timeout.
    let short = connect_with_op_timeout(&cluster, CLIENT_TIMEOUT).await;
    let short_ioctx = short.ioctx(POOL).await.expect("the pool's context");
    let start = Instant::now();
    let outcome = short_ioctx.write_full("blocked", pattern(2, 4096)).await;
    let waited = start.elapsed();
    println!(
        "write below min_size ended after {:.2} s: {outcome:?}",
        waited.as_secs_f64()
    );
    match &outcome {
        Err(RadosError::Timeout { object, .. }) => assert_eq!(object, "blocked"),
        other => panic!("expected a timeout error below min_size, got {other:?}"),
    }
    let message = outcome.unwrap_err().to_string();
    assert!(
        message.contains("timed out") && message.contains("blocked"),
        "{message}"
    );
    assert!(
        waited >= CLIENT_TIMEOUT - Duration::from_millis(200),
        "it failed after {waited:?}, before the op timeout: it did not wait"
    );
    assert!(
        waited < CLIENT_TIMEOUT + Duration::from_secs(5),
        "it took {waited:?}, far beyond the op timeout"
    );
    // Nothing was applied on the lone survivor.
    let map = rados.map();
    let pg = ioctx.osd_map("blocked").expect("a mapping").mapping.pgid;
    let addr = cluster.osd_addr(survivor).expect("the survivor's address");
    let held = scan_pg(&mut osd_admin(&addr), u64::from(map.epoch()), pg, false)
        .await
        .expect("scan the survivor");
    assert!(
        held.iter()
            .all(|object| object.object.as_ref().map(|name| name.name.as_str()) != Some("blocked")),
        "the survivor applied a write with a single copy"
    );

    // One OSD returns: writes succeed again (with the ordinary client timeout).
    let (returning, returning_id) = killed[0];
    let start = Instant::now();
    cluster
        .restart_osd(returning)
        .await
        .expect("restart one OSD");
    ioctx
        .write_full("blocked", pattern(3, 4096))
        .await
        .expect("a write once two OSDs are up");
    println!(
        "osd.{returning_id} restarted; a write succeeded {:.2} s after the restart began",
        start.elapsed().as_secs_f64()
    );
    assert!(
        ioctx.read("blocked", 0, 0).await.expect("read it back") == pattern(3, 4096),
        "the write after the OSD returned reads back"
    );
    assert!(
        ioctx
            .read("before", 0, 0)
            .await
            .expect("read the older object")
            == pattern(1, 4096),
        "the object written with every OSD up is intact"
    );
    cluster.cluster.shutdown().await.expect("a clean shutdown");
}
