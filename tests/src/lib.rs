//! Helpers shared by the multi-process integration tests: clusters of real `shoal-mon` and
//! `shoal-osd` processes started through the same launcher `shoal cluster up` uses
//! ([`deploy`]), in a temporary directory, with short Raft and failure-detection timings;
//! polling with deadlines; running the `shoal` binary; building monitor commands; the
//! data-path client ([`connect`]) and the OSDs' admin calls ([`osd_admin`], [`scan_pg`]).
//!
//! The binaries must be built before the tests run (cargo builds only the tested package's
//! own binaries): `cargo build -p monitor --bin shoal-mon -p osd --bin shoal-osd -p
//! shoal-cli --bin shoal`, with the same profile and target directory as `cargo test`
//! (`scripts/test.sh` does). A missing binary fails the test with that instruction;
//! nothing is skipped.
//!
//! Every process a test starts belongs to its [`TestCluster`], whose drop kills them, so a
//! failing (panicking) test leaves no daemon behind. Every monitor listens on port 0, so
//! tests run in parallel.
#![deny(missing_docs)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use deploy::{Binaries, Cluster, ClusterSpec};
use librados::clustermap::{ClusterMap, PgId};
use librados::proto::common::PlacementGroupId;
use librados::proto::mon::monitor_client::MonitorClient;
use librados::proto::mon::{command::Kind, Command, GetMapRequest, PoolCreate};
use librados::proto::osd::osd_client::OsdClient;
use librados::proto::osd::{ObjectName, OsdStatusRequest, PgScanRequest, ScannedObject};
use librados::{ClientConfig, MonClient, Rados};
use tonic::transport::Channel;

/// A cluster in a temporary directory; dropping it kills its processes, then removes the
/// directory.
pub struct TestCluster {
    /// The launcher's handle (declared first: dropped, and its processes killed, before
    /// the directory is removed).
    pub cluster: Cluster,
    /// The temporary directory holding everything.
    pub dir: TestDir,
}

impl std::ops::Deref for TestCluster {
    type Target = Cluster;

    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl std::ops::DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}

/// A test's temporary directory, removed when the test passes and kept (with the cluster's
/// data, `shoal.conf` and every daemon's log) when it fails, so the failure can be read.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    /// Its path.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.disable_cleanup(true);
            eprintln!(
                "test failed: the cluster's directory is kept at {}",
                self.0.path().display()
            );
        }
    }
}

/// The directory holding `shoal-mon` and `shoal`; panics with build instructions when
/// they are missing.
pub fn bin_dir() -> PathBuf {
    match Binaries::locate(None) {
        Ok(binaries) => binaries
            .mon
            .parent()
            .map(Path::to_path_buf)
            .expect("the binary has a directory"),
        Err(error) => panic!(
            "{error}\nbuild the daemons first: cargo build -p monitor --bin shoal-mon -p shoal-cli --bin shoal"
        ),
    }
}

/// The `shoal` CLI binary.
pub fn shoal_binary() -> PathBuf {
    let path = bin_dir().join("shoal");
    assert!(
        path.is_file(),
        "{} is missing; build it first: cargo build -p shoal-cli --bin shoal",
        path.display()
    );
    path
}

/// The `shoal-osd` binary; panics with build instructions when it is missing.
pub fn osd_binary() -> PathBuf {
    let path = bin_dir().join("shoal-osd");
    assert!(
        path.is_file(),
        "{} is missing; build it first: cargo build -p osd --bin shoal-osd",
        path.display()
    );
    path
}

/// Starts `mons` monitors with test timings in a new temporary directory.
pub async fn start(mons: u32) -> TestCluster {
    start_with(ClusterSpec::for_tests(mons)).await
}

/// Starts `mons` monitors and `osds` OSDs with test timings in a new temporary directory;
/// returns once the cluster is `HEALTH_OK`.
pub async fn start_with_osds(mons: u32, osds: u32) -> TestCluster {
    start_with(ClusterSpec::for_tests_with_osds(mons, osds)).await
}

/// Starts a cluster from `spec` in a new temporary directory.
pub async fn start_with(mut spec: ClusterSpec) -> TestCluster {
    let dir = tempfile::Builder::new()
        .prefix("shoal-test-")
        .tempdir()
        .expect("a temporary directory");
    spec.bin_dir = Some(bin_dir());
    if spec.osds > 0 {
        osd_binary();
    }
    let cluster = Cluster::up(dir.path(), spec)
        .await
        .unwrap_or_else(|error| panic!("the cluster starts: {error}"));
    TestCluster {
        cluster,
        dir: TestDir(dir),
    }
}

