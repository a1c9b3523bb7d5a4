//! Epochs and resends: 3 monitors, 4 OSDs, a size-3 min_size-2 pool.
//!
//! * A client holding an old map is redirected: with `noup` set, the primary of an object
//!   is marked down while it keeps running; an append computed from the old map and sent
//!   to it is refused (STALE_EPOCH or MISDIRECTED, with the OSD's newer epoch); the client
//!   fetches that epoch, recomputes the placement, resends to the new primary and succeeds.
//!   Once `noup` is unset, the old primary (still running) boots again by itself.
//! * An append resent after the primary was killed is applied once: an append is
//!   acknowledged, its primary is killed (`kill -9`), and the same request (same request
//!   id) is sent again to the new primary: it succeeds and the object holds the appended
//!   bytes once. Then a librados append races a kill of its primary: whatever the client
//!   reports, the bytes are there at most once, and exactly once when it succeeded.

use std::time::Duration;

use librados::proto::osd::{sub_op, AppendOp, OpErrorKind};
use librados::{Bytes, IoCtx, Rados};
use shoal_tests::{
    connect, create_pool, flag, mark_down_while_running, op_error_kind, op_request, osd_admin,
    start_with_osds, wait_for, wait_osd_epoch,
};

const POOL: &str = "redirect";

fn append(data: &[u8]) -> Vec<sub_op::Op> {
    vec![sub_op::Op::Append(AppendOp {
        data: Bytes::copy_from_slice(data),
    })]
}

/// The first object name `prefix-N` whose acting set has 3 OSDs, none of them in
/// `avoid`.
fn object_avoiding(ioctx: &IoCtx, prefix: &str, avoid: &[i32]) -> String {
    (0..10_000)
        .map(|k| format!("{prefix}-{k}"))
        .find(|name| {
            let acting = ioctx.osd_map(name).expect("a mapping").mapping.acting;
            acting.len() == 3 && acting.iter().all(|osd| !avoid.contains(osd))
        })
        .expect("an object placed on the wanted OSDs")
}

