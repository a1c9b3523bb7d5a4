//! librados itself holding an old map is redirected and its op succeeds: 3 monitors,
//! 3 OSDs, a size-3 min_size-2 pool.
//!
//! The client knows one monitor, a follower, which is frozen (SIGSTOP) so that no newer
//! map can reach the client on its own. Then, with `noup` set, the primary of an object
//! is marked down while it keeps running. The client's append therefore goes, by its old
//! map, to the old primary, which refuses it with its newer epoch; the client must fetch
//! that epoch (from another monitor, as its own does not answer), recompute the
//! placement, resend, and succeed. The object holds the appended bytes exactly once.

use std::time::Duration;

use librados::{ClientConfig, Rados};
use shoal_tests::{create_pool, flag, mark_down_while_running, start_with_osds, wait_osd_epoch};

const POOL: &str = "stale";

/// Sends `signal` (`STOP` or `CONT`) to `pid`.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Resumes a frozen monitor when dropped, so a failing test leaves no stopped process.
struct Thaw(u32);

impl Drop for Thaw {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_map_is_old_is_redirected_by_the_osd_and_its_op_succeeds() {
    let mut cluster = start_with_osds(3, 3).await;
    create_pool(&mut cluster, POOL, 8, 3, 2).await;
    // A follower is frozen and commands go to the leader, so no election is needed.
    let leader = cluster
        .leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let frozen_mon = cluster
        .mon_ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let mut config =
        ClientConfig::load(Some(&cluster.conf_path())).expect("the cluster's client config");
    config.mon_hosts = vec![cluster.mon_addr(frozen_mon).expect("a monitor address")];
    config.call_timeout = Duration::from_secs(1);
    config.connect_timeout = Duration::from_secs(1);
    config.op_timeout = Duration::from_secs(60);
    let rados = Rados::connect(config).await.expect("the client connects");
    let ioctx = rados.ioctx(POOL).await.expect("the pool opens");
    ioctx
        .write_full("moved", b"base".to_vec())
        .await
        .expect("the first write");

    let pid = cluster
        .pid(frozen_mon)
        .expect("a monitor")
        .expect("it runs");
    signal(pid, "STOP");
    let thaw = Thaw(pid);

    let old_map = rados.map();
    let old_primary = old_map
        .osd_map(POOL, "moved", "")
        .expect("a mapping")
        .mapping
        .acting_primary;
    let mon = cluster.mon_client(leader).expect("the leader");
    let down_epoch = mark_down_while_running(&mon, old_primary).await;
    // The old primary must know it is down to refuse the op (OSDs whose monitor was the
    // frozen one fail over to another).
    let old_primary_addr = cluster
        .osd_addr(cluster.osd_number(old_primary).expect("a launched OSD"))
        .expect("its address");
    let started = std::time::Instant::now();
    wait_osd_epoch(&old_primary_addr, down_epoch).await;
    println!(
        "osd.{old_primary} reached epoch {} {:.1} s after it was marked down",
        down_epoch,
        started.elapsed().as_secs_f64()
    );

    // The client still holds the old map, so its op goes to the old primary first.
    let held = rados.map();
    assert!(
        u64::from(held.epoch()) < down_epoch,
        "the client learnt epoch {} although its monitor is frozen",
        held.epoch()
    );
    assert_eq!(
        held.osd_map(POOL, "moved", "")
            .expect("a mapping")
            .mapping
            .acting_primary,
        old_primary
    );
    ioctx
        .append("moved", b"+once".to_vec())
        .await
        .expect("the append succeeds after the redirect");
    let learnt = rados.map();
    assert!(
        u64::from(learnt.epoch()) >= down_epoch,
        "the client caught up to the epoch the OSD named ({} < {})",
        learnt.epoch(),
        down_epoch
    );
    assert_ne!(
        learnt
            .osd_map(POOL, "moved", "")
            .expect("a mapping")
            .mapping
            .acting_primary,
        old_primary
    );
    assert_eq!(
        ioctx.read("moved", 0, 0).await.expect("read back").to_vec(),
        b"base+once"
    );

    drop(thaw);
    mon.command(flag("noup", false)).await.expect("unset noup");
    cluster
        .wait_healthy(Duration::from_secs(60))
        .await
        .expect("healthy once the old primary is up again");
    assert_eq!(
        ioctx.read("moved", 0, 0).await.expect("read back").to_vec(),
        b"base+once"
    );
}