/// Polls `check` every 20 ms until it returns `Some`, panicking after `timeout` with what
/// was awaited and the last note `check` left.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(note) => note,
        };
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}; last: {last}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `pool create NAME PG_NUM` with size 3.
pub fn pool_create(name: &str, pg_num: u32) -> Command {
    pool_create_sized(name, pg_num, 3, 0)
}

/// `pool create NAME PG_NUM` with `size` replicas and `min_size` (0: the default).
pub fn pool_create_sized(name: &str, pg_num: u32, size: u32, min_size: u32) -> Command {
    Command {
        kind: Some(Kind::PoolCreate(PoolCreate {
            name: name.to_owned(),
            pg_num: Some(pg_num),
            size: Some(size),
            min_size: (min_size != 0).then_some(min_size),
            crush_rule: String::new(),
        })),
    }
}

/// Creates a pool and waits until the cluster is `HEALTH_OK` with every PG
/// `active+clean`; returns the pool's id.
pub async fn create_pool(
    cluster: &mut Cluster,
    name: &str,
    pg_num: u32,
    size: u32,
    min_size: u32,
) -> i64 {
    let outcome = cluster
        .client()
        .expect("a monitor client")
        .command(pool_create_sized(name, pg_num, size, min_size))
        .await
        .unwrap_or_else(|error| panic!("pool create {name}: {error}"));
    let status = cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .unwrap_or_else(|error| panic!("the cluster is healthy after creating {name}: {error}"));
    let map = cluster
        .client()
        .expect("a monitor client")
        .wait_for_epoch(outcome.epoch.max(status.epoch), Duration::from_secs(10))
        .await
        .expect("the map with the pool");
    map.pool_by_name(name).expect("the new pool").id
}

/// A data-path client configured from the cluster's `shoal.conf`.
pub async fn connect(cluster: &Cluster) -> Rados {
    let config = ClientConfig::load(Some(&cluster.conf_path())).expect("the client config");
    Rados::connect(config).await.expect("the client connects")
}

/// Like [`connect`], with another op timeout (how long one op may take, resends
/// included).
pub async fn connect_with_op_timeout(cluster: &Cluster, op_timeout: Duration) -> Rados {
    let mut config = ClientConfig::load(Some(&cluster.conf_path())).expect("the client config");
    config.op_timeout = op_timeout;
    Rados::connect(config).await.expect("the client connects")
}

/// Sets `noup` and marks `osd` down while its process keeps running (so that it cannot
/// boot itself up again); returns the epoch that marked it down.
pub async fn mark_down_while_running(mon: &MonClient, osd: i32) -> u64 {
    use librados::proto::mon::OsdIds;
    mon.command(flag("noup", true)).await.expect("set noup");
    mon.command(Command {
        kind: Some(Kind::OsdDown(OsdIds { ids: vec![osd] })),
    })
    .await
    .unwrap_or_else(|error| panic!("osd down {osd}: {error}"))
    .epoch
}

/// Waits (up to 30 s) until the OSD at `addr` has caught up with map `epoch`.
pub async fn wait_osd_epoch(addr: &str, epoch: u64) {
    let client = osd_admin(addr);
    wait_for(
        "the OSD to catch up with the map",
        Duration::from_secs(30),
        || {
            let mut client = client.clone();
            async move {
                let status = client
                    .osd_status(OsdStatusRequest {})
                    .await
                    .map_err(|status| status.to_string())?
                    .into_inner();
                (status.epoch >= epoch)
                    .then_some(())
                    .ok_or(format!("at epoch {}", status.epoch))
            }
        },
    )
    .await;
}

/// A gRPC client of the OSD at `addr` (admin and raw calls), accepting whole objects.
pub fn osd_admin(addr: &str) -> OsdClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an OSD address")
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(60))
        .connect_lazy();
    OsdClient::new(channel)
        .max_decoding_message_size(librados::proto::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(librados::proto::MAX_MESSAGE_BYTES)
}