async fn content(ioctx: &IoCtx, object: &str) -> Vec<u8> {
    ioctx
        .read(object, 0, 0)
        .await
        .unwrap_or_else(|error| panic!("read {object}: {error}"))
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_clients_are_redirected_and_resent_appends_apply_once() {
    let mut cluster = start_with_osds(3, 4).await;
    create_pool(&mut cluster, POOL, 16, 3, 2).await;
    let rados: Rados = connect(&cluster).await;
    let ioctx = rados.ioctx(POOL).await.expect("the pool's context");
    let mon = cluster.client().expect("a monitor client");

    // --- A client holding an old map is redirected.
    ioctx
        .write_full("moved", b"base".to_vec())
        .await
        .expect("write the object");
    let old_map = rados.map();
    let old = old_map.osd_map(POOL, "moved", "").expect("a mapping");
    let old_primary = old.mapping.acting_primary;
    let old_primary_n = cluster.osd_number(old_primary).expect("a launched OSD");
    let old_primary_addr = cluster.osd_addr(old_primary_n).expect("its address");
    let down_epoch = mark_down_while_running(&mon, old_primary).await;
    wait_osd_epoch(&old_primary_addr, down_epoch).await;

    let reqid = (0x5eed_0001, 1);
    let request = op_request(
        u64::from(old_map.epoch()),
        old.mapping.pgid,
        "moved",
        Some(reqid),
        append(b"+redirected"),
    );
    let reply = osd_admin(&old_primary_addr)
        .op(request)
        .await
        .expect("the old primary answers")
        .into_inner();
    let kind = op_error_kind(&reply);
    println!(
        "op from epoch {} to osd.{old_primary} (marked down at epoch {}): {kind:?}, OSD epoch {}",
        old_map.epoch(),
        down_epoch,
        reply.epoch
    );
    assert!(
        matches!(
            kind,
            Some(OpErrorKind::StaleEpoch) | Some(OpErrorKind::Misdirected)
        ),
        "the old primary must redirect the op, it answered {reply:?}"
    );
    assert!(reply.epoch >= down_epoch, "the reply names the newer epoch");

    // The client catches up to the epoch it was told and resends to the new primary.
    let new_map = mon
        .wait_for_epoch(reply.epoch, Duration::from_secs(10))
        .await
        .expect("the newer map");
    let new = new_map.osd_map(POOL, "moved", "").expect("a mapping");
    let new_primary = new.mapping.acting_primary;
    assert_ne!(
        new_primary, old_primary,
        "the down OSD is no longer primary"
    );
    let new_primary_addr = cluster
        .osd_addr(cluster.osd_number(new_primary).expect("a launched OSD"))
        .expect("its address");
    let request = op_request(
        u64::from(new_map.epoch()),
        new.mapping.pgid,
        "moved",
        Some(reqid),
        append(b"+redirected"),
    );
    let reply = osd_admin(&new_primary_addr)
        .op(request)
        .await
        .expect("the new primary answers")
        .into_inner();
    assert_eq!(op_error_kind(&reply), None, "{reply:?}");
    assert_eq!(content(&ioctx, "moved").await, b"base+redirected");
    // And the library's own resends get there too.
    ioctx
        .append("moved", b"+library".to_vec())
        .await
        .expect("append through librados");
    assert_eq!(content(&ioctx, "moved").await, b"base+redirected+library");

    // Allow it up again: the old primary, still running, sees a newer map that marks it
    // down and boots again by itself (Ceph's "wrongly marked me down").
    mon.command(flag("noup", false)).await.expect("unset noup");
    let back_after = cluster
        .wait_osd_up(old_primary, Duration::from_secs(30))
        .await
        .expect("a running OSD marked down boots again");
    println!(
        "osd.{old_primary} marked itself up again {:.1} s after noup was unset",
        back_after.as_secs_f64()
    );
    // Then a restart, which must keep its data.
    cluster
        .stop_osd(old_primary_n)
        .await
        .expect("stop the old primary");
    cluster
        .restart_osd(old_primary_n)
        .await
        .expect("restart the old primary");
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .expect("healthy with every OSD back");
    assert_eq!(content(&ioctx, "moved").await, b"base+redirected+library");

    // --- An acknowledged append resent to the new primary after a kill applies once.
    let map = rados.map();
    let object = object_avoiding(&ioctx, "once", &[]);
    ioctx
        .write_full(&object, b"0123456789".to_vec())
        .await
        .expect("write the object");
    let map = if rados.map().epoch() > map.epoch() {
        rados.map()
    } else {
        map
    };
    let placed = map.osd_map(POOL, &object, "").expect("a mapping");
    let primary = placed.mapping.acting_primary;
    let primary_n = cluster.osd_number(primary).expect("a launched OSD");
    let reqid = (0x5eed_0002, 7);
    let reply = osd_admin(&cluster.osd_addr(primary_n).expect("its address"))
        .op(op_request(
            u64::from(map.epoch()),
            placed.mapping.pgid,
            &object,
            Some(reqid),
            append(b"+A"),
        ))
        .await
        .expect("the primary answers")
        .into_inner();
    assert_eq!(op_error_kind(&reply), None, "{reply:?}");
    let first_version = reply.version;
    cluster
        .kill_osd(primary_n)
        .await
        .expect("kill -9 the primary");
    cluster
        .wait_osd_down(primary, Duration::from_secs(30))
        .await
        .expect("the primary is marked down");
    let map = mon.latest_map().await.expect("the latest map");
    let placed = map.osd_map(POOL, &object, "").expect("a mapping");
    let next = placed.mapping.acting_primary;
    assert_ne!(next, primary);
    let next_addr = cluster
        .osd_addr(cluster.osd_number(next).expect("a launched OSD"))
        .expect("its address");
    let resent = wait_for(
        "the resent append to be answered by the new primary",
        Duration::from_secs(30),
        || {
            let mut client = osd_admin(&next_addr);
            let request = op_request(
                u64::from(map.epoch()),
                placed.mapping.pgid,
                &object,
                Some(reqid),
                append(b"+A"),
            );
            async move {
                let reply = client
                    .op(request)
                    .await
                    .map_err(|status| status.to_string())?
                    .into_inner();
                match op_error_kind(&reply) {
                    None => Ok(reply),
                    // Still peering after the map change: resend, as a client does.
                    Some(OpErrorKind::Busy) | Some(OpErrorKind::StaleEpoch) => {
                        Err(format!("{reply:?}"))
                    }
                    Some(other) => panic!("the resent append failed: {other:?}: {reply:?}"),
                }
            }
        },
    )
    .await;
    println!(
        "append acknowledged at {first_version:?}; resent after killing osd.{primary}: \
         answered {:?} by osd.{next}",
        resent.version
    );
    assert_eq!(
        content(&ioctx, &object).await,
        b"0123456789+A",
        "the resent append is applied once"
    );

    // --- A librados append racing a kill of its primary: at most once, once if acked.
    let object = object_avoiding(&ioctx, "race", &[primary]);
    let base = vec![b'x'; 1000];
    ioctx
        .write_full(&object, base.clone())
        .await
        .expect("write the object");
    let racer = ioctx
        .osd_map(&object)
        .expect("a mapping")
        .mapping
        .acting_primary;
    let racer_n = cluster.osd_number(racer).expect("a launched OSD");
    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let task = {
        let ioctx = ioctx.clone();
        let object = object.clone();
        let payload = payload.clone();
        tokio::spawn(async move { ioctx.append(&object, payload).await })
    };
    cluster
        .kill_osd(racer_n)
        .await
        .expect("kill -9 the primary");
    let outcome = task.await.expect("the append task");
    let data = content(&ioctx, &object).await;
    let times = if data.len() == base.len() {
        0
    } else if data.len() == base.len() + payload.len() {
        assert!(data[base.len()..] == payload[..], "the appended bytes");
        1
    } else {
        panic!(
            "the object is {} bytes: neither the base ({}) nor base + one append ({})",
            data.len(),
            base.len(),
            base.len() + payload.len()
        )
    };
    println!(
        "librados append racing the kill of osd.{racer}: {outcome:?}; applied {times} time(s)"
    );
    if outcome.is_ok() {
        assert_eq!(times, 1, "an acknowledged append is applied exactly once");
    }
    cluster.cluster.shutdown().await.expect("a clean shutdown");
}
