//! The replication stream (`ReplicaLink`) against a scripted peer: replies are matched to
//! their writes by tag whatever order they come in, and a stream that ends fails the writes
//! waiting on it at once (not at their deadline) and marks the link closed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osd::peers::channel_to;
use osd::replica_link::{self, LinkError};
use proto::osd::osd_server::{Osd, OsdServer};
use proto::osd::*;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

/// What the scripted peer does with a stream.
#[derive(Clone, Copy)]
enum Script {
    /// Waits for `batch` writes, then answers them last first, echoing each write's epoch.
    ReverseBatches { batch: usize },
    /// Ends the stream with an error when the first write arrives.
    FailOnFirstWrite,
}

struct ScriptedPeer {
    script: Script,
    streams_opened: Arc<AtomicUsize>,
}

fn echo(write: &TaggedReplicate) -> TaggedReplicateReply {
    let epoch = write.request.as_ref().map_or(0, |request| request.epoch);
    TaggedReplicateReply {
        tag: write.tag,
        reply: Some(ReplicateReply {
            epoch,
            status: ReplicateStatus::Replicated as i32,
            message: String::new(),
            last_update: None,
        }),
    }
}

#[tonic::async_trait]
impl Osd for ScriptedPeer {
    async fn op(&self, _: Request<OpRequest>) -> Result<Response<OpReply>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    type OpStreamStream = ReceiverStream<Result<TaggedOpReply, Status>>;
    async fn op_stream(
        &self,
        _: Request<Streaming<TaggedOp>>,
    ) -> Result<Response<Self::OpStreamStream>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn list_objects(
        &self,
        _: Request<ListObjectsRequest>,
    ) -> Result<Response<ListObjectsReply>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn replicate(
        &self,
        _: Request<ReplicateRequest>,
    ) -> Result<Response<ReplicateReply>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    type ReplicateStreamStream = ReceiverStream<Result<TaggedReplicateReply, Status>>;
    async fn replicate_stream(
        &self,
        request: Request<Streaming<TaggedReplicate>>,
    ) -> Result<Response<Self::ReplicateStreamStream>, Status> {
        self.streams_opened.fetch_add(1, Ordering::SeqCst);
        let mut writes = request.into_inner();
        let (replies, outbound) = mpsc::channel(64);
        let script = self.script;
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok(Some(write)) = writes.message().await {
                match script {
                    Script::FailOnFirstWrite => {
                        let _ = replies.send(Err(Status::unavailable("going away"))).await;
                        return;
                    }
                    Script::ReverseBatches { batch } => {
                        held.push(write);
                        if held.len() == batch {
                            for write in held.drain(..).rev() {
                                let _ = replies.send(Ok(echo(&write))).await;
                            }
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(outbound)))
    }
    async fn ping(&self, _: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn pg_query(&self, _: Request<PgQueryRequest>) -> Result<Response<PgQueryReply>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn pg_scan(&self, _: Request<PgScanRequest>) -> Result<Response<PgScanReply>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn pull_object(
        &self,
        _: Request<PullObjectRequest>,
    ) -> Result<Response<PullObjectReply>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn push_object(
        &self,
        _: Request<PushObjectRequest>,
    ) -> Result<Response<PushObjectReply>, Status> {
        Err(Status::unimplemented("scripted"))
    }
    async fn osd_status(
        &self,
        _: Request<OsdStatusRequest>,
    ) -> Result<Response<OsdStatusReply>, Status> {
        Err(Status::unimplemented("scripted"))
    }
}

/// Starts a scripted peer; returns its address and its count of opened streams.
async fn start_peer(script: Script) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let streams_opened = Arc::new(AtomicUsize::new(0));
    let peer = ScriptedPeer {
        script,
        streams_opened: Arc::clone(&streams_opened),
    };
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(OsdServer::new(peer))
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, streams_opened)
}

fn write_at(epoch: u64) -> ReplicateRequest {
    ReplicateRequest {
        epoch,
        from_osd: 0,
        ..ReplicateRequest::default()
    }
}

#[tokio::test]
async fn replies_find_their_writes_whatever_their_order() {
    const WRITES: u64 = 8;
    let (addr, streams_opened) = start_peer(Script::ReverseBatches {
        batch: WRITES as usize,
    })
    .await;
    let link = replica_link::open(addr.clone(), channel_to(&addr).unwrap(), 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut writes = tokio::task::JoinSet::new();
    for epoch in 1..=WRITES {
        let link = Arc::clone(&link);
        writes.spawn(async move { (epoch, link.call_until(write_at(epoch), deadline).await) });
    }
    let mut answered = Vec::new();
    while let Some(done) = writes.join_next().await {
        let (epoch, reply) = done.unwrap();
        let reply = reply.expect("every write gets its reply");
        assert_eq!(reply.epoch, epoch, "a reply went to another write");
        answered.push(epoch);
    }
    answered.sort_unstable();
    assert_eq!(answered, (1..=WRITES).collect::<Vec<_>>());
    assert!(!link.is_closed());
    assert_eq!(
        streams_opened.load(Ordering::SeqCst),
        1,
        "one stream serves every write"
    );
}

#[tokio::test]
async fn a_stream_that_ends_fails_its_waiting_writes_at_once() {
    let (addr, _) = start_peer(Script::FailOnFirstWrite).await;
    let link = replica_link::open(addr.clone(), channel_to(&addr).unwrap(), 1);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let outcome = link.call_until(write_at(1), deadline).await;
    assert!(
        matches!(outcome, Err(LinkError::Closed)),
        "expected a closed link, got {outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the write waited for its deadline instead of failing with the stream"
    );
    assert!(link.is_closed());
    let again = link.call_until(write_at(2), deadline).await;
    assert!(matches!(again, Err(LinkError::Closed)));
}

#[tokio::test]
async fn a_link_to_a_dead_address_closes_without_waiting_for_the_deadline() {
    // Bind and drop: nothing listens on this port any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let link = replica_link::open(addr.clone(), channel_to(&addr).unwrap(), 1);
    let started = Instant::now();
    let outcome = link
        .call_until(write_at(1), started + Duration::from_secs(30))
        .await;
    assert!(matches!(outcome, Err(LinkError::Closed)), "got {outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
