//! An in-process fake cluster for the client's tests, on real sockets: a fake monitor
//! (GetMap, WatchMap with full maps, Status) whose map the test changes, and fake OSDs that
//! keep objects in one shared in-memory store and follow osd.proto's rules: MISDIRECTED
//! when not the primary at the current map, STALE_EPOCH for an older epoch, writes applied
//! once per reqid. Each OSD sits behind a TCP proxy that the test can cut (dropping every
//! connection) or close (refusing new ones), and takes scripted faults (BUSY, cut after
//! applying, change the map) one request at a time.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clustermap::{ClusterMap, MapChange, MonitorInfo, NewOsd, OsdId, PgId, PoolSpec, Uuid};
use proto::mon::monitor_server::{Monitor, MonitorServer};
use proto::mon::{
    map_update, CommandReply, CommandRequest, GetMapRequest, MapReply, MapUpdate, StatusReply,
    StatusRequest, WatchMapRequest,
};
use proto::osd::osd_server::{Osd, OsdServer};
use proto::osd::sub_op::Op as Sub;
use proto::osd::sub_op_result::Result as SubResult;
use proto::osd::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status};

/// Polls `condition` every 5 ms until it holds or `timeout` passes.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ------------------------------------------------------------------------------------
// Fake monitor
// ------------------------------------------------------------------------------------

/// The fake monitor's map, shared with the fake OSDs.
#[derive(Clone)]
pub struct Maps(Arc<watch::Sender<Arc<ClusterMap>>>);

impl Maps {
    pub fn current(&self) -> Arc<ClusterMap> {
        self.0.borrow().clone()
    }

    /// Commits `changes` as the next epoch.
    pub fn change(&self, changes: &[MapChange]) -> Arc<ClusterMap> {
        let next = Arc::new(self.current().apply(changes, 0).expect("valid map change"));
        self.0.send_replace(next.clone());
        next
    }

    /// A new epoch that changes no placement.
    pub fn bump(&self) -> Arc<ClusterMap> {
        let flag = if self.current().is_flag_set(clustermap::ClusterFlag::NoScrub) {
            MapChange::UnsetFlag(clustermap::ClusterFlag::NoScrub)
        } else {
            MapChange::SetFlag(clustermap::ClusterFlag::NoScrub)
        };
        self.change(&[flag])
    }
}

struct FakeMon {
    maps: Maps,
}

fn map_bytes(map: &ClusterMap) -> Bytes {
    Bytes::from(serde_json::to_vec(map).expect("map serializes"))
}

#[tonic::async_trait]
impl Monitor for FakeMon {
    async fn get_map(&self, _: Request<GetMapRequest>) -> Result<Response<MapReply>, Status> {
        let map = self.maps.current();
        Ok(Response::new(MapReply {
            epoch: u64::from(map.epoch()),
            map: map_bytes(&map).to_vec(),
        }))
    }

    type WatchMapStream = ReceiverStream<Result<MapUpdate, Status>>;

    async fn watch_map(
        &self,
        request: Request<WatchMapRequest>,
    ) -> Result<Response<Self::WatchMapStream>, Status> {
        let mut since = request.into_inner().since_epoch;
        let mut receiver = self.maps.0.subscribe();
        let (sender, stream) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let map = receiver.borrow_and_update().clone();
                let epoch = u64::from(map.epoch());
                if epoch > since {
                    let update = MapUpdate {
                        epoch,
                        update: Some(map_update::Update::FullMap(map_bytes(&map).to_vec())),
                    };
                    if sender.send(Ok(update)).await.is_err() {
                        return;
                    }
                    since = epoch;
                }
                if receiver.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(stream)))
    }

    async fn command(&self, _: Request<CommandRequest>) -> Result<Response<CommandReply>, Status> {
        Err(Status::unimplemented("the fake monitor runs no commands"))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let map = self.maps.current();
        Ok(Response::new(StatusReply {
            fsid: map.fsid().to_string(),
            epoch: u64::from(map.epoch()),
            answered_by: 1,
            leader_id: 1,
            ..StatusReply::default()
        }))
    }
}

// ------------------------------------------------------------------------------------
// TCP proxy
// ------------------------------------------------------------------------------------

