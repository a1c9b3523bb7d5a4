//! The client's data path against a fake monitor and fake OSDs on real sockets (see
//! `common`): object ops round-trip; STALE_EPOCH, MISDIRECTED, BUSY, cut connections and a
//! dead primary make the client refresh its map and resend with the same request id; an op
//! the primary never acknowledges ends in an error, never in success.

mod common;

use std::time::Duration;

use bytes::Bytes;
use clustermap::MapChange;
use common::{FakeCluster, Fault};
use librados::proto::osd::OpErrorKind;
use librados::{RadosError, ReadOp, Version, WriteOp};

/// An object name whose primary is `osd` in the cluster's current map.
fn object_on(cluster: &FakeCluster, osd: i32, prefix: &str) -> String {
    (0..1000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|name| cluster.primary_of(name).1 == osd)
        .expect("some object maps to the OSD")
}

fn reqids(received: &[common::Received]) -> Vec<(u64, u64)> {
    received
        .iter()
        .map(|r| r.reqid.expect("writes carry a reqid"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_ops_round_trip() {
    let cluster = FakeCluster::start(2, 8).await;
    let rados = librados::Rados::connect(cluster.config(Duration::from_secs(5)))
        .await
        .unwrap();
    let mut ioctx = rados.ioctx("data").await.unwrap();

    let v1 = ioctx.write_full("a", &b"hello"[..]).await.unwrap();
    ioctx.append("a", &b" world"[..]).await.unwrap();
    assert_eq!(
        ioctx.read("a", 0, 0).await.unwrap(),
        Bytes::from_static(b"hello world")
    );
    assert_eq!(
        ioctx.read("a", 6, 3).await.unwrap(),
        Bytes::from_static(b"wor")
    );
    assert_eq!(ioctx.read("a", 100, 3).await.unwrap(), Bytes::new());
    ioctx.write("a", 0, &b"J"[..]).await.unwrap();
    let stat = ioctx.stat("a").await.unwrap();
    assert_eq!(stat.size, 11);
    assert!(stat.version > v1);
    ioctx.truncate("a", 5).await.unwrap();
    assert_eq!(
        ioctx.read("a", 0, 0).await.unwrap(),
        Bytes::from_static(b"Jello")
    );

    ioctx.set_xattr("a", "user.k", &b"v"[..]).await.unwrap();
    assert_eq!(
        ioctx.get_xattr("a", "user.k").await.unwrap(),
        Bytes::from_static(b"v")
    );
    assert!(matches!(
        ioctx.get_xattr("a", "user.none").await,
        Err(RadosError::NoSuchXattr { ref name, .. }) if name == "user.none"
    ));
    assert!(matches!(
        ioctx.get_xattr("missing", "user.k").await,
        Err(RadosError::NotFound { .. })
    ));
    assert_eq!(ioctx.get_xattrs("a").await.unwrap().len(), 1);
    ioctx.rm_xattr("a", "user.k").await.unwrap();
    assert!(ioctx.get_xattrs("a").await.unwrap().is_empty());

    let entries: Vec<(Bytes, Bytes)> = (0..5)
        .map(|i| (Bytes::from(format!("k{i}")), Bytes::from(format!("v{i}"))))
        .collect();
    ioctx.omap_set("a", entries.clone()).await.unwrap();
    let page = ioctx
        .omap_list("a", &b""[..], &b""[..], 2, true)
        .await
        .unwrap();
    assert_eq!(page.entries, entries[..2].to_vec());
    assert!(page.more);
    assert_eq!(
        ioctx.omap_list_all("a", &b""[..], true).await.unwrap(),
        entries
    );
    let got = ioctx
        .omap_get("a", [&b"k1"[..], &b"nope"[..]])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    ioctx.omap_rm("a", [&b"k1"[..]]).await.unwrap();
    assert_eq!(
        ioctx
            .omap_list_all("a", &b""[..], false)
            .await
            .unwrap()
            .len(),
        4
    );
    ioctx.omap_clear("a").await.unwrap();
    assert!(ioctx
        .omap_list_all("a", &b""[..], true)
        .await
        .unwrap()
        .is_empty());

    // Compound ops: guards fail the whole op, typed.
    let version = ioctx.stat("a").await.unwrap().version;
    let wrong = Version {
        epoch: 1,
        version: version.version + 100,
    };
    match ioctx
        .operate(
            "a",
            WriteOp::new().assert_version(wrong).write_full(&b"x"[..]),
        )
        .await
    {
        Err(RadosError::VersionMismatch { actual, .. }) => {
            assert_eq!(actual.version, version.version)
        }
        other => panic!("expected a version mismatch, got {other:?}"),
    }
    assert_eq!(
        ioctx.read("a", 0, 0).await.unwrap(),
        Bytes::from_static(b"Jello")
    );
    ioctx
        .operate(
            "a",
            WriteOp::new()
                .assert_version(version)
                .write_full(&b"x"[..])
                .set_xattr("n", &b"1"[..]),
        )
        .await
        .unwrap();
    let outcome = ioctx
        .operate_read("a", ReadOp::new().stat().read(0, 0).get_xattr("n"))
        .await
        .unwrap();
    assert_eq!(outcome.results.len(), 3);
    assert_eq!(
        outcome.results[1],
        librados::OpResult::Data(Bytes::from_static(b"x"))
    );
    assert!(matches!(
        ioctx.create("a", true).await,
        Err(RadosError::Exists { .. })
    ));
    ioctx
        .assert_version("a", ioctx.stat("a").await.unwrap().version)
        .await
        .unwrap();

    ioctx.remove("a").await.unwrap();
    assert!(
        matches!(ioctx.stat("a").await, Err(RadosError::NotFound { ref object }) if object == "a")
    );
    assert!(matches!(
        ioctx.remove("a").await,
        Err(RadosError::NotFound { .. })
    ));

    // Namespaces: same name, separate objects, listed separately.
    ioctx.set_namespace("ns1");
    ioctx.write_full("a", &b"in ns1"[..]).await.unwrap();
    ioctx.set_namespace("");
    assert!(matches!(
        ioctx.stat("a").await,
        Err(RadosError::NotFound { .. })
    ));
    let mapping = ioctx.osd_map("a").unwrap();
    assert_eq!(mapping.pool_name, "data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_side_validation_sends_nothing() {
    let cluster = FakeCluster::start(1, 4).await;
    let rados = librados::Rados::connect(cluster.config(Duration::from_secs(5)))
        .await
        .unwrap();
    let ioctx = rados.ioctx("data").await.unwrap();
    let long = "x".repeat(librados::MAX_NAME_BYTES + 1);
    for name in ["", long.as_str()] {
        match ioctx.write_full(name, &b"x"[..]).await {
            Err(RadosError::InvalidArgument { reason }) => {
                assert!(reason.contains("name"), "{reason}")
            }
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }
    ioctx
        .write_full(&"y".repeat(librados::MAX_NAME_BYTES), &b"ok"[..])
        .await
        .unwrap();
    assert!(cluster.received("").is_empty());
    assert!(cluster.received(&long).is_empty());
    match rados.ioctx("nopool").await {
        Err(RadosError::PoolNotFound { pool }) => assert_eq!(pool, "nopool"),
        other => panic!("expected PoolNotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_travel_over_the_op_link_unless_too_much_besides_large_data_or_unbounded() {
    let cluster = FakeCluster::start(2, 8).await;
    let rados = librados::Rados::connect(cluster.config(Duration::from_secs(5)))
        .await
        .unwrap();
    let ioctx = rados.ioctx("data").await.unwrap();
    let small = vec![7u8; 4096];
    let large = vec![9u8; 256 << 10];
    ioctx.write_full("small", small.clone()).await.unwrap();
    // Large data travels beside the link's message, as a bulk segment.
    ioctx.write_full("large", large.clone()).await.unwrap();
    assert_eq!(ioctx.read("small", 0, 4096).await.unwrap(), small);
    ioctx.stat("small").await.unwrap();
    // Reads to the end are calls: nothing bounds their reply.
    assert_eq!(ioctx.read("small", 0, 0).await.unwrap(), small);
    assert_eq!(ioctx.read("large", 0, 256 << 10).await.unwrap(), large);
    // Twenty writes just under the bulk bound stay in the message: too much for the link.
    let piece = vec![5u8; (60 << 10) - 1];
    let many = (0..20u64).fold(librados::WriteOp::new(), |op, n| {
        op.write(n * piece.len() as u64, piece.clone())
    });
    ioctx.operate("many", many).await.unwrap();
    let read = ioctx.read("many", 0, 0).await.unwrap();
    assert_eq!(read.len(), 20 * piece.len());
    assert!(read.iter().all(|&byte| byte == 5));
    let linked = |object: &str| -> Vec<bool> {
        cluster
            .received(object)
            .iter()
            .map(|received| received.linked)
            .collect()
    };
    assert_eq!(linked("small"), [true, true, true, false]);
    assert_eq!(linked("large"), [true, true]);
    assert_eq!(linked("many"), [false, false]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_epoch_refreshes_the_map_and_resends_the_same_reqid() {
    let cluster = FakeCluster::start(2, 8).await;
    let rados = librados::Rados::connect(cluster.config(Duration::from_secs(5)))
        .await
        .unwrap();
    let ioctx = rados.ioctx("data").await.unwrap();
    let (_, primary) = cluster.primary_of("obj");
    let before = u64::from(rados.map().epoch());
    // The map moves on just as the op arrives: the OSD answers STALE_EPOCH once.
    cluster.fault(
        primary,
        [Fault::ChangeMap(vec![MapChange::SetFlag(
            clustermap::ClusterFlag::NoOut,
        )])],
    );
    ioctx.write_full("obj", &b"data"[..]).await.unwrap();
    let received = cluster.received("obj");
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0].answered, Some(OpErrorKind::StaleEpoch));
    assert_eq!(received[0].epoch, before);
    assert_eq!(received[1].answered, None);
    assert_eq!(received[1].epoch, before + 1, "resent with the newer map");
    let ids = reqids(&received);
    assert_eq!(ids[0], ids[1], "the resend keeps the reqid");
    assert_eq!(ids[0].0, rados.client_id());
    assert_eq!(cluster.stored("obj").unwrap(), b"data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misdirected_op_follows_the_new_primary() {
    let cluster = FakeCluster::start(2, 8).await;
    let rados = librados::Rados::connect(cluster.config(Duration::from_secs(5)))
        .await
        .unwrap();
    let ioctx = rados.ioctx("data").await.unwrap();
    let (pg, old) = cluster.primary_of("moving");
    let new = 1 - old;
    // While the op travels, the PG's acting set moves to the other OSD.
    cluster.fault(
        old,
        [Fault::ChangeMap(vec![MapChange::SetPgTemp {
            pgid: pg,
            osds: vec![new],
        }])],
    );
    ioctx.append("moving", &b"once"[..]).await.unwrap();
    let received = cluster.received("moving");
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(
        (received[0].osd, received[0].answered),
        (old, Some(OpErrorKind::Misdirected))
    );
    assert_eq!((received[1].osd, received[1].answered), (new, None));
    let ids = reqids(&received);
    assert_eq!(ids[0], ids[1]);
    assert_eq!(cluster.stored("moving").unwrap(), b"once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_is_retried_until_it_succeeds() {
    let cluster = FakeCluster::start(2, 8).await;
    let rados = librados::Rados::connect(cluster.config(Duration::from_secs(5)))
        .await
        .unwrap();
    let ioctx = rados.ioctx("data").await.unwrap();
    let (_, primary) = cluster.primary_of("busy");
    cluster.fault(primary, [Fault::Busy, Fault::Busy]);
    ioctx.append("busy", &b"x"[..]).await.unwrap();
    let received = cluster.received("busy");
    let answers: Vec<_> = received.iter().map(|r| r.answered).collect();
    assert_eq!(
        answers,
        vec![Some(OpErrorKind::Busy), Some(OpErrorKind::Busy), None]
    );
    let ids = reqids(&received);
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(cluster.stored("busy").unwrap(), b"x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_resent_with_the_same_reqid_and_applied_once() {
    let cluster = FakeCluster::start(2, 8).await;
    let rados = librados::Rados::connect(cluster.config(Duration::from_secs(5)))
        .await
        .unwrap();
    let ioctx = rados.ioctx("data").await.unwrap();
    let (_, primary) = cluster.primary_of("log");
    ioctx.append("log", &b"a"[..]).await.unwrap();
    // The OSD applies the append, then the connection drops before the reply.
    cluster.fault(primary, [Fault::CutAfterApply]);
    ioctx.append("log", &b"b"[..]).await.unwrap();
    let received = cluster.received("log");
    assert_eq!(received.len(), 3, "{received:?}");
    let ids = reqids(&received);
    assert_ne!(ids[0], ids[1], "a new op gets a new tid");
    assert_eq!(ids[1], ids[2], "the resend keeps the reqid");
    assert_eq!(cluster.stored("log").unwrap(), b"ab", "applied once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_is_routed_around_once_the_map_says_so() {
    let cluster = FakeCluster::start(2, 8).await;
    let rados = librados::Rados::connect(cluster.config(Duration::from_secs(10)))
        .await
        .unwrap();
    let ioctx = rados.ioctx("data").await.unwrap();
    let name = object_on(&cluster, 0, "dead");
    cluster.proxy(0).close();
    let maps = cluster.maps.clone();
    let marker = tokio::spawn(async move {
        // The monitors notice after a while and mark the OSD down and out.
        tokio::time::sleep(Duration::from_millis(300)).await;
        maps.change(&[MapChange::MarkDown { id: 0 }, MapChange::MarkOut { id: 0 }]);
    });
    ioctx.write_full(&name, &b"moved"[..]).await.unwrap();
    marker.await.unwrap();
    let received = cluster.received(&name);
    assert_eq!(received.len(), 1, "only osd.1 ever saw it: {received:?}");
    assert_eq!(received[0].osd, 1);
    assert_eq!(cluster.stored(&name).unwrap(), b"moved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_writes_end_in_timeout_errors() {
    let cluster = FakeCluster::start(2, 8).await;
    let rados = librados::Rados::connect(cluster.config(Duration::from_millis(600)))
        .await
        .unwrap();
    let ioctx = rados.ioctx("data").await.unwrap();

    // Always BUSY: nothing applied, a timeout naming the object and the last answer.
    *cluster.shared.always_busy.lock().unwrap() = true;
    match ioctx.write_full("stuck", &b"x"[..]).await {
        Err(RadosError::Timeout { object, what, .. }) => {
            assert_eq!(object, "stuck");
            assert!(what.contains("BUSY"), "{what}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(cluster.stored("stuck").is_none());
    *cluster.shared.always_busy.lock().unwrap() = false;

    // Applied but every reply lost: still an error, never success.
    *cluster.shared.always_cut.lock().unwrap() = true;
    let error = ioctx.write_full("lost", &b"y"[..]).await.unwrap_err();
    assert!(matches!(error, RadosError::Timeout { .. }), "{error}");
    let received = cluster.received("lost");
    assert!(received.len() >= 2, "resent: {received:?}");
    let ids = reqids(&received);
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one reqid for every resend"
    );
    *cluster.shared.always_cut.lock().unwrap() = false;

    // A primary that refuses connections and is never marked down.
    let name = object_on(&cluster, 1, "gone");
    cluster.proxy(1).close();
    let error = ioctx.write_full(&name, &b"z"[..]).await.unwrap_err();
    match &error {
        RadosError::Timeout { object, what, .. } => {
            assert_eq!(object, &name);
            assert!(what.contains("osd.1"), "{what}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(cluster.stored(&name).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_through_every_pg_and_resumes_from_a_cursor() {
    let cluster = FakeCluster::start(2, 8).await;
    *cluster.shared.page_size.lock().unwrap() = 3;
    let rados = librados::Rados::connect(cluster.config(Duration::from_secs(5)))
        .await
        .unwrap();
    let mut ioctx = rados.ioctx("data").await.unwrap();
    let mut names: Vec<String> = (0..40).map(|i| format!("obj{i}")).collect();
    for name in &names {
        ioctx.write_full(name, Bytes::new()).await.unwrap();
    }
    ioctx.set_namespace("other");
    ioctx.write_full("hidden", Bytes::new()).await.unwrap();
    ioctx.set_namespace("");

    let mut listed: Vec<String> = ioctx
        .list_objects()
        .collect_all()
        .await
        .unwrap()
        .into_iter()
        .map(|entry| entry.name)
        .collect();
    listed.sort();
    names.sort();
    assert_eq!(listed, names);

    let all = ioctx
        .list_objects()
        .all_namespaces(true)
        .collect_all()
        .await
        .unwrap();
    assert_eq!(all.len(), 41);
    assert!(all
        .iter()
        .any(|e| e.namespace == "other" && e.name == "hidden"));

    // Stop after 17 objects, resume from the cursor: together exactly the whole listing.
    let mut lister = ioctx.list_objects();
    let mut first = Vec::new();
    for _ in 0..17 {
        first.push(lister.next().await.unwrap().unwrap().name);
    }
    let cursor = lister.cursor().clone();
    drop(lister);
    let rest = ioctx
        .list_objects()
        .start_at(cursor)
        .collect_all()
        .await
        .unwrap();
    let mut together: Vec<String> = first
        .into_iter()
        .chain(rest.into_iter().map(|e| e.name))
        .collect();
    together.sort();
    assert_eq!(together, names);

    // As a stream.
    use futures_util::StreamExt;
    let count = ioctx.list_objects().into_stream().count().await;
    assert_eq!(count, 40);
}
