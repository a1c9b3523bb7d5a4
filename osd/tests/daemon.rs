//! Black-box tests of `shoal-osd`: one in-process monitor (test timings) and real OSD
//! processes on 127.0.0.1 port 0, driven through raw `Osd` gRPC calls. Every object's
//! placement is checked from the OSDs' own stores (`PgScan` with digests): it must be on
//! exactly the acting OSDs, with one version and one digest.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clustermap::{ClusterMap, OsdId, PgId};
use monclient::{ClientConfig, MonClient};
use monitor::config::MemberConfig;
use monitor::{MonConfig, MonitorServer};
use proto::mon::command::Kind;
use proto::mon::{Command as MonCommand, PoolCreate};
use proto::osd::osd_client::OsdClient;
use proto::osd::sub_op::Op;
use proto::osd::{
    sub_op_result, AppendOp, Empty, ObjectName, OmapEntry, OmapGetOp, OmapSetOp, OpErrorKind,
    OpReply, OpRequest, OsdStatusRequest, PgScanRequest, ReadOp, ReqId, SetXattrOp, SubOp,
    WriteFullOp,
};
use tonic::transport::Channel;

const POOL: &str = "data";
const PG_NUM: u32 = 16;

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct OsdProcess {
    dir: PathBuf,
    host: String,
    /// Extra command-line flags (CRUSH location, weight), given on every start.
    args: Vec<String>,
    child: Option<Child>,
}

struct TestCluster {
    osds: Vec<OsdProcess>,
    mon: Option<MonitorServer>,
    mon_client: MonClient,
    conf: PathBuf,
    dir: tempfile::TempDir,
    pool_id: i64,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for osd in &mut self.osds {
            if let Some(mut child) = osd.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            for (index, _) in self.osds.iter().enumerate() {
                let log = self.dir.path().join(format!("osd{index}.log"));
                if let Ok(text) = std::fs::read_to_string(&log) {
                    let tail: Vec<&str> = text.lines().rev().take(60).collect();
                    eprintln!("---- osd{index} log tail ----");
                    for line in tail.into_iter().rev() {
                        eprintln!("{line}");
                    }
                }
            }
        }
        let _ = self.mon.take();
    }
}

impl TestCluster {
    async fn start(osds: usize) -> TestCluster {
        TestCluster::start_with(osds, |_| None).await
    }

