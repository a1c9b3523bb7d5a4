//! Peering, minimal but safe: when a PG's acting set or primary changes (or a replica
//! missed writes), its primary
//!
//! 1. waits for the writes of the old interval to finish (they abort on the change);
//! 2. asks every candidate holder (`PgQuery`: the acting and up sets, acting members of
//!    earlier intervals since the PG was last clean, and in small clusters every up OSD,
//!    because a restarted OSD knows no history) for its last update;
//! 3. takes the newest last update as authoritative (itself on a tie); if that is another
//!    OSD, scans its copy (`PgScan`) and pulls every object whose version differs or that
//!    it lacks, removes what it has extra, and adopts its log entries (so request ids
//!    keep deduplicating resends);
//! 4. scans every other acting member and pushes what differs (`PushObject`), ending
//!    with its log entries and head;
//! 5. activates, if no newer interval started meanwhile.
//!
//! Any failure (a member unreachable) retries the whole round after a pause, until it
//! succeeds or a new interval takes over. Log-based recovery, backfill and pg_temp are
//! later work; this is a scan-based full resync.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clustermap::OsdId;
use proto::osd::osd_client::OsdClient;
use proto::osd::{
    ObjectState as WireState, PgQueryRequest, PgScanRequest, PullObjectRequest, PushObjectRequest,
};
use tonic::transport::Channel;

use super::Pg;
use crate::node::Node;
use crate::store::{Eversion, LogEntry, ObjectId, ObjectState, StoreError};
use crate::wire;

/// Every up OSD is asked about the PG while the cluster has at most this many OSDs.
const ASK_ALL_UP_BELOW: usize = 32;
/// The longest one peering call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Log entries carried per resync.
const MAX_LOG: u32 = 10_000;
/// Objects per scan page.
const SCAN_PAGE: u32 = 1000;

/// Starts peering `pg` in the background.
pub fn start(node: Arc<Node>, pg: Arc<Pg>) {
    tokio::spawn(async move { run(node, pg).await });
}

/// Forces a new interval on `pg` and peers it again.
pub fn repeer(node: &Arc<Node>, pg: &Arc<Pg>, reason: &str) {
    if pg.force_repeer(reason) {
        start(Arc::clone(node), Arc::clone(pg));
    }
}

async fn run(node: Arc<Node>, pg: Arc<Pg>) {
    let interval = pg.interval();
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        if pg.interval() != interval {
            return;
        }
        attempt += 1;
        match peer_once(&node, &pg, interval).await {
            Ok(degraded) => {
                if pg.activate(interval, degraded) {
                    let view = pg.view();
                    tracing::info!(
                        pg = %pg.id,
                        epoch = view.epoch,
                        acting = ?view.acting,
                        head = %pg.head(),
                        state = Pg::state_name(&view),
                        took_ms = started.elapsed().as_millis() as u64,
                        "pg activated"
                    );
                    node.stats_kick.notify_one();
                }
                return;
            }
            Err(reason) => {
                if pg.interval() != interval {
                    return;
                }
                tracing::warn!(pg = %pg.id, attempt, reason, "peering failed; retrying");
                let pause = Duration::from_millis(100 * u64::from(attempt.min(10)));
                pg.wait_until(Instant::now() + pause, |view| view.interval != interval)
                    .await;
            }
        }
    }
}

fn client(node: &Node, osd: OsdId) -> Result<OsdClient<Channel>, String> {
    let map = node.map().ok_or("no map")?;
    node.peers
        .client(&map, osd)
        .ok_or_else(|| format!("osd.{osd} has no address"))
}

async fn call<T>(
    what: &str,
    osd: OsdId,
    future: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(format!("{what} to osd.{osd}: {status}")),
        Err(_) => Err(format!("{what} to osd.{osd}: no answer")),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("store: {error}")),
        Err(join) => Err(join.to_string()),
    }
}

