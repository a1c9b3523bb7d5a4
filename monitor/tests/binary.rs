//! The `shoal-mon` binary itself: three processes from one shared config file (peers found
//! through their `mon.addr` files, port 0), a leader killed with SIGKILL, a command through
//! a survivor, and a clean SIGTERM shutdown. The multi-process suite in `tests/` goes
//! further; this one checks the daemon's flags, files and exit codes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proto::mon::command::Kind;
use proto::mon::monitor_client::MonitorClient;
use proto::mon::{command_reply, CommandRequest, StatusRequest};

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path, root: &Path, id: u64) -> Daemon {
    let child = Command::new(env!("CARGO_BIN_EXE_shoal-mon"))
        .arg("-c")
        .arg(config)
        .arg("--id")
        .arg(id.to_string())
        .arg("--data")
        .arg(root.join(format!("mon.{id}")))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("shoal-mon starts");
    Daemon { child }
}

async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn client(addr: &str) -> MonitorClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    MonitorClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_fail_over_and_stop_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "[mon]\nlisten = \"127.0.0.1:0\"\n\n[mon.raft]\ntick_ms = 20\nelection_ticks = 10\nheartbeat_ticks = 2\ncommand_timeout_ms = 3000\n",
    );
    for id in 1..=3 {
        text.push_str(&format!(
            "\n[[mon.members]]\nid = {id}\naddr_file = \"{}\"\n",
            root.path()
                .join(format!("mon.{id}"))
                .join("mon.addr")
                .display()
        ));
    }
    let config = root.path().join("shoal.toml");
    std::fs::write(&config, text).unwrap();
    let mut daemons: Vec<Option<Daemon>> = (1..=3)
        .map(|id| Some(spawn(&config, root.path(), id)))
        .collect();

    let addrs: Vec<String> = wait_for("every mon.addr", Duration::from_secs(20), async || {
        let addrs: Vec<String> = (1..=3)
            .filter_map(|id| monitor::read_addr_file(&root.path().join(format!("mon.{id}"))))
            .collect();
        (addrs.len() == 3).then_some(addrs)
    })
    .await;

    // The cluster gets created and a leader answers status.
    let leader = wait_for("a leader with a map", Duration::from_secs(20), async || {
        let status = client(&addrs[0])
            .status(StatusRequest { local_only: false })
            .await
            .ok()?
            .into_inner();
        (status.epoch >= 1 && status.leader_id != 0).then_some(status.leader_id)
    })
    .await;

    // SIGKILL the leader; a survivor answers a command.
    drop(daemons[(leader - 1) as usize].take());
    let survivor = if leader == 1 { 2 } else { 1 };
    let mut survivor_client = client(&addrs[(survivor - 1) as usize]);
    let reply = survivor_client
        .command(CommandRequest {
            command: Some(proto::mon::Command {
                kind: Some(Kind::SetFlag("noout".to_owned())),
            }),
            timeout_ms: 5000,
        })
        .await
        .expect("command call")
        .into_inner();
    assert!(
        matches!(reply.outcome, Some(command_reply::Outcome::Ok(_))),
        "{reply:?}"
    );

    // SIGTERM stops a daemon cleanly (exit code 0).
    for daemon in daemons.iter_mut().flatten() {
        let pid = daemon.child.id().to_string();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(&pid)
            .status()
            .unwrap();
        assert!(status.success());
    }
    for daemon in daemons.iter_mut().flatten() {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "shoal-mon did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "exit status {status}");
    }

    // A bad config is refused with the field named and exit code 2.
    let output = Command::new(env!("CARGO_BIN_EXE_shoal-mon"))
        .arg("-c")
        .arg(&config)
        .arg("--data")
        .arg(root.path().join("mon.9"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("mon.id"), "{stderr}");
}
