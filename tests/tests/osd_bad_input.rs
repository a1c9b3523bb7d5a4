//! Bad input, through the library and straight to the OSDs' port: 1 monitor, 3 OSDs with a
//! 1 MiB maximum object size, a size-3 pool. Unknown pools, empty and too long object
//! names, reads past the end and writes beyond the maximum object size get typed errors;
//! garbage bytes on the OSDs' TCP port (as gRPC and as links) and well-formed gRPC
//! requests with nonsense fields (missing PG or object, empty sub-ops, mixed reads and
//! writes, writes without a request id, absurd offsets, unknown pools, a replication and a recovery push from an OSD that
//! does not exist) are refused. Afterwards every OSD still runs, answers, and the objects
//! written before read back intact; the cluster is still healthy.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use deploy::ClusterSpec;
use librados::proto::common::PlacementGroupId;
use librados::proto::osd::{
    sub_op, AppendOp, Empty, Eversion, ListObjectsRequest, ObjectName, ObjectState, OpErrorKind,
    OsdStatusRequest, PgScanRequest, PushObjectRequest, ReadOp, ReplicateRequest, ReplicateStatus,
    SubOp, TruncateOp, WriteFullOp, WriteOp, ZeroOp,
};
use librados::{Bytes, RadosError, MAX_NAME_BYTES};
use shoal_tests::{
    alive, connect, create_pool, op_error_kind, op_request, osd_admin, pattern, start_with,
};

const POOL: &str = "strict";
const MAX_OBJECT: u64 = 1 << 20;