/// One peering round; returns how many objects it had to copy to replicas.
async fn peer_once(node: &Arc<Node>, pg: &Arc<Pg>, interval: u64) -> Result<u64, String> {
    // Writes of the old interval stop replicating when they see the new interval.
    pg.wait_until(Instant::now() + Duration::from_secs(10), |view| {
        view.inflight == 0 || view.interval != interval
    })
    .await;
    let view = pg.view();
    if view.interval != interval {
        return Ok(0);
    }
    let map = node.map().ok_or("no map")?;
    let epoch = u64::from(map.epoch());
    let mut candidates: BTreeSet<OsdId> = view
        .acting
        .iter()
        .chain(view.up.iter())
        .chain(view.past_acting.iter())
        .copied()
        .collect();
    if map.osds().len() <= ASK_ALL_UP_BELOW {
        candidates.extend(map.osds().keys().copied());
    }
    candidates.remove(&node.id);
    candidates.retain(|osd| map.is_up(*osd));

    let mine = node.store.pg_info(pg.id).map_err(|e| e.to_string())?;
    let mut tasks = tokio::task::JoinSet::new();
    for osd in candidates {
        let node = Arc::clone(node);
        let pgid = pg.id;
        tasks.spawn(async move {
            let reply = async {
                let mut client = client(&node, osd)?;
                call(
                    "pg query",
                    osd,
                    client.pg_query(PgQueryRequest {
                        epoch,
                        from_osd: node.id,
                        pg: Some(wire::pg_to_wire(pgid)),
                        log_after: None,
                        max_log_entries: 0,
                    }),
                )
                .await
            }
            .await;
            (osd, reply)
        });
    }
    let mut infos: BTreeMap<OsdId, Eversion> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let Ok((osd, reply)) = joined else { continue };
        match reply {
            Ok(reply) => {
                if reply.exists {
                    infos.insert(osd, wire::ev_from_wire(reply.last_update.as_ref()));
                }
            }
            Err(reason) if view.acting.contains(&osd) => return Err(reason),
            Err(reason) => tracing::debug!(pg = %pg.id, reason, "a past member did not answer"),
        }
    }
    let (auth, auth_update) = infos.iter().map(|(osd, update)| (*osd, *update)).fold(
        (node.id, mine.last_update),
        |best, candidate| {
            if candidate.1 > best.1 {
                candidate
            } else {
                best
            }
        },
    );
    tracing::info!(
        pg = %pg.id,
        epoch,
        authoritative = auth,
        last_update = %auth_update,
        mine = %mine.last_update,
        asked = infos.len(),
        "peering chose osd.{auth}'s log"
    );
    if auth != node.id {
        pull_from(node, pg, auth, mine.last_update, auth_update, epoch).await?;
    }
    let mut degraded = 0;
    for member in view.acting.iter().copied().filter(|osd| *osd != node.id) {
        let member_update = infos.get(&member).copied().unwrap_or(Eversion::ZERO);
        degraded += push_to(node, pg, member, member_update, epoch).await?;
        if pg.interval() != interval {
            return Ok(degraded);
        }
    }
    Ok(degraded)
}

/// Every object of the PG on `osd`, with versions.
async fn scan_remote(
    client: &mut OsdClient<Channel>,
    osd: OsdId,
    pg: &Pg,
    epoch: u64,
) -> Result<BTreeMap<ObjectId, Eversion>, String> {
    let mut objects = BTreeMap::new();
    let mut after = None;
    loop {
        let reply = call(
            "pg scan",
            osd,
            client.pg_scan(PgScanRequest {
                epoch,
                pg: Some(wire::pg_to_wire(pg.id)),
                start_after: after.clone(),
                max: SCAN_PAGE,
                with_digest: false,
            }),
        )
        .await?;
        for object in &reply.objects {
            objects.insert(
                wire::object_from_wire(object.object.as_ref()),
                wire::ev_from_wire(object.version.as_ref()),
            );
        }
        after = reply.objects.last().and_then(|o| o.object.clone());
        if !reply.more || after.is_none() {
            return Ok(objects);
        }
    }
}

