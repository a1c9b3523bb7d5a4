//! In-process tests of a monitor cluster: three (or four) `MonitorServer`s in one process on
//! 127.0.0.1 port 0, finding each other through their `mon.addr` files, with short Raft
//! timings. Everything goes through the same gRPC API the CLI, librados and OSDs use.

mod common;

use std::time::{Duration, Instant};

use common::{command, ok_epoch, pool_create, wait_until, Cluster};
use monitor::node::Role;
use proto::mon::command::Kind;
use proto::mon::{
    command_reply, map_update, Command, CommandErrorKind, GetMapRequest, MonAdd, MonRemove, OsdIds,
    PoolCreate, StatusRequest, WatchMapRequest,
};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

fn set_flag(flag: &str) -> Command {
    Command {
        kind: Some(Kind::SetFlag(flag.to_owned())),
    }
}

fn unset_flag(flag: &str) -> Command {
    Command {
        kind: Some(Kind::UnsetFlag(flag.to_owned())),
    }
}

/// The encoded map of every running monitor must be byte-identical.
fn assert_maps_identical(cluster: &Cluster) {
    let encoded: Vec<(u64, Vec<u8>)> = cluster
        .running()
        .map(|server| {
            let view = server.view();
            let map = view.map.expect("a map");
            (server.id(), monitor::encode_map(&map))
        })
        .collect();
    for (id, bytes) in &encoded[1..] {
        assert!(
            *bytes == encoded[0].1,
            "monitor {id}'s map differs from monitor {}'s",
            encoded[0].0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_monitors_elect_forward_catch_up_and_fail_over() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower().await;
    let created = cluster.server(leader).view().epoch();
    assert_eq!(created, 1, "the first leader creates epoch 1");

    // A command sent to a follower is forwarded, committed, applied, and names the epoch.
    let mut client = cluster.client(follower).await;
    let reply = command(&mut client, pool_create("rbd", 16), COMMAND_TIMEOUT).await;
    let epoch = ok_epoch(&reply);
    assert_eq!(epoch, u64::from(created) + 1);
    cluster.wait_epoch(epoch as u32).await;
    assert_maps_identical(&cluster);
    let map = cluster.server(follower).view().map.expect("a map");
    assert!(map.pool_by_name("rbd").is_some());

    // An invalid command is rejected before proposal, naming its argument.
    let reply = command(&mut client, pool_create("bad", 1_000_000), COMMAND_TIMEOUT).await;
    match reply.outcome {
        Some(command_reply::Outcome::Error(error)) => {
            assert_eq!(
                error.kind,
                CommandErrorKind::InvalidArgument as i32,
                "{error:?}"
            );
            assert_eq!(error.argument, "pg_num", "{error:?}");
            assert!(error.message.contains("pg_num"), "{error:?}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let reply = command(&mut client, pool_create("rbd", 8), COMMAND_TIMEOUT).await;
    match reply.outcome {
        Some(command_reply::Outcome::Error(error)) => {
            assert_eq!(
                error.kind,
                CommandErrorKind::AlreadyExists as i32,
                "{error:?}"
            );
            assert_eq!(error.argument, "name");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    for server in cluster.running() {
        assert_eq!(u64::from(server.view().epoch()), epoch, "epoch unchanged");
    }

    // A stopped follower catches up after commands it missed.
    let other = cluster
        .running()
        .map(|server| server.id())
        .find(|id| *id != leader && *id != follower)
        .expect("a third monitor");
    cluster.stop(other).await;
    let mut last = epoch;
    for name in ["a", "b", "c"] {
        last = ok_epoch(&command(&mut client, pool_create(name, 8), COMMAND_TIMEOUT).await);
    }
    cluster.restart(other).await;
    cluster.wait_epoch(last as u32).await;
    assert_maps_identical(&cluster);

    // Killing the leader: a new one is elected and commands work again within 5 s.
    let killed_at = Instant::now();
    cluster.stop(leader).await;
    let mut client = cluster.client(other).await;
    let reply = command(&mut client, set_flag("noout"), COMMAND_TIMEOUT).await;
    let after = ok_epoch(&reply);
    assert!(after > last);
    assert!(
        killed_at.elapsed() < Duration::from_secs(5),
        "fail-over took {:?}",
        killed_at.elapsed()
    );
    let new_leader = cluster.leader().await;
    assert_ne!(new_leader, leader);

    // The old leader rejoins and catches up to the same epoch and map.
    cluster.restart(leader).await;
    cluster.wait_epoch(after as u32).await;
    assert_maps_identical(&cluster);

    // Status is answered by the leader, with quorum and health.
    let status = client
        .status(StatusRequest { local_only: false })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.answered_by, new_leader);
    assert_eq!(status.monitors.len(), 3);
    let health = status.health.expect("the leader reports health");
    assert!(
        health
            .checks
            .iter()
            .any(|check| check.code == "OSDMAP_FLAGS"),
        "noout is reported: {health:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_fail_with_no_quorum_and_recover() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let survivor = cluster.follower().await;
    for id in [1, 2, 3] {
        if id != survivor {
            cluster.stop(id).await;
        }
    }
    let mut client = cluster.client(survivor).await;
    let started = Instant::now();
    let reply = command(&mut client, set_flag("noout"), Duration::from_millis(1500)).await;
    let waited = started.elapsed();
    match reply.outcome {
        Some(command_reply::Outcome::Error(error)) => {
            assert_eq!(error.kind, CommandErrorKind::NoQuorum as i32, "{error:?}");
            assert!(error.message.contains("no quorum"), "{error:?}");
        }
        other => panic!("expected no quorum, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(1400),
        "answered after {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");

    cluster.restart(leader).await;
    let reply = command(&mut client, set_flag("noout"), COMMAND_TIMEOUT).await;
    ok_epoch(&reply);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watchers_see_every_epoch_once_in_order_across_a_leader_change() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower().await;
    let third = (1..=3).find(|id| *id != leader && *id != follower).unwrap();

    let mut watcher = cluster.client(follower).await;
    let mut stream = watcher
        .watch_map(WatchMapRequest { since_epoch: 0 })
        .await
        .expect("watch")
        .into_inner();
    let mut client = cluster.client(third).await;
    let mut last_command_epoch = 0;
    for round in 0u32..6 {
        if round == 3 {
            cluster.stop(leader).await;
        }
        let flag = if round.is_multiple_of(2) {
            set_flag("noout")
        } else {
            unset_flag("noout")
        };
        last_command_epoch = ok_epoch(&command(&mut client, flag, COMMAND_TIMEOUT).await);
    }
    let mut seen = Vec::new();
    let mut map: Option<clustermap::ClusterMap> = None;
    while seen.last().copied().unwrap_or(0) < last_command_epoch {
        let update = tokio::time::timeout(COMMAND_TIMEOUT, stream.message())
            .await
            .expect("an update in time")
            .expect("stream healthy")
            .expect("stream open");
        match update.update.expect("an update") {
            map_update::Update::FullMap(bytes) => {
                map = Some(monitor::decode_map(&bytes).expect("a decodable map"));
            }
            map_update::Update::Incremental(bytes) => {
                let incremental = monitor::decode_incremental(&bytes).expect("decodable");
                let base = map.as_ref().expect("a full map first");
                map = Some(incremental.apply_to(base).expect("applies in order"));
            }
        }
        assert_eq!(u64::from(map.as_ref().unwrap().epoch()), update.epoch);
        seen.push(update.epoch);
    }
    let expected: Vec<u64> = (1..=last_command_epoch).collect();
    assert_eq!(seen, expected, "every epoch once, in order");
    // The map rebuilt from incrementals is the follower's map, byte for byte.
    let follower_map = cluster.server(follower).view().map.unwrap();
    assert_eq!(
        monitor::encode_map(map.as_ref().unwrap()),
        monitor::encode_map(&follower_map)
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_is_compacted_and_a_wiped_monitor_rejoins_through_a_snapshot() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let victim = cluster.follower().await;
    let mut client = cluster.client(leader).await;
    let mut last = 0;
    for round in 0u32..130 {
        let flag = if round.is_multiple_of(2) {
            set_flag("noscrub")
        } else {
            unset_flag("noscrub")
        };
        last = ok_epoch(&command(&mut client, flag, COMMAND_TIMEOUT).await);
    }
    cluster.wait_epoch(last as u32).await;
    for server in cluster.running() {
        let status = server.status();
        assert!(status.snapshot_index > 100, "{status:?}");
        let kept = status.last_index - status.first_index + 1;
        assert!(kept <= 50 + 10 + 5, "log kept {kept} entries: {status:?}");
    }

    cluster.stop(victim).await;
    let dir = cluster.configs[(victim - 1) as usize].data_dir.clone();
    std::fs::remove_dir_all(dir.join("kv")).expect("wipe the store");
    cluster.configs[(victim - 1) as usize].join = true;
    cluster.restart(victim).await;
    wait_until(
        "the wiped monitor to catch up",
        Duration::from_secs(10),
        || cluster.server(victim).view().epoch() == last as u32,
    )
    .await;
    assert!(cluster.server(victim).status().snapshot_index > 1);
    assert_maps_identical(&cluster);
    // It takes part again: with the leader stopped, the two others still commit.
    cluster.stop(leader).await;
    let mut client = cluster.client(victim).await;
    ok_epoch(&command(&mut client, set_flag("noout"), COMMAND_TIMEOUT).await);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn monitors_are_added_and_removed_at_run_time() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    // Monitor 4 starts with `join` and an empty store; it knows the others' addresses.
    let mut config = common::member_config(cluster.dir.path(), 4, &[1, 2, 3]);
    config.join = true;
    let fourth = monitor::MonitorServer::start(config)
        .await
        .expect("monitor 4 starts");
    let mut client = cluster.client(leader).await;
    let reply = command(
        &mut client,
        Command {
            kind: Some(Kind::MonAdd(MonAdd {
                id: 4,
                addr: fourth.addr().to_string(),
                name: "d".to_owned(),
            })),
        },
        COMMAND_TIMEOUT,
    )
    .await;
    let epoch = ok_epoch(&reply);
    wait_until("monitor 4 to catch up", Duration::from_secs(10), || {
        u64::from(fourth.view().epoch()) >= epoch && fourth.status().voters == vec![1, 2, 3, 4]
    })
    .await;
    let map = fourth.view().map.unwrap();
    assert!(map.monitor("d").is_some());
    // The new member's vote counts: with two of the original three stopped, 4 and the
    // remaining one are not a majority of four, but with one stopped they are.
    let stopped = cluster.follower().await;
    cluster.stop(stopped).await;
    ok_epoch(&command(&mut client, set_flag("noout"), COMMAND_TIMEOUT).await);
    cluster.restart(stopped).await;

    let reply = command(
        &mut client,
        Command {
            kind: Some(Kind::MonRemove(MonRemove { id: 4 })),
        },
        COMMAND_TIMEOUT,
    )
    .await;
    let removed_at = ok_epoch(&reply);
    cluster.wait_epoch(removed_at as u32).await;
    wait_until(
        "every monitor to drop monitor 4",
        Duration::from_secs(5),
        || {
            cluster
                .running()
                .all(|server| server.status().voters == vec![1, 2, 3])
        },
    )
    .await;
    for server in cluster.running() {
        assert!(server.view().map.unwrap().monitor("d").is_none());
    }
    // Removing an unknown monitor is refused, naming the argument.
    let reply = command(
        &mut client,
        Command {
            kind: Some(Kind::MonRemove(MonRemove { id: 9 })),
        },
        COMMAND_TIMEOUT,
    )
    .await;
    match reply.outcome {
        Some(command_reply::Outcome::Error(error)) => {
            assert_eq!(error.kind, CommandErrorKind::NotFound as i32, "{error:?}");
            assert_eq!(error.argument, "id");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    fourth.stop().await.expect("monitor 4 stops");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_forged_peer_messages_do_not_crash_a_monitor() {
    use proto::monpeer::mon_peer_client::MonPeerClient;
    use proto::monpeer::RaftBatch;
    use protobuf::Message as _;
    use raft::prelude::{Message, MessageType};

    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = cluster.follower().await;
    let addr = cluster.server(follower).addr();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut peer = MonPeerClient::new(channel);
    let term = cluster.server(follower).status().term;

    // A heartbeat from the real leader's id committing far beyond the log (raft-rs panics
    // on it), a stale vote request, a message for someone else, and garbage.
    let mut forged = Message::default();
    forged.set_msg_type(MessageType::MsgHeartbeat);
    forged.from = leader;
    forged.to = follower;
    forged.term = term;
    forged.commit = 1_000_000_000;
    let mut stale = Message::default();
    stale.set_msg_type(MessageType::MsgRequestVote);
    stale.from = leader;
    stale.to = follower;
    stale.term = 1;
    let mut misaddressed = stale.clone();
    misaddressed.to = 77;
    let mut local = Message::default();
    local.set_msg_type(MessageType::MsgHup);
    local.from = leader;
    local.to = follower;
    let batch = RaftBatch {
        from: leader,
        to: follower,
        from_addr: "not an address".to_owned(),
        messages: vec![
            vec![0xff, 0x01, 0x02, 0x03],
            b"garbage that is not protobuf at all".to_vec(),
            forged.write_to_bytes().unwrap(),
            stale.write_to_bytes().unwrap(),
            misaddressed.write_to_bytes().unwrap(),
            local.write_to_bytes().unwrap(),
        ],
    };
    peer.raft(batch).await.expect("the batch is accepted");
    let wrong = peer
        .raft(RaftBatch {
            from: leader,
            to: 42,
            from_addr: String::new(),
            messages: Vec::new(),
        })
        .await
        .expect_err("a batch for another monitor is refused");
    assert_eq!(wrong.code(), tonic::Code::FailedPrecondition);

    // The monitor survived and keeps working.
    let mut client = cluster.client(follower).await;
    let epoch = ok_epoch(&command(&mut client, set_flag("noout"), COMMAND_TIMEOUT).await);
    cluster.wait_epoch(epoch as u32).await;
    assert!(!cluster.server(follower).status().stopped);
    assert_maps_identical(&cluster);
    let map = client
        .get_map(GetMapRequest {})
        .await
        .expect("get map")
        .into_inner();
    assert_eq!(map.epoch, epoch);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_and_osd_commands_change_the_map() {
    let cluster = Cluster::start(1).await;
    let mut client = cluster.client(1).await;
    let reply = command(
        &mut client,
        Command {
            kind: Some(Kind::PoolCreate(PoolCreate {
                name: "data".to_owned(),
                pg_num: None,
                size: None,
                min_size: None,
                crush_rule: "no_such_rule".to_owned(),
            })),
        },
        COMMAND_TIMEOUT,
    )
    .await;
    match reply.outcome {
        Some(command_reply::Outcome::Error(error)) => assert_eq!(error.argument, "crush_rule"),
        other => panic!("expected an error, got {other:?}"),
    }
    let reply = command(&mut client, pool_create("data", 0), COMMAND_TIMEOUT).await;
    ok_epoch(&reply);
    let map = cluster.server(1).view().map.unwrap();
    let pool = map.pool_by_name("data").unwrap();
    assert_eq!(pool.pg_num, 32, "the configured default pg_num");
    let reply = command(
        &mut client,
        Command {
            kind: Some(Kind::OsdOut(OsdIds { ids: vec![7] })),
        },
        COMMAND_TIMEOUT,
    )
    .await;
    match reply.outcome {
        Some(command_reply::Outcome::Error(error)) => {
            assert_eq!(error.kind, CommandErrorKind::NotFound as i32);
        }
        other => panic!("expected an error, got {other:?}"),
    }
    let reply = command(&mut client, set_flag("nosuchflag"), COMMAND_TIMEOUT).await;
    match reply.outcome {
        Some(command_reply::Outcome::Error(error)) => assert_eq!(error.argument, "flag"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(cluster.server(1).status().role, Role::Leader);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_cluster_restart_keeps_pools_crush_and_epoch() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let mut client = cluster.client(leader).await;
    ok_epoch(&command(&mut client, pool_create("kept", 8), COMMAND_TIMEOUT).await);
    let reply = command(
        &mut client,
        Command {
            kind: Some(Kind::CrushAddBucket(proto::mon::CrushAddBucket {
                name: "rack1".to_owned(),
                bucket_type: "rack".to_owned(),
                location: [("root".to_owned(), "default".to_owned())].into(),
            })),
        },
        COMMAND_TIMEOUT,
    )
    .await;
    let epoch = ok_epoch(&reply);
    cluster.wait_epoch(epoch as u32).await;
    let before = monitor::encode_map(&cluster.server(leader).view().map.unwrap());
    for id in 1..=3 {
        cluster.stop(id).await;
    }
    for id in 1..=3 {
        cluster.restart(id).await;
    }
    cluster.wait_epoch(epoch as u32).await;
    for server in cluster.running() {
        let map = server.view().map.unwrap();
        assert_eq!(u64::from(map.epoch()), epoch);
        assert_eq!(monitor::encode_map(&map), before, "monitor {}", server.id());
    }
    // And the restarted cluster accepts commands again.
    let leader = cluster.leader().await;
    let mut client = cluster.client(leader).await;
    let next = ok_epoch(&command(&mut client, pool_create("after", 8), COMMAND_TIMEOUT).await);
    assert_eq!(next, epoch + 1);
    cluster.shutdown().await;
}