fn write_full(data: Vec<u8>) -> sub_op::Op {
    sub_op::Op::WriteFull(WriteFullOp {
        data: Bytes::from(data),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_and_hurt_nothing() {
    let mut spec = ClusterSpec::for_tests_with_osds(1, 3);
    spec.osd_settings.max_object_size = Some(MAX_OBJECT);
    let mut cluster = start_with(spec).await;
    let pool_id = create_pool(&mut cluster, POOL, 8, 3, 2).await;
    let rados = connect(&cluster).await;
    let ioctx = rados.ioctx(POOL).await.expect("the pool's context");

    // What must survive everything below.
    let keep = pattern(7, 64 * 1024);
    ioctx
        .operate(
            "keep",
            librados::WriteOp::new()
                .write_full(keep.clone())
                .set_xattr("user.k", b"v".to_vec())
                .omap_set([(b"a".to_vec(), b"1".to_vec())]),
        )
        .await
        .expect("write the object to keep");
    ioctx
        .write_full("short", pattern(8, 100))
        .await
        .expect("write a short object");

    // --- Through the library.
    let error = rados.ioctx("no-such-pool").await.unwrap_err();
    assert!(
        matches!(&error, RadosError::PoolNotFound { pool } if pool == "no-such-pool"),
        "{error:?}"
    );
    for name in [String::new(), "n".repeat(MAX_NAME_BYTES + 1)] {
        let error = ioctx.write_full(&name, b"x".to_vec()).await.unwrap_err();
        assert!(
            matches!(error, RadosError::InvalidArgument { .. }),
            "name of {} bytes: {error:?}",
            name.len()
        );
        let error = ioctx.read(&name, 0, 0).await.unwrap_err();
        assert!(
            matches!(error, RadosError::InvalidArgument { .. }),
            "{error:?}"
        );
    }
    assert!(ioctx
        .read("short", 200, 10)
        .await
        .expect("read past the end")
        .is_empty());
    assert!(ioctx
        .read("short", 100, 0)
        .await
        .expect("read at the end")
        .is_empty());
    let tail = ioctx
        .read("short", 50, 100)
        .await
        .expect("a read across the end");
    assert_eq!(tail.len(), 50, "a read across the end is short");
    assert!(tail == pattern(8, 100)[50..], "the short read's bytes");
    let error = ioctx.read("never-written", 0, 0).await.unwrap_err();
    assert!(matches!(error, RadosError::NotFound { .. }), "{error:?}");

    let error = ioctx
        .write_full("big", vec![1u8; MAX_OBJECT as usize + 1])
        .await
        .unwrap_err();
    assert!(matches!(error, RadosError::TooLarge { .. }), "{error:?}");
    ioctx
        .write_full("big", vec![2u8; MAX_OBJECT as usize])
        .await
        .expect("an object of exactly the maximum size");
    let error = ioctx.append("big", b"more".to_vec()).await.unwrap_err();
    assert!(matches!(error, RadosError::TooLarge { .. }), "{error:?}");
    let error = ioctx
        .write("short", MAX_OBJECT - 10, vec![3u8; 20])
        .await
        .unwrap_err();
    assert!(matches!(error, RadosError::TooLarge { .. }), "{error:?}");
    assert_eq!(ioctx.stat("big").await.expect("stat").size, MAX_OBJECT);
    assert!(
        ioctx.read("short", 0, 0).await.expect("read") == pattern(8, 100),
        "a refused write changed nothing"
    );

    // --- Garbage on every OSD's TCP port.
    let osds: Vec<(u32, u32, String)> = cluster
        .osd_numbers()
        .into_iter()
        .map(|n| {
            (
                n,
                cluster
                    .osd_pid(n)
                    .expect("a record")
                    .expect("a running OSD"),
                cluster.osd_addr(n).expect("an address"),
            )
        })
        .collect();
    let junk_inputs: Vec<Vec<u8>> = vec![
        pattern(1, 65_536),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        // The HTTP/2 preface, then a frame header announcing 16 MiB of a frame type that
        // does not exist, then nothing.
        [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            &[0xff, 0xff, 0xff, 0xee, 0x00, 0x00, 0x00, 0x00, 0x01][..],
            &pattern(2, 1000)[..],
        ]
        .concat(),
        // The preface and a HEADERS frame whose HPACK block is garbage.
        [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            &[0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00][..],
            &[0x00, 0x00, 0x20, 0x01, 0x04, 0x00, 0x00, 0x00, 0x01][..],
            &pattern(3, 32)[..],
        ]
        .concat(),
        // Links (the OSDs' own framing beside gRPC): a wrong magic, an unknown kind, a
        // frame longer than any link carries, frames that are not the link's message.
        [&b"SHOALLNX"[..], &[1], &pattern(4, 64)[..]].concat(),
        [&b"SHOALLNK"[..], &[9], &pattern(5, 64)[..]].concat(),
        [
            &b"SHOALLNK"[..],
            &[1],
            &u32::MAX.to_le_bytes()[..],
            &pattern(6, 64)[..],
        ]
        .concat(),
        [
            &b"SHOALLNK"[..],
            &[1],
            &100u32.to_le_bytes()[..],
            &pattern(7, 100)[..],
        ]
        .concat(),
        [
            &b"SHOALLNK"[..],
            &[2],
            &100u32.to_le_bytes()[..],
            &pattern(8, 100)[..],
        ]
        .concat(),
        // Bulk frames (large writes' data after the message): no segments; segments
        // adding up to more than a message may hold; a segment for a request that has no
        // sub-op to carry it; a segment cut short by the connection's end.
        [
            &b"SHOALLNK"[..],
            &[2],
            &[0, 0, 0, 0x80],
            &0u32.to_le_bytes()[..],
        ]
        .concat(),
        [
            &b"SHOALLNK"[..],
            &[1],
            &[0, 0, 0, 0x80],
            &2u32.to_le_bytes()[..],
            &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f][..],
            &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f][..],
        ]
        .concat(),
        [
            &b"SHOALLNK"[..],
            &[2],
            &[0, 0, 0, 0x80],
            &1u32.to_le_bytes()[..],
            &[5, 0, 0, 0, 100, 0, 0, 0][..],
            &pattern(10, 100)[..],
        ]
        .concat(),
        [
            &b"SHOALLNK"[..],
            &[1],
            &[0, 0, 0, 0x80],
            &1u32.to_le_bytes()[..],
            &[0, 0, 0, 0, 0, 0, 1, 0][..],
            &pattern(11, 1000)[..],
        ]
        .concat(),
        // A whole frame, then a frame cut short by the connection's end.
        [
            &b"SHOALLNK"[..],
            &[2],
            &[0, 0, 0, 0],
            &[50, 0, 0, 0],
            &pattern(9, 10)[..],
        ]
        .concat(),
    ];
    for (n, _, addr) in &osds {
        for junk in &junk_inputs {
            let addr = addr.clone();
            let junk = junk.clone();
            tokio::task::spawn_blocking(move || {
                let mut stream = TcpStream::connect(&addr).expect("connect to the OSD port");
                stream
                    .set_read_timeout(Some(Duration::from_secs(2)))
                    .expect("a read timeout");
                // The server may close the connection before reading everything.
                let _ = stream.write_all(&junk);
                let mut answer = Vec::new();
                let _ = stream.read_to_end(&mut answer);
            })
            .await
            .unwrap_or_else(|error| panic!("garbage to osd number {n}: {error}"));
        }
    }

    // --- Well-formed gRPC with nonsense fields, to the primary of "keep".
    let map = rados.map();
    let epoch = u64::from(map.epoch());
    let placed = map.osd_map(POOL, "keep", "").expect("a mapping");
    let pg = placed.mapping.pgid;
    let primary = placed.mapping.acting_primary;
    let primary_addr = cluster
        .osd_addr(cluster.osd_number(primary).expect("a launched OSD"))
        .expect("its address");
    let mut client = osd_admin(&primary_addr);
    let pg_wire = PlacementGroupId {
        pool: pg.pool,
        seed: pg.ps,
    };
    let reqid = Some((0xbad, 1));
    let read_all = || {
        sub_op::Op::Read(ReadOp {
            offset: 0,
            length: 0,
        })
    };
    let mut nonsense: Vec<(&str, librados::proto::osd::OpRequest, Option<OpErrorKind>)> = vec![
        (
            "an empty object name",
            op_request(
                epoch,
                map.object_to_pg(pool_id, "", "").expect("a pg"),
                "",
                reqid,
                vec![write_full(b"x".to_vec())],
            ),
            Some(OpErrorKind::InvalidArgument),
        ),
        (
            "a 3000-byte object name",
            {
                let name = "n".repeat(3000);
                op_request(
                    epoch,
                    map.object_to_pg(pool_id, &name, "").expect("a pg"),
                    &name,
                    reqid,
                    vec![write_full(b"x".to_vec())],
                )
            },
            Some(OpErrorKind::InvalidArgument),
        ),
        (
            "an unknown pool",
            op_request(
                epoch,
                librados::clustermap::PgId::new(9_999, 0),
                "keep",
                reqid,
                vec![read_all()],
            ),
            Some(OpErrorKind::PoolNotFound),
        ),
        (
            "mixed reads and writes",
            op_request(
                epoch,
                pg,
                "keep",
                reqid,
                vec![read_all(), write_full(b"x".to_vec())],
            ),
            Some(OpErrorKind::InvalidArgument),
        ),
        (
            "a write without a request id",
            op_request(epoch, pg, "keep", None, vec![write_full(b"x".to_vec())]),
            Some(OpErrorKind::InvalidArgument),
        ),
        (
            "a write at an absurd offset",
            op_request(
                epoch,
                pg,
                "keep",
                reqid,
                vec![sub_op::Op::Write(WriteOp {
                    offset: u64::MAX - 5,
                    data: Bytes::from_static(b"0123456789"),
                })],
            ),
            None,
        ),
        (
            "a zero past the end of the address space",
            op_request(
                epoch,
                pg,
                "keep",
                reqid,
                vec![sub_op::Op::Zero(ZeroOp {
                    offset: u64::MAX - 1,
                    length: u64::MAX,
                })],
            ),
            None,
        ),
        (
            "a truncate far beyond the maximum size",
            op_request(
                epoch,
                pg,
                "keep",
                reqid,
                vec![sub_op::Op::Truncate(TruncateOp { size: u64::MAX })],
            ),
            None,
        ),
        (
            "a PG seed beyond pg_num",
            op_request(
                epoch,
                librados::clustermap::PgId::new(pool_id, 12_345),
                "keep",
                reqid,
                vec![read_all()],
            ),
            None,
        ),
    ];
    // Requests the helper cannot build: no PG, no object, a sub-op without an op.
    let mut bare = op_request(epoch, pg, "keep", reqid, vec![write_full(b"x".to_vec())]);
    bare.pg = None;
    nonsense.push(("no PG", bare, None));
    let mut bare = op_request(epoch, pg, "keep", reqid, vec![write_full(b"x".to_vec())]);
    bare.object = None;
    nonsense.push(("no object", bare, None));
    let mut bare = op_request(epoch, pg, "keep", reqid, Vec::new());
    bare.ops = vec![
        SubOp { op: None },
        SubOp {
            op: Some(sub_op::Op::AssertExists(Empty {})),
        },
    ];
    nonsense.push(("a sub-op without an op", bare, None));

    for (what, request, expected) in nonsense {
        let name = request.object.as_ref().map(|object| object.name.len());
        match client.op(request).await {
            Ok(reply) => {
                let reply = reply.into_inner();
                let kind = op_error_kind(&reply);
                println!(
                    "{what}: {kind:?} ({:?})",
                    reply.error.as_ref().map(|e| &e.message)
                );
                assert!(
                    kind.is_some(),
                    "{what} (name of {name:?} bytes) succeeded: {reply:?}"
                );
                if let Some(expected) = expected {
                    assert_eq!(kind, Some(expected), "{what}: {reply:?}");
                }
            }
            // A gRPC status is a typed refusal too (INVALID_ARGUMENT, ...), never a crash.
            Err(status) => {
                println!("{what}: gRPC {:?}: {}", status.code(), status.message());
                assert!(
                    !matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Unknown
                    ),
                    "{what}: the OSD failed to answer: {status}"
                );
            }
        }
    }

    // Over the maximum object size at the OSD itself (sent to the primary of "big").
    let big = map.osd_map(POOL, "big", "").expect("a mapping").mapping;
    let big_addr = cluster
        .osd_addr(
            cluster
                .osd_number(big.acting_primary)
                .expect("a launched OSD"),
        )
        .expect("its address");
    let reply = osd_admin(&big_addr)
        .op(op_request(
            epoch,
            big.pgid,
            "big",
            reqid,
            vec![sub_op::Op::Append(AppendOp {
                data: Bytes::from_static(b"!"),
            })],
        ))
        .await
        .expect("the primary of big answers")
        .into_inner();
    assert_eq!(
        op_error_kind(&reply),
        Some(OpErrorKind::TooLarge),
        "{reply:?}"
    );

    // A replication and a recovery push from an OSD that does not exist, at an old epoch:
    // the push would delete "keep" if it were obeyed.
    let replicate = client
        .replicate(ReplicateRequest {
            epoch: 1,
            from_osd: 77,
            pg: Some(pg_wire),
            object: Some(ObjectName {
                namespace: String::new(),
                name: "keep".to_owned(),
            }),
            version: Some(Eversion {
                epoch: 1,
                version: 1 << 40,
            }),
            ops: vec![SubOp {
                op: Some(write_full(b"overwritten".to_vec())),
            }],
            ..Default::default()
        })
        .await;
    match replicate {
        Ok(reply) => {
            let reply = reply.into_inner();
            assert_ne!(
                ReplicateStatus::try_from(reply.status),
                Ok(ReplicateStatus::Replicated),
                "a replication from a stranger was applied: {reply:?}"
            );
        }
        Err(status) => println!("replicate from a stranger: gRPC {:?}", status.code()),
    }
    let push = client
        .push_object(PushObjectRequest {
            epoch: 1,
            from_osd: 77,
            pg: Some(pg_wire),
            state: Some(ObjectState {
                object: Some(ObjectName {
                    namespace: String::new(),
                    name: "keep".to_owned(),
                }),
                exists: false,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    if let Ok(reply) = push {
        let reply = reply.into_inner();
        assert!(!reply.ok, "a push from a stranger was applied: {reply:?}");
    }
    let _ = client
        .list_objects(ListObjectsRequest {
            epoch,
            pg: None,
            ..Default::default()
        })
        .await;
    let _ = client
        .pg_scan(PgScanRequest {
            epoch,
            pg: Some(PlacementGroupId {
                pool: 9_999,
                seed: 3,
            }),
            with_digest: true,
            ..Default::default()
        })
        .await;

    // --- Every OSD still runs and answers; nothing was lost.
    for (n, pid, addr) in &osds {
        assert!(alive(*pid), "osd number {n} (pid {pid}) died");
        let status = osd_admin(addr)
            .osd_status(OsdStatusRequest {})
            .await
            .unwrap_or_else(|error| panic!("osd number {n} answers OsdStatus: {error}"))
            .into_inner();
        assert_eq!(status.osd_id, cluster.osd_id(*n).expect("its id"));
    }
    assert!(
        ioctx.read("keep", 0, 0).await.expect("read keep") == keep,
        "the kept object's data is intact"
    );
    let xattrs: BTreeMap<String, Vec<u8>> = ioctx
        .get_xattrs("keep")
        .await
        .expect("xattrs")
        .into_iter()
        .map(|(key, value)| (key, value.to_vec()))
        .collect();
    assert_eq!(
        xattrs,
        BTreeMap::from([("user.k".to_owned(), b"v".to_vec())])
    );
    assert_eq!(
        ioctx.read("big", 0, 0).await.expect("read big").len() as u64,
        MAX_OBJECT
    );
    cluster
        .wait_healthy(Duration::from_secs(30))
        .await
        .expect("still healthy");
    cluster.cluster.shutdown().await.expect("a clean shutdown");
}
