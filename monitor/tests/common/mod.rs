//! Helpers for the monitor's in-process tests: a cluster of monitors on 127.0.0.1 port 0
//! in one process, each with its own data directory, and gRPC clients to them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use monitor::config::MemberConfig;
use monitor::node::Role;
use monitor::{MonConfig, MonitorServer};
use proto::mon::command::Kind;
use proto::mon::monitor_client::MonitorClient;
use proto::mon::{command_reply, Command, CommandReply, CommandRequest, PoolCreate};
use tonic::transport::Channel;

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A set of monitors sharing one temporary directory.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub configs: Vec<MonConfig>,
    pub servers: Vec<Option<MonitorServer>>,
}

pub fn data_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("mon.{id}"))
}

/// Test settings for monitor `id` of an initial set `ids`, peers found through their
/// `mon.addr` files.
pub fn member_config(root: &Path, id: u64, ids: &[u64]) -> MonConfig {
    let mut config = MonConfig::for_tests(id, data_dir(root, id));
    config.members = ids
        .iter()
        .map(|member| MemberConfig {
            id: *member,
            name: None,
            addr: None,
            addr_file: Some(data_dir(root, *member).join(monitor::ADDR_FILE)),
        })
        .collect();
    config
}

impl Cluster {
    /// Starts `n` monitors (ids 1..=n) and waits for the cluster to be created.
    pub async fn start(n: u64) -> Cluster {
        Self::start_with(n, |_| {}).await
    }

    /// Like [`Cluster::start`], with a hook to adjust each config.
    pub async fn start_with(n: u64, adjust: impl Fn(&mut MonConfig)) -> Cluster {
        // RUST_LOG=debug shows the monitors' logs for a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temporary directory");
        let ids: Vec<u64> = (1..=n).collect();
        let mut configs = Vec::new();
        let mut servers = Vec::new();
        for id in &ids {
            let mut config = member_config(dir.path(), *id, &ids);
            adjust(&mut config);
            servers.push(Some(
                MonitorServer::start(config.clone())
                    .await
                    .expect("monitor starts"),
            ));
            configs.push(config);
        }
        let cluster = Cluster {
            dir,
            configs,
            servers,
        };
        cluster.wait_created().await;
        cluster
    }

    pub fn server(&self, id: u64) -> &MonitorServer {
        self.servers[(id - 1) as usize]
            .as_ref()
            .expect("monitor is running")
    }

    pub fn running(&self) -> impl Iterator<Item = &MonitorServer> {
        self.servers.iter().flatten()
    }

    /// Waits until every running monitor has a map.
    pub async fn wait_created(&self) {
        wait_until("the cluster to be created", Duration::from_secs(10), || {
            self.running().all(|server| server.view().map.is_some())
        })
        .await;
    }

    /// The id of the leader the running monitors agree on.
    pub async fn leader(&self) -> u64 {
        let mut leader = 0;
        wait_until("a leader", Duration::from_secs(10), || {
            let leaders: Vec<u64> = self
                .running()
                .filter(|server| server.status().role == Role::Leader)
                .map(|server| server.id())
                .collect();
            if leaders.len() == 1 {
                leader = leaders[0];
                true
            } else {
                false
            }
        })
        .await;
        leader
    }

    /// A follower that is running.
    pub async fn follower(&self) -> u64 {
        let leader = self.leader().await;
        self.running()
            .map(|server| server.id())
            .find(|id| *id != leader)
            .expect("a running follower")
    }

    pub async fn stop(&mut self, id: u64) {
        let server = self.servers[(id - 1) as usize]
            .take()
            .expect("monitor is running");
        server.stop().await.expect("monitor stops cleanly");
    }

    pub async fn restart(&mut self, id: u64) {
        let config = self.configs[(id - 1) as usize].clone();
        self.servers[(id - 1) as usize] = Some(
            MonitorServer::start(config)
                .await
                .expect("monitor restarts"),
        );
    }

    pub async fn client(&self, id: u64) -> MonitorClient<Channel> {
        client(&self.server(id).addr().to_string()).await
    }

    /// Waits until every running monitor applied `epoch`.
    pub async fn wait_epoch(&self, epoch: u32) {
        wait_until(
            &format!("epoch {epoch} everywhere"),
            Duration::from_secs(10),
            || self.running().all(|server| server.view().epoch() >= epoch),
        )
        .await;
    }

    pub async fn shutdown(mut self) {
        for id in 1..=self.servers.len() as u64 {
            if self.servers[(id - 1) as usize].is_some() {
                self.stop(id).await;
            }
        }
    }
}

pub async fn client(addr: &str) -> MonitorClient<Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_lazy();
    MonitorClient::new(channel)
}

/// `pool create NAME PG_NUM` with size 3; a `pg_num` of 0 leaves it out (the monitor's
/// default).
pub fn pool_create(name: &str, pg_num: u32) -> Command {
    Command {
        kind: Some(Kind::PoolCreate(PoolCreate {
            name: name.to_owned(),
            pg_num: (pg_num != 0).then_some(pg_num),
            size: Some(3),
            min_size: None,
            crush_rule: String::new(),
        })),
    }
}

pub async fn command(
    client: &mut MonitorClient<Channel>,
    command: Command,
    timeout: Duration,
) -> CommandReply {
    client
        .command(CommandRequest {
            command: Some(command),
            timeout_ms: timeout.as_millis() as u64,
        })
        .await
        .expect("command call")
        .into_inner()
}

/// The epoch of a successful reply; panics with the error otherwise.
pub fn ok_epoch(reply: &CommandReply) -> u64 {
    match &reply.outcome {
        Some(command_reply::Outcome::Ok(ok)) => ok.epoch,
        other => panic!("command failed: {other:?}"),
    }
}