/// Every object the OSD at `addr` holds of PG `pg` in its own store (`PgScan`, paged),
/// with digests when asked; empty when it holds no copy of the PG.
pub async fn scan_pg(
    client: &mut OsdClient<Channel>,
    epoch: u64,
    pg: PgId,
    with_digest: bool,
) -> Result<Vec<ScannedObject>, String> {
    let mut objects: Vec<ScannedObject> = Vec::new();
    let mut start_after: Option<ObjectName> = None;
    loop {
        let reply = client
            .pg_scan(PgScanRequest {
                epoch,
                pg: Some(PlacementGroupId {
                    pool: pg.pool,
                    seed: pg.ps,
                }),
                start_after: start_after.clone(),
                max: 0,
                with_digest,
            })
            .await
            .map_err(|status| format!("PgScan {}.{:x}: {status}", pg.pool, pg.ps))?
            .into_inner();
        if !reply.exists {
            return Ok(objects);
        }
        start_after = reply
            .objects
            .last()
            .and_then(|object| object.object.clone());
        objects.extend(reply.objects);
        if !reply.more || start_after.is_none() {
            return Ok(objects);
        }
    }
}

/// A deterministic pseudo-random byte string of `len` bytes for `seed` (xorshift64*), so
/// tests regenerate what they wrote instead of keeping it in memory.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        data.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    data.truncate(len);
    data
}

/// `osd set FLAG` or `osd unset FLAG`.
pub fn flag(name: &str, set: bool) -> Command {
    Command {
        kind: Some(if set {
            Kind::SetFlag(name.to_owned())
        } else {
            Kind::UnsetFlag(name.to_owned())
        }),
    }
}

/// The map monitor `addr` serves, as the exact bytes it sent, with its epoch.
pub async fn raw_map(addr: &str) -> Result<(u64, Vec<u8>), String> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|error| error.to_string())?
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .map_err(|error| error.to_string())?;
    let reply = MonitorClient::new(channel)
        .max_decoding_message_size(256 << 20)
        .get_map(GetMapRequest {})
        .await
        .map_err(|status| status.to_string())?
        .into_inner();
    Ok((reply.epoch, reply.map))
}

/// Waits until every monitor in `ids` serves the same map bytes at `epoch` or later;
/// returns that epoch and map.
pub async fn wait_identical_maps(
    cluster: &Cluster,
    ids: &[u64],
    timeout: Duration,
) -> (u64, ClusterMap) {
    let addrs: Vec<String> = ids
        .iter()
        .map(|id| cluster.mon_addr(*id).expect("a monitor address"))
        .collect();
    wait_for("identical maps on every monitor", timeout, || {
        let addrs = addrs.clone();
        async move {
            let mut first: Option<(u64, Vec<u8>)> = None;
            for addr in &addrs {
                let (epoch, bytes) = raw_map(addr).await?;
                match &first {
                    None => first = Some((epoch, bytes)),
                    Some((first_epoch, first_bytes)) => {
                        if epoch != *first_epoch || bytes != *first_bytes {
                            return Err(format!(
                                "{addr} is at epoch {epoch}, another at {first_epoch}"
                            ));
                        }
                    }
                }
            }
            let (epoch, bytes) = first.ok_or("no monitor")?;
            let map: ClusterMap =
                serde_json::from_slice(&bytes).map_err(|error| error.to_string())?;
            Ok((epoch, map))
        }
    })
    .await
}

/// The output of the `shoal` binary run with `-c CONF` and `args`.
pub fn shoal(conf: &Path, args: &[&str]) -> Output {
    std::process::Command::new(shoal_binary())
        .arg("-c")
        .arg(conf)
        .args(args)
        .env_remove("SHOAL_CONF")
        .env_remove("SHOAL_MON_HOST")
        .output()
        .expect("the shoal binary runs")
}

/// Stdout and stderr of a finished command, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The leader's current epoch, through `client`.
pub async fn leader_epoch(client: &MonClient) -> u64 {
    client.status().await.expect("status").epoch
}

/// Disk space used by the files under `path` (allocated blocks: preallocated, sparse
/// journal files count only for what they hold).
pub fn disk_usage(path: &Path) -> u64 {
    walk(path, &|_, metadata| allocated(metadata))
}

/// Disk space used by the files called `name` anywhere under `path`.
pub fn disk_usage_of_files_named(path: &Path, name: &str) -> u64 {
    walk(path, &|file_name, metadata| {
        if file_name == name {
            allocated(metadata)
        } else {
            0
        }
    })
}

/// The apparent size (file lengths) of the files under `path`.
pub fn apparent_size(path: &Path) -> u64 {
    walk(path, &|_, metadata| metadata.len())
}

fn allocated(metadata: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    metadata.blocks() * 512
}