/// Forwards connections to a backend; can cut them all or stop accepting.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: watch::Sender<u64>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    async fn start(backend: SocketAddr) -> Arc<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (cut, _) = watch::channel(0u64);
        let cut_for_task = cut.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut cut_rx = cut_for_task.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(backend).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Arc::new(Proxy {
            addr,
            cut,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// Drops every open connection.
    pub fn cut(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Stops accepting connections (connection refused from now on) and cuts open ones.
    pub fn close(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
        self.cut();
    }
}

// ------------------------------------------------------------------------------------
// Fake OSDs
// ------------------------------------------------------------------------------------

/// A scripted fault for the next request an OSD receives.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer BUSY.
    Busy,
    /// Apply the op, then cut the connection instead of replying.
    CutAfterApply,
    /// Commit these map changes before handling the request (the request then meets the
    /// newer map: STALE_EPOCH or MISDIRECTED).
    ChangeMap(Vec<MapChange>),
}

/// One request an OSD received.
#[derive(Clone, Debug)]
pub struct Received {
    pub osd: OsdId,
    pub reqid: Option<(u64, u64)>,
    pub epoch: u64,
    pub object: String,
    /// The error kind answered (None: success or no answer).
    pub answered: Option<OpErrorKind>,
    /// It came over an op link (else as a unary call).
    pub linked: bool,
}

#[derive(Default, Clone)]
struct Object {
    data: Vec<u8>,
    version: u64,
    xattrs: BTreeMap<String, Bytes>,
    omap: BTreeMap<Bytes, Bytes>,
}

#[derive(Default)]
struct Store {
    objects: BTreeMap<(String, String), Object>,
    applied: HashMap<(u64, u64), u64>,
    next_version: u64,
}

/// The state all fake OSDs share (they act like perfectly replicated copies).
#[derive(Default)]
pub struct Shared {
    store: Mutex<Store>,
    pub log: Mutex<Vec<Received>>,
    faults: Mutex<HashMap<OsdId, VecDeque<Fault>>>,
    proxies: Mutex<HashMap<OsdId, Arc<Proxy>>>,
    /// Every request answers BUSY (for timeout tests).
    pub always_busy: Mutex<bool>,
    /// Every write is applied and then its connection cut.
    pub always_cut: Mutex<bool>,
    /// ListObjects page size used when the request asks for 0.
    pub page_size: Mutex<usize>,
}

#[derive(Clone)]
struct FakeOsd {
    id: OsdId,
    maps: Maps,
    shared: Arc<Shared>,
    /// This handle serves an op link.
    linked: bool,
}

fn op_error(kind: OpErrorKind, message: &str) -> OpError {
    OpError {
        kind: kind as i32,
        message: message.to_owned(),
        actual_version: None,
    }
}

impl FakeOsd {
    /// The routing checks every real OSD makes: MISDIRECTED when not the primary of the
    /// object's PG at its epoch, STALE_EPOCH when the sender is older.
    fn route(&self, map: &ClusterMap, pg: PgId, epoch: u64) -> Option<OpError> {
        let primary = map.pg_to_up_acting(pg).map(|m| m.acting_primary).ok();
        if primary != Some(self.id) {
            return Some(op_error(OpErrorKind::Misdirected, "not the primary"));
        }
        if epoch < u64::from(map.epoch()) {
            return Some(op_error(OpErrorKind::StaleEpoch, "sender is older"));
        }
        None
    }

    fn next_fault(&self) -> Option<Fault> {
        self.shared
            .faults
            .lock()
            .unwrap()
            .get_mut(&self.id)
            .and_then(VecDeque::pop_front)
    }

    fn apply(&self, request: &OpRequest) -> Result<(u64, Vec<SubOpResult>), OpError> {
        let object = request.object.clone().unwrap_or_default();
        let key = (object.namespace.clone(), object.name.clone());
        let mut store = self.shared.store.lock().unwrap();
        let is_write = request.ops.iter().any(|op| {
            !matches!(
                op.op,
                Some(
                    Sub::Read(_)
                        | Sub::Stat(_)
                        | Sub::GetXattr(_)
                        | Sub::GetXattrs(_)
                        | Sub::OmapList(_)
                        | Sub::OmapGet(_)
                        | Sub::AssertExists(_)
                        | Sub::AssertVersion(_)
                )
            )
        });
        if is_write {
            if let Some(reqid) = &request.reqid {
                if let Some(version) = store.applied.get(&(reqid.client, reqid.tid)) {
                    return Ok((*version, Vec::new()));
                }
            }
        }
        let mut obj = store.objects.get(&key).cloned();
        let existed = obj.is_some();
        let mut results = Vec::new();
        let not_found = || op_error(OpErrorKind::NotFound, "no such object");
        for op in &request.ops {
            let result = match op.op.as_ref().expect("sub-op") {
                Sub::AssertExists(_) => {
                    obj.as_ref().ok_or_else(not_found)?;
                    None
                }
                Sub::AssertVersion(v) => {
                    let actual = obj.as_ref().map_or(0, |o| o.version);
                    if actual != v.version {
                        return Err(OpError {
                            kind: OpErrorKind::VersionMismatch as i32,
                            message: "version differs".into(),
                            actual_version: Some(Eversion {
                                epoch: 1,
                                version: actual,
                            }),
                        });
                    }
                    None
                }
                Sub::Create(create) => {
                    if create.exclusive && obj.is_some() {
                        return Err(op_error(OpErrorKind::Exists, "exists"));
                    }
                    obj.get_or_insert_with(Object::default);
                    None
                }
                Sub::Write(w) => {
                    let o = obj.get_or_insert_with(Object::default);
                    let end = w.offset as usize + w.data.len();
                    if o.data.len() < end {
                        o.data.resize(end, 0);
                    }
                    o.data[w.offset as usize..end].copy_from_slice(&w.data);
                    None
                }
                Sub::WriteFull(w) => {
                    obj.get_or_insert_with(Object::default).data = w.data.to_vec();
                    None
                }
                Sub::Append(a) => {
                    obj.get_or_insert_with(Object::default)
                        .data
                        .extend_from_slice(&a.data);
                    None
                }
                Sub::Truncate(t) => {
                    obj.get_or_insert_with(Object::default)
                        .data
                        .resize(t.size as usize, 0);
                    None
                }
                Sub::Remove(_) => {
                    obj.take().ok_or_else(not_found)?;
                    None
                }
                Sub::SetXattr(x) => {
                    obj.get_or_insert_with(Object::default)
                        .xattrs
                        .insert(x.name.clone(), x.value.clone());
                    None
                }
                Sub::RmXattr(name) => {
                    obj.as_mut().ok_or_else(not_found)?.xattrs.remove(name);
                    None
                }
                Sub::OmapSet(s) => {
                    let o = obj.get_or_insert_with(Object::default);
                    for e in &s.entries {
                        o.omap.insert(e.key.clone(), e.value.clone());
                    }
                    None
                }
                Sub::OmapRm(r) => {
                    let o = obj.as_mut().ok_or_else(not_found)?;
                    for k in &r.keys {
                        o.omap.remove(k);
                    }
                    None
                }
                Sub::OmapClear(_) => {
                    obj.as_mut().ok_or_else(not_found)?.omap.clear();
                    None
                }
                Sub::Read(r) => {
                    let o = obj.as_ref().ok_or_else(not_found)?;
                    let start = (r.offset as usize).min(o.data.len());
                    let end = if r.length == 0 {
                        o.data.len()
                    } else {
                        (start + r.length as usize).min(o.data.len())
                    };
                    Some(SubResult::Data(Bytes::copy_from_slice(&o.data[start..end])))
                }
                Sub::Stat(_) => {
                    let o = obj.as_ref().ok_or_else(not_found)?;
                    Some(SubResult::Stat(ObjectStat {
                        size: o.data.len() as u64,
                        version: Some(Eversion {
                            epoch: 1,
                            version: o.version,
                        }),
                        mtime_ns: 1,
                    }))
                }
                Sub::GetXattr(name) => {
                    let o = obj.as_ref().ok_or_else(not_found)?;
                    Some(SubResult::XattrValue(
                        o.xattrs
                            .get(name)
                            .cloned()
                            .ok_or_else(|| op_error(OpErrorKind::NotFound, "no such xattr"))?,
                    ))
                }
                Sub::GetXattrs(_) => {
                    let o = obj.as_ref().ok_or_else(not_found)?;
                    Some(SubResult::Xattrs(Xattrs {
                        entries: o.xattrs.clone().into_iter().collect(),
                    }))
                }
                Sub::OmapList(l) => {
                    let o = obj.as_ref().ok_or_else(not_found)?;
                    let max = if l.max == 0 { 1000 } else { l.max as usize };
                    let matching: Vec<_> = o
                        .omap
                        .iter()
                        .filter(|(k, _)| l.start_after.is_empty() || **k > l.start_after)
                        .filter(|(k, _)| k.starts_with(&l.prefix))
                        .collect();
                    Some(SubResult::Omap(OmapPage {
                        more: matching.len() > max,
                        entries: matching
                            .into_iter()
                            .take(max)
                            .map(|(k, v)| OmapEntry {
                                key: k.clone(),
                                value: if l.with_values {
                                    v.clone()
                                } else {
                                    Bytes::new()
                                },
                            })
                            .collect(),
                    }))
                }
                Sub::OmapGet(g) => {
                    let o = obj.as_ref().ok_or_else(not_found)?;
                    Some(SubResult::Omap(OmapPage {
                        more: false,
                        entries: g
                            .keys
                            .iter()
                            .filter_map(|k| {
                                o.omap.get(k).map(|v| OmapEntry {
                                    key: k.clone(),
                                    value: v.clone(),
                                })
                            })
                            .collect(),
                    }))
                }
                Sub::Zero(z) => {
                    // As the OSD: zeros inside the object, the size unchanged, nothing on a
                    // missing object.
                    if let Some(o) = obj.as_mut() {
                        let len = o.data.len() as u64;
                        let start = z.offset.min(len) as usize;
                        let end = z.offset.saturating_add(z.length).min(len) as usize;
                        o.data[start..end].fill(0);
                    }
                    None
                }
            };
            results.push(SubOpResult { result });
        }
        if !is_write {
            let version = obj.as_ref().map_or(0, |o| o.version);
            return Ok((version, results));
        }
        store.next_version += 1;
        let version = store.next_version;
        match obj {
            Some(mut o) => {
                o.version = version;
                store.objects.insert(key, o);
            }
            None if existed => {
                store.objects.remove(&key);
            }
            None => {}
        }
        if let Some(reqid) = &request.reqid {
            store.applied.insert((reqid.client, reqid.tid), version);
        }
        Ok((
            version,
            results
                .into_iter()
                .map(|_| SubOpResult { result: None })
                .collect(),
        ))
    }

    fn record(&self, request: &OpRequest, answered: Option<OpErrorKind>) {
        self.shared.log.lock().unwrap().push(Received {
            osd: self.id,
            reqid: request.reqid.as_ref().map(|r| (r.client, r.tid)),
            epoch: request.epoch,
            object: request
                .object
                .as_ref()
                .map(|o| o.name.clone())
                .unwrap_or_default(),
            answered,
            linked: self.linked,
        });
    }
}

impl FakeOsd {
    /// Serves an op link: each op as if it came alone, on its own task.
    async fn serve_ops(self, stream: TcpStream, peer: SocketAddr) {
        proto::link::serve::<TaggedOp, TaggedOpReply, _, _>(
            stream,
            peer.to_string(),
            |request| {
                let osd = FakeOsd {
                    linked: true,
                    ..self.clone()
                };
                async move {
                    match osd.op(Request::new(request)).await {
                        Ok(reply) => reply.into_inner(),
                        Err(status) => OpReply {
                            epoch: 0,
                            error: Some(op_error(OpErrorKind::InvalidArgument, status.message())),
                            version: None,
                            results: Vec::new(),
                        },
                    }
                }
            },
            || OpReply {
                epoch: 0,
                error: Some(op_error(OpErrorKind::InvalidArgument, "no request")),
                version: None,
                results: Vec::new(),
            },
        )
        .await;
    }
}

#[tonic::async_trait]
impl Osd for FakeOsd {
    async fn op(&self, request: Request<OpRequest>) -> Result<Response<OpReply>, Status> {
        let request = request.into_inner();
        let fault = self.next_fault();
        if let Some(Fault::ChangeMap(changes)) = &fault {
            self.maps.change(changes);
        }
        let map = self.maps.current();
        let reply = |error: Option<OpError>, version: u64, results: Vec<SubOpResult>| OpReply {
            epoch: u64::from(map.epoch()),
            error,
            version: Some(Eversion { epoch: 1, version }),
            results,
        };
        let object = request.object.clone().unwrap_or_default();
        let pool = request.pg.as_ref().map_or(0, |pg| pg.pool);
        let pg = map
            .object_to_pg(pool, &object.name, &object.namespace)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let Some(error) = self.route(&map, pg, request.epoch) {
            self.record(&request, OpErrorKind::try_from(error.kind).ok());
            return Ok(Response::new(reply(Some(error), 0, Vec::new())));
        }
        if matches!(fault, Some(Fault::Busy)) || *self.shared.always_busy.lock().unwrap() {
            self.record(&request, Some(OpErrorKind::Busy));
            return Ok(Response::new(reply(
                Some(op_error(OpErrorKind::Busy, "pg is peering")),
                0,
                Vec::new(),
            )));
        }
        let outcome = self.apply(&request);
        let cut = matches!(fault, Some(Fault::CutAfterApply))
            || (*self.shared.always_cut.lock().unwrap() && request.reqid.is_some());
        if cut {
            self.record(&request, None);
            let proxy = self.shared.proxies.lock().unwrap().get(&self.id).cloned();
            proxy.expect("proxy").cut();
            // The reply never leaves: the connection is gone.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        match outcome {
            Ok((version, results)) => {
                self.record(&request, None);
                Ok(Response::new(reply(None, version, results)))
            }
            Err(error) => {
                self.record(&request, OpErrorKind::try_from(error.kind).ok());
                Ok(Response::new(reply(Some(error), 0, Vec::new())))
            }
        }
    }

    async fn list_objects(
        &self,
        request: Request<ListObjectsRequest>,
    ) -> Result<Response<ListObjectsReply>, Status> {
        let request = request.into_inner();
        let map = self.maps.current();
        let pg = request.pg.expect("pg");
        let pgid = PgId::new(pg.pool, pg.seed);
        let epoch = u64::from(map.epoch());
        if let Some(error) = self.route(&map, pgid, request.epoch) {
            return Ok(Response::new(ListObjectsReply {
                epoch,
                error: Some(error),
                ..ListObjectsReply::default()
            }));
        }
        let max = match request.max {
            0 => *self.shared.page_size.lock().unwrap(),
            n => n as usize,
        };
        let after = request.start_after.map(|o| (o.namespace, o.name));
        let store = self.shared.store.lock().unwrap();
        let matching: Vec<ObjectName> = store
            .objects
            .keys()
            .filter(|(ns, name)| {
                map.object_to_pg(pg.pool, name, ns).ok() == Some(pgid)
                    && (request.all_namespaces || *ns == request.namespace)
                    && after
                        .as_ref()
                        .is_none_or(|a| (ns.clone(), name.clone()) > *a)
            })
            .map(|(ns, name)| ObjectName {
                namespace: ns.clone(),
                name: name.clone(),
            })
            .collect();
        Ok(Response::new(ListObjectsReply {
            epoch,
            error: None,
            more: matching.len() > max,
            objects: matching.into_iter().take(max).collect(),
        }))
    }

    async fn replicate(
        &self,
        _: Request<ReplicateRequest>,
    ) -> Result<Response<ReplicateReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn pg_query(&self, _: Request<PgQueryRequest>) -> Result<Response<PgQueryReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn pg_scan(&self, _: Request<PgScanRequest>) -> Result<Response<PgScanReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn pull_object(
        &self,
        _: Request<PullObjectRequest>,
    ) -> Result<Response<PullObjectReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn push_object(
        &self,
        _: Request<PushObjectRequest>,
    ) -> Result<Response<PushObjectReply>, Status> {
        Err(Status::unimplemented("fake"))
    }
    async fn osd_status(
        &self,
        _: Request<OsdStatusRequest>,
    ) -> Result<Response<OsdStatusReply>, Status> {
        Ok(Response::new(OsdStatusReply {
            osd_id: self.id,
            epoch: u64::from(self.maps.current().epoch()),
            ..OsdStatusReply::default()
        }))
    }
}

// ------------------------------------------------------------------------------------
// The fake cluster
// ------------------------------------------------------------------------------------

/// A fake monitor and `n` fake OSDs (one per host), with a pool `data` of size 1.
pub struct FakeCluster {
    pub maps: Maps,
    pub mon_addr: SocketAddr,
    pub shared: Arc<Shared>,
    pub osds: Vec<OsdId>,
}

/// A listener on 127.0.0.1:0 as a tonic incoming stream, and its address.
async fn bind() -> (TcpListenerStream, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    (TcpListenerStream::new(listener), addr)
}

impl FakeCluster {
    pub async fn start(n: i32, pg_num: u32) -> FakeCluster {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let shared = Arc::new(Shared::default());
        *shared.page_size.lock().unwrap() = 1000;
        let empty = ClusterMap::new(
            Uuid::from_bytes([7; 16]),
            0,
            vec![MonitorInfo {
                name: "a".into(),
                address: "127.0.0.1:1".into(),
            }],
            crush::CrushMap::new_default(),
        )
        .expect("first map");
        let (sender, _) = watch::channel(Arc::new(empty));
        let maps = Maps(Arc::new(sender));
        let mut changes = Vec::new();
        let mut osds = Vec::new();
        for id in 0..n {
            let fake = FakeOsd {
                id,
                maps: maps.clone(),
                shared: shared.clone(),
                linked: false,
            };
            let server = OsdServer::new(fake.clone())
                .max_decoding_message_size(proto::MAX_MESSAGE_BYTES)
                .max_encoding_message_size(proto::MAX_MESSAGE_BYTES);
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let backend = listener.local_addr().expect("address");
            let incoming = proto::link::accept(listener, move |stream, kind, peer| {
                assert_eq!(kind, proto::link::LinkKind::Ops, "clients open op links");
                tokio::spawn(fake.clone().serve_ops(stream, peer));
            });
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(server)
                    .serve_with_incoming(incoming),
            );
            let proxy = Proxy::start(backend).await;
            shared.proxies.lock().unwrap().insert(id, proxy.clone());
            let uuid = Uuid::from_bytes([id as u8 + 1; 16]);
            changes.push(MapChange::NewOsd(NewOsd {
                uuid,
                id: Some(id),
                host: format!("host{id}"),
                location: Vec::new(),
                crush_weight: crush::WEIGHT_ONE,
                device_class: None,
            }));
            changes.push(MapChange::BootOsd {
                id,
                uuid,
                address: proxy.addr.to_string(),
            });
            changes.push(MapChange::MarkIn { id });
            osds.push(id);
        }
        changes.push(MapChange::CreatePool(PoolSpec::replicated(
            "data", 1, pg_num,
        )));
        maps.change(&changes);
        let (incoming, mon_addr) = bind().await;
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(MonitorServer::new(FakeMon { maps: maps.clone() }))
                .serve_with_incoming(incoming),
        );
        FakeCluster {
            maps,
            mon_addr,
            shared,
            osds,
        }
    }

    /// A client config with this op timeout.
    pub fn config(&self, op_timeout: Duration) -> librados::ClientConfig {
        let mut config = librados::ClientConfig::with_mon_hosts([self.mon_addr.to_string()]);
        config.op_timeout = op_timeout;
        config
    }

    pub fn proxy(&self, osd: OsdId) -> Arc<Proxy> {
        self.shared.proxies.lock().unwrap()[&osd].clone()
    }

    /// Scripts faults for an OSD's next requests.
    pub fn fault(&self, osd: OsdId, faults: impl IntoIterator<Item = Fault>) {
        self.shared
            .faults
            .lock()
            .unwrap()
            .entry(osd)
            .or_default()
            .extend(faults);
    }

    /// The primary of `object` in pool `data` (default namespace) at the current map.
    pub fn primary_of(&self, object: &str) -> (PgId, OsdId) {
        let map = self.maps.current();
        let pool = map.pool_by_name("data").expect("pool").id;
        let pg = map.object_to_pg(pool, object, "").expect("pg");
        (pg, map.pg_to_up_acting(pg).expect("mapping").acting_primary)
    }

    /// The requests received for `object`, in order.
    pub fn received(&self, object: &str) -> Vec<Received> {
        self.shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.object == object)
            .cloned()
            .collect()
    }

    /// The stored data of `object` (default namespace).
    pub fn stored(&self, object: &str) -> Option<Vec<u8>> {
        self.shared
            .store
            .lock()
            .unwrap()
            .objects
            .get(&(String::new(), object.to_owned()))
            .map(|o| o.data.clone())
    }
}
