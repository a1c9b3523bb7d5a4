//! Helpers shared by the multi-process integration tests: clusters of real `shoal-mon`
//! processes started through the same launcher `shoal cluster up` uses ([`deploy`]), in a
//! temporary directory, with short Raft timings; polling with deadlines; running the
//! `shoal` binary; building monitor commands.
//!
//! The binaries must be built before the tests run (cargo builds only the tested package's
//! own binaries): `cargo build -p monitor --bin shoal-mon -p shoal-cli --bin shoal`, with
//! the same profile and target directory as `cargo test`. A missing binary fails the test
//! with that instruction; nothing is skipped.
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
use librados::clustermap::ClusterMap;
use librados::proto::mon::monitor_client::MonitorClient;
use librados::proto::mon::{command::Kind, Command, GetMapRequest, PoolCreate};
use librados::MonClient;

/// A cluster in a temporary directory; dropping it kills its processes, then removes the
/// directory.
pub struct TestCluster {
    /// The launcher's handle (declared first: dropped, and its processes killed, before
    /// the directory is removed).
    pub cluster: Cluster,
    /// The temporary directory holding everything.
    pub dir: tempfile::TempDir,
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

/// Starts `mons` monitors with test timings in a new temporary directory.
pub async fn start(mons: u32) -> TestCluster {
    start_with(ClusterSpec::for_tests(mons)).await
}

/// Starts a cluster from `spec` in a new temporary directory.
pub async fn start_with(mut spec: ClusterSpec) -> TestCluster {
    let dir = tempfile::Builder::new()
        .prefix("shoal-test-")
        .tempdir()
        .expect("a temporary directory");
    spec.bin_dir = Some(bin_dir());
    let cluster = Cluster::up(dir.path(), spec)
        .await
        .unwrap_or_else(|error| panic!("the cluster starts: {error}"));
    TestCluster { cluster, dir }
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
    Command {
        kind: Some(Kind::PoolCreate(PoolCreate {
            name: name.to_owned(),
            pg_num,
            size: 3,
            min_size: 0,
            crush_rule: String::new(),
        })),
    }
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
    use std::os::unix::fs::MetadataExt;
    walk(path, &|metadata| metadata.blocks() * 512)
}

/// The apparent size (file lengths) of the files under `path`.
pub fn apparent_size(path: &Path) -> u64 {
    walk(path, &|metadata| metadata.len())
}

fn walk(path: &Path, size: &dyn Fn(&std::fs::Metadata) -> u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => walk(&entry.path(), size),
            Ok(metadata) => size(&metadata),
            Err(_) => 0,
        })
        .sum()
}