    /// Like [`TestCluster::start`]; `custom(index)` may give OSD `index` its own host
    /// and extra flags instead of `host{index}` and none.
    async fn start_with(
        osds: usize,
        custom: impl Fn(usize) -> Option<(String, Vec<String>)>,
    ) -> TestCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mon_dir = dir.path().join("mon.1");
        let mut config = MonConfig::for_tests(1, mon_dir.clone());
        config.members = vec![MemberConfig {
            id: 1,
            name: None,
            addr: None,
            addr_file: Some(mon_dir.join(monitor::ADDR_FILE)),
        }];
        let mon = MonitorServer::start(config).await.expect("monitor starts");
        let addr = mon.addr().to_string();
        wait_for(
            "the monitor to create the cluster",
            Duration::from_secs(10),
            || {
                let ready = mon.view().map.is_some();
                async move { ready.then_some(()) }
            },
        )
        .await;
        let conf = dir.path().join("shoal.conf");
        let mut file = std::fs::File::create(&conf).unwrap();
        write!(
            file,
            "[[mon.members]]\nid = 1\naddr = \"{addr}\"\n\n[osd]\nbackend = \"fjall\"\n\
             heartbeat_interval_ms = 200\nheartbeat_grace_ms = 1000\nbeacon_interval_ms = 300\n\
             pg_stats_interval_ms = 500\nop_timeout_ms = 8000\nmax_object_size = 1048576\n\
             cache_bytes = 8388608\n"
        )
        .unwrap();
        let mon_client = MonClient::new(ClientConfig::with_mon_hosts([addr])).unwrap();
        let mut cluster = TestCluster {
            osds: Vec::new(),
            mon: Some(mon),
            mon_client,
            conf,
            dir,
            pool_id: -1,
        };
        for index in 0..osds {
            let dir = cluster.dir.path().join(format!("osd{index}"));
            let (host, args) =
                custom(index).unwrap_or_else(|| (format!("host{index}"), Vec::new()));
            cluster.osds.push(OsdProcess {
                dir,
                host,
                args,
                child: None,
            });
            cluster.spawn(index);
        }
        for index in 0..osds {
            let whoami = cluster.osds[index].dir.join("whoami");
            wait_for("an OSD to boot", Duration::from_secs(20), || {
                let done = whoami.exists();
                async move { done.then_some(()) }
            })
            .await;
        }
        cluster
    }

    fn spawn(&mut self, index: usize) {
        let osd = &mut self.osds[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("osd{index}.log")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_shoal-osd"))
            .arg("-c")
            .arg(&self.conf)
            .arg("--data")
            .arg(&osd.dir)
            .arg("--host")
            .arg(&osd.host)
            .args(&osd.args)
            .env("SHOAL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("shoal-osd starts");
        osd.child = Some(child);
    }

    fn kill(&mut self, index: usize) {
        let mut child = self.osds[index].child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn osd_id(&self, index: usize) -> OsdId {
        std::fs::read_to_string(self.osds[index].dir.join("whoami"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    async fn map(&self) -> Arc<ClusterMap> {
        self.mon_client.latest_map().await.expect("map")
    }

    async fn create_pool(&mut self) {
        let outcome = self
            .mon_client
            .command(MonCommand {
                kind: Some(Kind::PoolCreate(PoolCreate {
                    name: POOL.into(),
                    pg_num: Some(PG_NUM),
                    size: Some(3),
                    min_size: Some(2),
                    crush_rule: String::new(),
                })),
            })
            .await
            .expect("pool create");
        self.pool_id = outcome.created_id;
    }

    async fn client_of(&self, map: &ClusterMap, osd: OsdId) -> OsdClient<Channel> {
        let addr = map
            .osd(osd)
            .and_then(|info| info.address.clone())
            .expect("osd address");
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        OsdClient::new(channel)
            .max_decoding_message_size(proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(proto::MAX_MESSAGE_BYTES)
    }

    /// Waits until every PG of the pool is active+clean on its primary, as the map now
    /// places it, and the monitors' map is the one the OSDs have.
    async fn wait_clean(&self, timeout: Duration) {
        wait_for("every pg active+clean", timeout, || async {
            let map = self.map().await;
            let mut clean = 0;
            for ps in 0..PG_NUM {
                let pg = PgId::new(self.pool_id, ps);
                let mapping = map.pg_to_up_acting(pg).ok()?;
                if mapping.acting.len() < 3 {
                    return None;
                }
                let mut client = self.client_of(&map, mapping.acting_primary).await;
                let status = client
                    .osd_status(OsdStatusRequest {})
                    .await
                    .ok()?
                    .into_inner();
                if status.epoch < u64::from(map.epoch()) {
                    return None;
                }
                let found = status.pgs.iter().find(|s| {
                    s.pg.as_ref()
                        .is_some_and(|p| p.pool == pg.pool && p.seed == pg.ps)
                })?;
                if found.state == "active+clean" && found.role == "primary" {
                    clean += 1;
                }
            }
            (clean == PG_NUM).then_some(())
        })
        .await;
    }

    /// Sends an op to the object's primary, following the map on STALE_EPOCH,
    /// MISDIRECTED, BUSY and transport errors, until `timeout`.
    async fn op(&self, name: &str, reqid: Option<ReqId>, ops: Vec<SubOp>) -> OpReply {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let map = self.map().await;
            let pg = map.object_to_pg(self.pool_id, name, "").unwrap();
            let primary = map.pg_to_up_acting(pg).unwrap().acting_primary;
            if primary >= 0 {
                let mut client = self.client_of(&map, primary).await;
                let request = OpRequest {
                    epoch: u64::from(map.epoch()),
                    pg: Some(proto::common::PlacementGroupId {
                        pool: pg.pool,
                        seed: pg.ps,
                    }),
                    object: Some(ObjectName {
                        namespace: String::new(),
                        name: name.into(),
                    }),
                    reqid,
                    ops: ops.clone(),
                };
                if let Ok(reply) = client.op(request).await {
                    let reply = reply.into_inner();
                    let retry = reply.error.as_ref().is_some_and(|e| {
                        matches!(
                            OpErrorKind::try_from(e.kind),
                            Ok(OpErrorKind::StaleEpoch
                                | OpErrorKind::Misdirected
                                | OpErrorKind::Busy)
                        )
                    });
                    if !retry {
                        return reply;
                    }
                }
            }
            assert!(Instant::now() < deadline, "op on {name} kept failing");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// (osd, object) -> (version, digest) from every running OSD's store.
    async fn placements(&self) -> BTreeMap<(OsdId, String), (u64, u32, u64)> {
        let map = self.map().await;
        let mut found = BTreeMap::new();
        for (index, osd) in self.osds.iter().enumerate() {
            if osd.child.is_none() {
                continue;
            }
            let id = self.osd_id(index);
            let mut client = self.client_of(&map, id).await;
            // Stray copies (PGs that moved away) stay until PG removal exists; they
            // serve nothing, so they are not placements.
            let status = client
                .osd_status(OsdStatusRequest {})
                .await
                .expect("osd status")
                .into_inner();
            let strays: BTreeSet<u32> = status
                .pgs
                .iter()
                .filter(|pg| pg.role == "stray")
                .filter_map(|pg| pg.pg.as_ref().map(|p| p.seed))
                .collect();
            for ps in 0..PG_NUM {
                if strays.contains(&ps) {
                    continue;
                }
                let mut after = None;
                loop {
                    let reply = client
                        .pg_scan(PgScanRequest {
                            epoch: u64::from(map.epoch()),
                            pg: Some(proto::common::PlacementGroupId {
                                pool: self.pool_id,
                                seed: ps,
                            }),
                            start_after: after.clone(),
                            max: 100,
                            with_digest: true,
                        })
                        .await
                        .expect("pg scan")
                        .into_inner();
                    for object in &reply.objects {
                        let name = object.object.as_ref().unwrap().name.clone();
                        let version = object.version.unwrap();
                        found.insert((id, name), (version.version, version.epoch, object.digest));
                    }
                    after = reply.objects.last().and_then(|o| o.object.clone());
                    if !reply.more {
                        break;
                    }
                }
            }
        }
        found
    }

    /// Every object in `expected` is on exactly its acting OSDs, identical on each, and
    /// no OSD holds another object of the pool.
    async fn check_placement(&self, expected: &BTreeSet<String>) {
        let map = self.map().await;
        let placements = self.placements().await;
        let mut seen = BTreeSet::new();
        for (osd, name) in placements.keys() {
            assert!(
                expected.contains(name),
                "osd.{osd} holds unexpected object {name}"
            );
            seen.insert(name.clone());
        }
        for name in expected {
            let pg = map.object_to_pg(self.pool_id, name, "").unwrap();
            let acting: BTreeSet<OsdId> = map
                .pg_to_up_acting(pg)
                .unwrap()
                .acting
                .into_iter()
                .collect();
            let holders: BTreeSet<OsdId> = placements
                .keys()
                .filter(|(_, n)| n == name)
                .map(|(osd, _)| *osd)
                .collect();
            assert_eq!(holders, acting, "object {name} in pg {pg}");
            let copies: BTreeSet<_> = placements
                .iter()
                .filter(|((_, n), _)| n == name)
                .map(|(_, value)| *value)
                .collect();
            assert_eq!(copies.len(), 1, "copies of {name} differ: {copies:?}");
        }
    }
}

fn reqid(client: u64, tid: u64) -> Option<ReqId> {
    Some(ReqId { client, tid })
}

fn write_full(data: &[u8]) -> SubOp {
    SubOp {
        op: Some(Op::WriteFull(WriteFullOp {
            data: Bytes::copy_from_slice(data),
        })),
    }
}

fn append(data: &[u8]) -> SubOp {
    SubOp {
        op: Some(Op::Append(AppendOp {
            data: Bytes::copy_from_slice(data),
        })),
    }
}

fn read_all() -> SubOp {
    SubOp {
        op: Some(Op::Read(ReadOp {
            offset: 0,
            length: 0,
        })),
    }
}

fn content(name: &str, round: u32) -> Vec<u8> {
    let len = 100 + (name.len() * 997 + round as usize * 131) % 70_000;
    (0..len)
        .map(|i| (i as u32 ^ round).wrapping_mul(2654435761) as u8)
        .collect()
}

fn assert_ok(reply: &OpReply, what: &str) {
    assert!(reply.error.is_none(), "{what}: {:?}", reply.error);
}

fn read_data(reply: &OpReply) -> Vec<u8> {
    match reply.results.first().and_then(|r| r.result.clone()) {
        Some(sub_op_result::Result::Data(data)) => data.to_vec(),
        other => panic!("expected data, got {other:?}"),
    }
}

fn error_kind(reply: &OpReply) -> Option<OpErrorKind> {
    reply
        .error
        .as_ref()
        .map(|e| OpErrorKind::try_from(e.kind).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_land_on_every_acting_osd_once_and_bad_input_is_refused() {
    let mut cluster = TestCluster::start(4).await;
    cluster.create_pool().await;
    cluster.wait_clean(Duration::from_secs(30)).await;

    // Writes, each acknowledged only once every acting OSD has it.
    let mut names = BTreeSet::new();
    for i in 0..40u64 {
        let name = format!("object-{i}");
        let reply = cluster
            .op(&name, reqid(7, i + 1), vec![write_full(&content(&name, 0))])
            .await;
        assert_ok(&reply, &name);
        names.insert(name);
    }
    // Compound write with xattrs and omap, then reads of each.
    let reply = cluster
        .op(
            "object-0",
            reqid(7, 100),
            vec![
                SubOp {
                    op: Some(Op::SetXattr(SetXattrOp {
                        name: "lang".into(),
                        value: Bytes::from_static(b"en"),
                    })),
                },
                SubOp {
                    op: Some(Op::OmapSet(OmapSetOp {
                        entries: vec![OmapEntry {
                            key: Bytes::from_static(b"k1"),
                            value: Bytes::from_static(b"v1"),
                        }],
                    })),
                },
            ],
        )
        .await;
    assert_ok(&reply, "xattr and omap");
    let reply = cluster
        .op(
            "object-0",
            None,
            vec![
                read_all(),
                SubOp {
                    op: Some(Op::GetXattr("lang".into())),
                },
                SubOp {
                    op: Some(Op::OmapGet(OmapGetOp {
                        keys: vec![Bytes::from_static(b"k1")],
                    })),
                },
                SubOp {
                    op: Some(Op::Stat(Empty {})),
                },
            ],
        )
        .await;
    assert_ok(&reply, "reads");
    assert_eq!(read_data(&reply), content("object-0", 0));
    assert!(matches!(
        &reply.results[1].result,
        Some(sub_op_result::Result::XattrValue(v)) if v.as_ref() == b"en"
    ));
    assert!(matches!(
        &reply.results[2].result,
        Some(sub_op_result::Result::Omap(page)) if page.entries.len() == 1
    ));

    // A resent append (same reqid) is applied once and answers the same version.
    let first = cluster.op("log", reqid(9, 1), vec![append(b"one;")]).await;
    assert_ok(&first, "append");
    let again = cluster.op("log", reqid(9, 1), vec![append(b"one;")]).await;
    assert_ok(&again, "resent append");
    assert_eq!(first.version, again.version);
    let read = cluster.op("log", None, vec![read_all()]).await;
    assert_eq!(read_data(&read), b"one;");
    names.insert("log".into());

    cluster.check_placement(&names).await;

    // Placement errors: an old epoch at a non-primary is STALE_EPOCH; the current epoch
    // there is MISDIRECTED.
    let map = cluster.map().await;
    let pg = map.object_to_pg(cluster.pool_id, "object-1", "").unwrap();
    let mapping = map.pg_to_up_acting(pg).unwrap();
    let other = (0..4)
        .map(|i| cluster.osd_id(i))
        .find(|osd| *osd != mapping.acting_primary)
        .unwrap();
    let mut client = cluster.client_of(&map, other).await;
    let request = |epoch: u64, name: &str, ops: Vec<SubOp>, reqid: Option<ReqId>| OpRequest {
        epoch,
        pg: Some(proto::common::PlacementGroupId {
            pool: pg.pool,
            seed: pg.ps,
        }),
        object: Some(ObjectName {
            namespace: String::new(),
            name: name.into(),
        }),
        reqid,
        ops,
    };
    let reply = client
        .op(request(1, "object-1", vec![read_all()], None))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        error_kind(&reply),
        Some(OpErrorKind::StaleEpoch),
        "{reply:?}"
    );
    assert!(reply.epoch >= u64::from(map.epoch()));
    let reply = client
        .op(request(
            u64::from(map.epoch()),
            "object-1",
            vec![read_all()],
            None,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        error_kind(&reply),
        Some(OpErrorKind::Misdirected),
        "{reply:?}"
    );

    // Malformed requests get typed errors, straight at the primary.
    let mut primary = cluster.client_of(&map, mapping.acting_primary).await;
    let epoch = u64::from(map.epoch());
    for (what, req, kind) in [
        (
            "empty name",
            request(epoch, "", vec![read_all()], None),
            OpErrorKind::InvalidArgument,
        ),
        (
            "no sub-op",
            request(epoch, "object-1", vec![], reqid(1, 1)),
            OpErrorKind::InvalidArgument,
        ),
        (
            "mixed",
            request(
                epoch,
                "object-1",
                vec![read_all(), append(b"x")],
                reqid(1, 2),
            ),
            OpErrorKind::InvalidArgument,
        ),
        (
            "write without reqid",
            request(epoch, "object-1", vec![append(b"x")], None),
            OpErrorKind::InvalidArgument,
        ),
        (
            "too large",
            request(
                epoch,
                "object-1",
                vec![write_full(&vec![1; 2 << 20])],
                reqid(1, 3),
            ),
            OpErrorKind::TooLarge,
        ),
        (
            "empty sub-op",
            request(epoch, "object-1", vec![SubOp { op: None }], reqid(1, 4)),
            OpErrorKind::InvalidArgument,
        ),
    ] {
        let reply = primary.op(req).await.unwrap().into_inner();
        assert_eq!(error_kind(&reply), Some(kind), "{what}: {reply:?}");
    }
    let missing = cluster.op("no-such-object", None, vec![read_all()]).await;
    assert_eq!(error_kind(&missing), Some(OpErrorKind::NotFound));
    // Garbage on the gRPC port does not take the OSD down.
    let addr = map
        .osd(mapping.acting_primary)
        .unwrap()
        .address
        .clone()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = raw
            .write_all(b"\x00\x01garbage that is not http/2\r\n\r\n")
            .await;
    }
    let reply = cluster.op("object-1", None, vec![read_all()]).await;
    assert_ok(&reply, "read after garbage");
    assert_eq!(read_data(&reply), content("object-1", 0));
    cluster.check_placement(&names).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_go_on_when_a_replica_is_killed_and_it_is_resynced_on_return() {
    let mut cluster = TestCluster::start(4).await;
    cluster.create_pool().await;
    cluster.wait_clean(Duration::from_secs(30)).await;

    let mut names = BTreeSet::new();
    let mut tid = 0;
    for i in 0..20 {
        let name = format!("before-{i}");
        tid += 1;
        assert_ok(
            &cluster
                .op(&name, reqid(3, tid), vec![write_full(&content(&name, 1))])
                .await,
            &name,
        );
        names.insert(name);
    }
    // Kill a replica (not a primary of object "before-0"'s PG).
    let map = cluster.map().await;
    let pg = map.object_to_pg(cluster.pool_id, "before-0", "").unwrap();
    let mapping = map.pg_to_up_acting(pg).unwrap();
    let victim_id = mapping.acting[1];
    let victim = (0..4).find(|i| cluster.osd_id(*i) == victim_id).unwrap();
    cluster.kill(victim);
    let killed_at = Instant::now();

    // Writes continue throughout (they may wait while the OSD is detected and peering runs).
    for i in 0..20 {
        let name = format!("during-{i}");
        tid += 1;
        assert_ok(
            &cluster
                .op(&name, reqid(3, tid), vec![write_full(&content(&name, 2))])
                .await,
            &name,
        );
        names.insert(name);
    }
    wait_for(
        "the killed OSD to be marked down",
        Duration::from_secs(15),
        || async {
            let map = cluster.map().await;
            (!map.is_up(victim_id)).then_some(())
        },
    )
    .await;
    eprintln!(
        "osd.{victim_id} marked down {:?} after the kill",
        killed_at.elapsed()
    );
    for i in 0..10 {
        let name = format!("after-{i}");
        tid += 1;
        assert_ok(
            &cluster
                .op(&name, reqid(3, tid), vec![write_full(&content(&name, 3))])
                .await,
            &name,
        );
        names.insert(name);
    }
    cluster.wait_clean(Duration::from_secs(30)).await;
    cluster.check_placement(&names).await;
    for name in &names {
        let round = if name.starts_with("before") {
            1
        } else if name.starts_with("during") {
            2
        } else {
            3
        };
        let reply = cluster.op(name, None, vec![read_all()]).await;
        assert_eq!(read_data(&reply), content(name, round), "{name}");
    }

    // The OSD returns with stale data; peering brings it up to date.
    cluster.spawn(victim);
    wait_for(
        "the OSD to be up again",
        Duration::from_secs(15),
        || async {
            let map = cluster.map().await;
            map.is_up(victim_id).then_some(())
        },
    )
    .await;
    cluster.wait_clean(Duration::from_secs(30)).await;
    cluster.check_placement(&names).await;
}

/// 2.5 in CRUSH's 16.16 fixed point (`0x10000` is 1.0), as the map stores weights.
const WEIGHT_2_5: u32 = 0x2_8000;
/// 1.0 in CRUSH's 16.16 fixed point: the weight of an OSD started without `--weight`.
const WEIGHT_1: u32 = 0x1_0000;

/// The name and type name of the ordinary CRUSH bucket that holds `item`, and the weight
/// it gives `item`.
fn crush_parent(map: &ClusterMap, item: i32) -> Option<(String, String, u32)> {
    let crush = map.crush();
    let parent = crush.parent_of(item)?;
    let weight = parent.items.iter().find(|i| i.id == item)?.weight;
    let kind = crush
        .types
        .get(&parent.type_id)
        .cloned()
        .unwrap_or_default();
    Some((parent.name.clone(), kind, weight))
}

/// Reads every object in `names` and checks it holds what the test wrote (round 4).
async fn read_back(cluster: &TestCluster, names: &BTreeSet<String>, phase: &str) {
    for name in names {
        let reply = cluster.op(name, None, vec![read_all()]).await;
        assert_ok(&reply, &format!("read {name} {phase}"));
        assert_eq!(
            read_data(&reply),
            content(name, 4),
            "{name} {phase} must read back what was written"
        );
    }
}

/// `(up, in)` of an OSD as `map` has it.
fn up_in(map: &ClusterMap, id: OsdId) -> (bool, bool) {
    let info = map.osd(id).expect("the OSD is in the map");
    (info.up, info.is_in)
}

/// An OSD started with `--host`, `--crush-location` and `--weight` is placed by the
/// monitors in the map's CRUSH hierarchy (host bucket under the rack under `default`,
/// weight 2.5 in 16.16), and stays there with the same id across a `kill -9` restart.
/// Killed for good, it is marked down, then out after the down-out interval; the PGs go
/// active+clean on the other OSDs and every object reads back. Started again, it is
/// marked up and in, in the same CRUSH place, and the PGs map as they did before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crush_location_and_weight_survive_restarts_and_a_dead_osd_goes_down_then_out() {
    const HOST: &str = "edge-host";
    const RACK: &str = "rack-a";
    let down_out = Duration::from_millis(
        MonConfig::for_tests(1, PathBuf::new())
            .failure
            .down_out_interval_ms,
    );
    assert!(
        down_out <= Duration::from_secs(2),
        "the test monitor's down-out interval {down_out:?} is too long for this test"
    );
    // OSD 0 gets the location and weight; a location that names no root hangs its new
    // rack under the default root, which the pool's rule starts from.
    let mut cluster = TestCluster::start_with(4, |index| {
        (index == 0).then(|| {
            let args = [
                "--crush-location",
                &format!("rack={RACK}"),
                "--weight",
                "2.5",
            ];
            (
                HOST.to_owned(),
                args.iter().map(|a| a.to_string()).collect(),
            )
        })
    })
    .await;
    let id = cluster.osd_id(0);
    let others: Vec<OsdId> = (1..4).map(|i| cluster.osd_id(i)).collect();

    // 1. The map's CRUSH hierarchy: osd -> host -> rack -> default, weight 2.5 all the way up.
    let map = wait_for(
        "the map to show every OSD up and in",
        Duration::from_secs(10),
        || async {
            let map = cluster.map().await;
            std::iter::once(id)
                .chain(others.iter().copied())
                .all(|osd| up_in(&map, osd) == (true, true))
                .then_some(map)
        },
    )
    .await;
    assert_eq!(
        map.osd(id).unwrap().host,
        HOST,
        "osd.{id}'s host in the map"
    );
    let device = map.crush().devices.get(&id);
    assert_eq!(
        device.map(|d| d.name.as_str()),
        Some(format!("osd.{id}").as_str()),
        "osd.{id} is a CRUSH device"
    );
    assert_eq!(
        crush_parent(&map, id),
        Some((HOST.to_owned(), "host".to_owned(), WEIGHT_2_5)),
        "osd.{id} must be an item of host bucket {HOST} with CRUSH weight 2.5 (0x28000)"
    );
    assert_eq!(
        map.crush_weight(id),
        Some(WEIGHT_2_5),
        "osd.{id}'s CRUSH weight"
    );
    let host_id = map.crush().bucket_by_name(HOST).expect("host bucket").id;
    assert_eq!(
        crush_parent(&map, host_id),
        Some((RACK.to_owned(), "rack".to_owned(), WEIGHT_2_5)),
        "bucket {HOST} must sit under bucket {RACK} of type rack, with its weight"
    );
    let rack_id = map.crush().bucket_by_name(RACK).expect("rack bucket").id;
    assert_eq!(
        crush_parent(&map, rack_id),
        Some(("default".to_owned(), "root".to_owned(), WEIGHT_2_5)),
        "bucket {RACK} must sit under root default"
    );
    for (index, osd) in others.iter().enumerate() {
        let host = format!("host{}", index + 1);
        assert_eq!(
            crush_parent(&map, *osd),
            Some((host.clone(), "host".to_owned(), WEIGHT_1)),
            "osd.{osd} (no flags) is under its own host with weight 1.0"
        );
        let bucket = map.crush().bucket_by_name(&host).unwrap().id;
        assert_eq!(
            crush_parent(&map, bucket).map(|(name, kind, _)| (name, kind)),
            Some(("default".to_owned(), "root".to_owned())),
            "{host} (no --crush-location) is directly under root default"
        );
    }

    // 2. kill -9 and start again on the same data directory: same id, same CRUSH place.
    let before = map.osd(id).unwrap().clone();
    let crush_before = map.crush().clone();
    cluster.kill(0);
    cluster.spawn(0);
    let map = wait_for(
        "the restarted OSD to be up again (a new up_from)",
        Duration::from_secs(20),
        || async {
            let map = cluster.map().await;
            let info = map.osd(id)?;
            (info.up && info.up_from > before.up_from).then_some(map)
        },
    )
    .await;
    assert_eq!(cluster.osd_id(0), id, "whoami after the restart");
    assert_eq!(
        map.osd_by_uuid(before.uuid).map(|info| info.id),
        Some(id),
        "the restarted OSD's uuid still maps to osd.{id}"
    );
    assert_eq!(map.osds().len(), 4, "a restart must not register a new OSD");
    assert!(map.is_in(id), "osd.{id} stays in across a restart");
    assert_eq!(map.osd(id).unwrap().host, HOST);
    assert_eq!(
        crush_parent(&map, id),
        Some((HOST.to_owned(), "host".to_owned(), WEIGHT_2_5)),
        "osd.{id} after the restart"
    );
    assert_eq!(
        map.crush(),
        &crush_before,
        "a restart must leave the CRUSH map as it was"
    );

    // 3. A pool with objects; osd.{id} (the heaviest) dies for good.
    cluster.create_pool().await;
    cluster.wait_clean(Duration::from_secs(30)).await;
    let map = cluster.map().await;
    let pgs: Vec<PgId> = (0..PG_NUM)
        .map(|ps| PgId::new(cluster.pool_id, ps))
        .collect();
    let up_before: Vec<Vec<OsdId>> = pgs
        .iter()
        .map(|pg| map.pg_to_up_acting(*pg).unwrap().up)
        .collect();
    let served = up_before.iter().filter(|up| up.contains(&id)).count();
    assert!(
        served > 0,
        "osd.{id} (weight 2.5, under the rule's root) must serve some PGs: {up_before:?}"
    );
    let mut names = BTreeSet::new();
    for i in 0..30u64 {
        let name = format!("racked-{i}");
        let reply = cluster
            .op(
                &name,
                reqid(11, i + 1),
                vec![write_full(&content(&name, 4))],
            )
            .await;
        assert_ok(&reply, &name);
        names.insert(name);
    }
    cluster.kill(0);
    let killed_at = Instant::now();
    let down = wait_for(
        "the killed OSD to be marked down",
        Duration::from_secs(15),
        || async {
            let map = cluster.map().await;
            (!map.is_up(id)).then_some(map)
        },
    )
    .await;
    let down_info = down.osd(id).unwrap().clone();
    eprintln!(
        "osd.{id} marked down at epoch {} ({:?} after the kill), in = {}",
        down_info.down_at,
        killed_at.elapsed(),
        down_info.is_in
    );
    assert!(
        down_info.down_since_ms.is_some(),
        "a down OSD has down_since_ms: {down_info:?}"
    );
    let out = wait_for(
        "the down OSD to be marked out after the down-out interval",
        Duration::from_secs(15) + down_out,
        || async {
            let map = cluster.map().await;
            (!map.is_in(id)).then_some(map)
        },
    )
    .await;
    let out_info = out.osd(id).unwrap().clone();
    eprintln!(
        "osd.{id} marked out at epoch {} ({:?} after the kill)",
        out_info.in_changed_at,
        killed_at.elapsed()
    );
    assert!(
        !out_info.up,
        "osd.{id} is still down when out: {out_info:?}"
    );
    assert_eq!(
        out_info.down_at, down_info.down_at,
        "the OSD went down once: {out_info:?}"
    );
    assert!(
        out_info.in_changed_at > out_info.down_at,
        "the out (epoch {}) must come after the down (epoch {})",
        out_info.in_changed_at,
        out_info.down_at
    );
    assert_eq!(
        out.crush(),
        &crush_before,
        "marking out leaves the CRUSH map alone (the OSD gets weight 0 from `in`)"
    );

    // The PGs go active+clean on the three others (size 3 over three hosts).
    cluster.wait_clean(Duration::from_secs(30)).await;
    let map = cluster.map().await;
    for pg in &pgs {
        let mapping = map.pg_to_up_acting(*pg).unwrap();
        let acting: BTreeSet<OsdId> = mapping.acting.iter().copied().collect();
        assert_eq!(
            acting,
            others.iter().copied().collect::<BTreeSet<_>>(),
            "pg {pg} must be served by the three remaining OSDs"
        );
    }
    read_back(&cluster, &names, "with the OSD out").await;
    cluster.check_placement(&names).await;

    // Started again: up and in, in the same CRUSH place, the PGs map as before.
    cluster.spawn(0);
    let map = wait_for(
        "the returning OSD to be marked up and in",
        Duration::from_secs(20),
        || async {
            let map = cluster.map().await;
            let info = map.osd(id)?;
            (info.up && info.is_in && info.up_from > out_info.down_at).then_some(map)
        },
    )
    .await;
    assert_eq!(cluster.osd_id(0), id, "whoami after the return");
    assert_eq!(
        map.osds().len(),
        4,
        "the return must not register a new OSD"
    );
    assert_eq!(
        map.crush(),
        &crush_before,
        "the return must leave the CRUSH map as it was"
    );
    let up_after: Vec<Vec<OsdId>> = pgs
        .iter()
        .map(|pg| map.pg_to_up_acting(*pg).unwrap().up)
        .collect();
    assert_eq!(
        up_after, up_before,
        "with the same CRUSH map and the OSD in again, every PG maps as before the kill"
    );
    cluster.wait_clean(Duration::from_secs(30)).await;
    read_back(&cluster, &names, "after the OSD returned").await;
    cluster.check_placement(&names).await;
    eprintln!("done {:?} after the kill", killed_at.elapsed());
}