/// Every object of the PG in the local store, with versions.
async fn scan_local(node: &Node, pg: &Pg) -> Result<BTreeMap<ObjectId, Eversion>, String> {
    let store = Arc::clone(&node.store);
    let pgid = pg.id;
    blocking(move || {
        let mut objects = BTreeMap::new();
        let mut after: Option<ObjectId> = None;
        loop {
            let page = store.list_objects(pgid, None, after.as_ref(), SCAN_PAGE as usize)?;
            for (object, info) in page.objects {
                objects.insert(object, info.version);
            }
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(objects),
            }
        }
    })
    .await
}

/// The wire form of an object's state (`None`: absent).
pub fn state_to_wire(object: &ObjectId, state: Option<ObjectState>) -> WireState {
    match state {
        None => WireState {
            object: Some(wire::object_to_wire(object)),
            exists: false,
            ..WireState::default()
        },
        Some(state) => WireState {
            object: Some(wire::object_to_wire(object)),
            exists: true,
            version: Some(wire::ev_to_wire(state.version)),
            mtime_ns: wire::time_to_nanos(state.mtime),
            data: state.data.into(),
            xattrs: state
                .xattrs
                .into_iter()
                .map(|(name, value)| (name, value.into()))
                .collect(),
            omap: state
                .omap
                .into_iter()
                .map(|(key, value)| proto::osd::OmapEntry {
                    key: key.into(),
                    value: value.into(),
                })
                .collect(),
        },
    }
}

/// An object's state from the wire (`None`: absent).
pub fn state_from_wire(state: &WireState) -> (ObjectId, Option<ObjectState>) {
    let object = wire::object_from_wire(state.object.as_ref());
    if !state.exists {
        return (object, None);
    }
    let installed = ObjectState {
        version: wire::ev_from_wire(state.version.as_ref()),
        mtime: wire::nanos_to_time(state.mtime_ns),
        data: state.data.to_vec(),
        xattrs: state
            .xattrs
            .iter()
            .map(|(name, value)| (name.clone(), value.to_vec()))
            .collect(),
        omap: state
            .omap
            .iter()
            .map(|entry| (entry.key.to_vec(), entry.value.to_vec()))
            .collect(),
    };
    (object, Some(installed))
}

/// Brings the local copy up to the authoritative one on `auth`.
async fn pull_from(
    node: &Arc<Node>,
    pg: &Arc<Pg>,
    auth: OsdId,
    mine: Eversion,
    auth_update: Eversion,
    epoch: u64,
) -> Result<(), String> {
    let mut client = client(node, auth)?;
    // The log first: the PG is not active anywhere, so it cannot move meanwhile.
    let log_reply = call(
        "pg query",
        auth,
        client.pg_query(PgQueryRequest {
            epoch,
            from_osd: node.id,
            pg: Some(wire::pg_to_wire(pg.id)),
            log_after: Some(wire::ev_to_wire(mine)),
            max_log_entries: MAX_LOG,
        }),
    )
    .await?;
    let log: Vec<LogEntry> = log_reply
        .log
        .iter()
        .map(wire::log_entry_from_wire)
        .collect();
    let remote = scan_remote(&mut client, auth, pg, epoch).await?;
    let local = scan_local(node, pg).await?;
    let mut pulled = 0u64;
    let mut removed = 0u64;
    for (object, version) in &remote {
        if local.get(object) == Some(version) {
            continue;
        }
        let reply = call(
            "pull",
            auth,
            client.pull_object(PullObjectRequest {
                epoch,
                pg: Some(wire::pg_to_wire(pg.id)),
                object: Some(wire::object_to_wire(object)),
            }),
        )
        .await?;
        let state = reply.state.ok_or("pull reply without state")?;
        let (object, state) = state_from_wire(&state);
        install(node, pg, object, state).await?;
        pulled += 1;
    }
    for object in local.keys().filter(|object| !remote.contains_key(*object)) {
        install(node, pg, object.clone(), None).await?;
        removed += 1;
    }
    let store = Arc::clone(&node.store);
    let pgid = pg.id;
    let pg_for_head = Arc::clone(pg);
    blocking(move || {
        pg_for_head.with_head(|head| {
            store.adopt_log(pgid, &log, auth_update)?;
            store.sync()?;
            *head = auth_update;
            Ok(())
        })
    })
    .await?;
    tracing::info!(
        pg = %pg.id,
        from = auth,
        pulled,
        removed,
        head = %auth_update,
        "pulled the authoritative copy"
    );
    Ok(())
}