/// Sums `size` (of a file's name and metadata) over the files under `path`.
fn walk(path: &Path, size: &dyn Fn(&std::ffi::OsStr, &std::fs::Metadata) -> u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => walk(&entry.path(), size),
            Ok(metadata) => size(&entry.file_name(), &metadata),
            Err(_) => 0,
        })
        .sum()
}

/// A raw `Op` request for object `name` (default namespace) of PG `pg`, as a client
/// computed it at `epoch`.
pub fn op_request(
    epoch: u64,
    pg: PgId,
    name: &str,
    reqid: Option<(u64, u64)>,
    ops: Vec<librados::proto::osd::sub_op::Op>,
) -> librados::proto::osd::OpRequest {
    use librados::proto::osd::{OpRequest, ReqId, SubOp};
    OpRequest {
        epoch,
        pg: Some(PlacementGroupId {
            pool: pg.pool,
            seed: pg.ps,
        }),
        object: Some(ObjectName {
            namespace: String::new(),
            name: name.to_owned(),
        }),
        reqid: reqid.map(|(client, tid)| ReqId { client, tid }),
        ops: ops.into_iter().map(|op| SubOp { op: Some(op) }).collect(),
    }
}

/// The OSD error kind of a raw reply (`None` on success).
pub fn op_error_kind(
    reply: &librados::proto::osd::OpReply,
) -> Option<librados::proto::osd::OpErrorKind> {
    reply.error.as_ref().map(|error| {
        librados::proto::osd::OpErrorKind::try_from(error.kind)
            .unwrap_or(librados::proto::osd::OpErrorKind::Unspecified)
    })
}

/// Whether `pid` runs (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// One copy of an object in an OSD's own store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCopy {
    /// The OSD holding it.
    pub osd: i32,
    /// Its version (epoch, counter).
    pub version: (u32, u64),
    /// Its size.
    pub size: u64,
    /// Its digest (data, xattrs, omap).
    pub digest: u64,
}

/// Every copy of every object of pool `pool` (default namespace) that the OSDs of `map`
/// hold in their own stores, by object name (`PgScan` with digests on every PG of every
/// OSD).
pub async fn stored_copies(
    map: &ClusterMap,
    pool: i64,
) -> std::collections::BTreeMap<String, Vec<StoredCopy>> {
    let epoch = u64::from(map.epoch());
    let pgs: Vec<PgId> = map.pool(pool).expect("the pool in the map").pgs().collect();
    let mut copies: std::collections::BTreeMap<String, Vec<StoredCopy>> = Default::default();
    for (id, info) in map.osds() {
        if !info.up {
            continue;
        }
        let addr = info.address.clone().expect("an up OSD has an address");
        let mut client = osd_admin(&addr);
        for pg in &pgs {
            let objects = scan_pg(&mut client, epoch, *pg, true)
                .await
                .unwrap_or_else(|error| panic!("osd.{id} at {addr}: {error}"));
            for object in objects {
                let name = object.object.expect("a scanned object has a name");
                assert_eq!(name.namespace, "", "{name:?}");
                let version = object.version.expect("a scanned object has a version");
                copies.entry(name.name).or_default().push(StoredCopy {
                    osd: *id,
                    version: (version.epoch, version.version),
                    size: object.size,
                    digest: object.digest,
                });
            }
        }
    }
    copies
}

/// Checks that object `name` of pool `pool_name` is held by exactly the acting set `map`
/// gives it, every copy at the same version and with the same size and digest; returns
/// that version.
pub fn assert_placed_consistently(
    map: &ClusterMap,
    pool_name: &str,
    name: &str,
    copies: &std::collections::BTreeMap<String, Vec<StoredCopy>>,
) -> (u32, u64) {
    let mapping = map.osd_map(pool_name, name, "").expect("a mapping").mapping;
    let mut acting = mapping.acting.clone();
    acting.sort_unstable();
    let held = copies
        .get(name)
        .unwrap_or_else(|| panic!("{name} is on no OSD"));
    let mut holders: Vec<i32> = held.iter().map(|copy| copy.osd).collect();
    holders.sort_unstable();
    assert_eq!(
        holders, acting,
        "{name} (pg {:?}) is held by {holders:?}, CRUSH names {acting:?}",
        mapping.pgid
    );
    for copy in held {
        assert_eq!(
            (copy.version, copy.size, copy.digest),
            (held[0].version, held[0].size, held[0].digest),
            "{name}: osd.{} and osd.{} differ",
            copy.osd,
            held[0].osd
        );
    }
    held[0].version
}