async fn install(
    node: &Arc<Node>,
    pg: &Arc<Pg>,
    object: ObjectId,
    state: Option<ObjectState>,
) -> Result<(), String> {
    let store = Arc::clone(&node.store);
    let pgid = pg.id;
    let pg = Arc::clone(pg);
    blocking(move || pg.with_head(|_| store.install_object(pgid, &object, state.as_ref()))).await
}

/// Brings `member`'s copy up to ours; returns how many objects it had to copy.
async fn push_to(
    node: &Arc<Node>,
    pg: &Arc<Pg>,
    member: OsdId,
    member_update: Eversion,
    epoch: u64,
) -> Result<u64, String> {
    let head = pg.head();
    let mut client = client(node, member)?;
    let mut pushed = 0u64;
    let mut removed = 0u64;
    if member_update != head {
        let remote = scan_remote(&mut client, member, pg, epoch).await?;
        let local = scan_local(node, pg).await?;
        for (object, version) in &local {
            if remote.get(object) == Some(version) {
                continue;
            }
            let store = Arc::clone(&node.store);
            let pgid = pg.id;
            let target = object.clone();
            let state = blocking(move || store.object_state(pgid, &target)).await?;
            push(
                &mut client,
                node,
                pg,
                member,
                epoch,
                state_to_wire(object, state),
                None,
            )
            .await?;
            pushed += 1;
        }
        for object in remote.keys().filter(|object| !local.contains_key(*object)) {
            push(
                &mut client,
                node,
                pg,
                member,
                epoch,
                state_to_wire(object, None),
                None,
            )
            .await?;
            removed += 1;
        }
    }
    let store = Arc::clone(&node.store);
    let pgid = pg.id;
    let log = blocking(
        move || match store.read_log(pgid, member_update, MAX_LOG as usize) {
            Ok(log) => Ok(log),
            Err(StoreError::LogTrimmed { .. }) => Ok(Vec::new()),
            Err(error) => Err(error),
        },
    )
    .await?;
    let ending = PushEnd {
        last_update: head,
        log: log.iter().map(wire::log_entry_to_wire).collect(),
    };
    let request = PushObjectRequest {
        epoch,
        from_osd: node.id,
        pg: Some(wire::pg_to_wire(pg.id)),
        state: None,
        last_update: Some(wire::ev_to_wire(ending.last_update)),
        log: ending.log,
    };
    let reply = call("push", member, client.push_object(request)).await?;
    if !reply.ok {
        return Err(format!(
            "osd.{member} refused the resync end: {}",
            reply.message
        ));
    }
    if pushed + removed > 0 || member_update != head {
        tracing::info!(
            pg = %pg.id,
            to = member,
            pushed,
            removed,
            from_version = %member_update,
            head = %head,
            "pushed objects to bring a replica up to date"
        );
    }
    Ok(pushed + removed)
}

struct PushEnd {
    last_update: Eversion,
    log: Vec<proto::osd::LogEntry>,
}

async fn push(
    client: &mut OsdClient<Channel>,
    node: &Node,
    pg: &Pg,
    member: OsdId,
    epoch: u64,
    state: WireState,
    last_update: Option<Eversion>,
) -> Result<(), String> {
    let reply = call(
        "push",
        member,
        client.push_object(PushObjectRequest {
            epoch,
            from_osd: node.id,
            pg: Some(wire::pg_to_wire(pg.id)),
            state: Some(state),
            last_update: last_update.map(wire::ev_to_wire),
            log: Vec::new(),
        }),
    )
    .await?;
    if reply.ok {
        Ok(())
    } else {
        Err(format!("osd.{member} refused a push: {}", reply.message))
    }
}
