//! The replication link (`ReplicaLink`) against a scripted peer: replies are matched to
//! their writes by tag whatever order they come in, and a link that ends (or whose peer
//! sends a malformed frame) fails the writes waiting on it at once (not at their deadline)
//! and marks the link closed. Large writes travel as bulk segments and arrive whole, in
//! buffers aligned for direct I/O.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osd::replica_link::{self, LinkError};
use proto::link::{self, FrameReader, FrameWriter, LinkKind};
use proto::osd::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// What the scripted peer does with a link.
#[derive(Clone, Copy)]
enum Script {
    /// Waits for `batch` writes, then answers them last first, echoing each write's epoch.
    ReverseBatches { batch: usize },
    /// Closes the connection when the first write arrives.
    FailOnFirstWrite,
    /// Answers the first write with a frame longer than a link may carry.
    OversizedReply,
    /// Answers each write at once with a description of its sub-ops' data ([`describe`]).
    DescribeData,
}

/// Per sub-op: its data's length, whether it starts on a 4 KiB boundary, and its xxh3.
fn describe(ops: &[SubOp]) -> String {
    ops.iter()
        .map(|op| {
            let data = match &op.op {
                Some(sub_op::Op::Write(write)) => &write.data,
                Some(sub_op::Op::WriteFull(write)) => &write.data,
                Some(sub_op::Op::Append(append)) => &append.data,
                _ => return "-".to_owned(),
            };
            let aligned = (data.as_ptr() as usize).is_multiple_of(link::BULK_ALIGN);
            format!(
                "{} {} {:x}",
                data.len(),
                aligned,
                xxhash_rust::xxh3::xxh3_64(data)
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
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

async fn run_script(script: Script, stream: TcpStream) {
    let (read, mut write) = stream.into_split();
    let mut writes = FrameReader::new(read);
    match script {
        Script::FailOnFirstWrite => {
            let _ = writes.next::<TaggedReplicate>().await;
        }
        Script::OversizedReply => {
            let _ = writes.next::<TaggedReplicate>().await;
            let len = (link::MAX_FRAME_BYTES as u32 + 1).to_le_bytes();
            write.write_all(&len).await.unwrap();
            write.write_all(&[0u8; 1024]).await.unwrap();
            // Held open: the client must give up on its own.
            let _ = writes.next::<TaggedReplicate>().await;
        }
        Script::DescribeData => {
            let replies = FrameWriter::attached(write);
            while let Ok(Some(write)) = writes.next::<TaggedReplicate>().await {
                let mut reply = echo(&write);
                if let (Some(answer), Some(request)) = (reply.reply.as_mut(), &write.request) {
                    answer.message = describe(&request.ops);
                }
                assert!(replies.send(&reply));
            }
        }
        Script::ReverseBatches { batch } => {
            let replies = FrameWriter::attached(write);
            let mut held = Vec::new();
            while let Ok(Some(write)) = writes.next::<TaggedReplicate>().await {
                held.push(write);
                if held.len() == batch {
                    for write in held.drain(..).rev() {
                        assert!(replies.send(&echo(&write)));
                    }
                }
            }
        }
    }
}

/// Starts a scripted peer; returns its address and its count of opened links.
async fn start_peer(script: Script) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let links_opened = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&links_opened);
    let others = link::accept(listener, move |stream, kind, _| {
        assert_eq!(kind, LinkKind::Replicate);
        counter.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(run_script(script, stream));
    });
    // Nothing here speaks gRPC: other connections are closed as they come.
    let mut others = others.into_inner();
    tokio::spawn(async move { while others.recv().await.is_some() {} });
    (addr, links_opened)
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
    let link = replica_link::open(addr.clone(), 1);
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
        "one link serves every write"
    );
}

#[tokio::test]
async fn writes_sent_from_synchronous_code_get_their_replies_later() {
    let (addr, _) = start_peer(Script::ReverseBatches { batch: 4 }).await;
    let link = replica_link::open(addr, 1);
    // Sent without awaiting anything (as the primary does under its PG's head lock);
    // two are dropped unanswered, which forgets them.
    let sent: Vec<_> = (1..=4u64)
        .map(|epoch| (epoch, link.send(write_at(epoch)).expect("the link is open")))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    for (epoch, sent) in sent {
        if epoch % 2 == 0 {
            drop(sent);
            continue;
        }
        let reply = sent.reply_until(deadline).await.expect("its reply");
        assert_eq!(reply.epoch, epoch, "a reply went to another write");
    }
    assert!(!link.is_closed(), "replies to forgotten writes are let go");
    let again = link.call_until(write_at(9), deadline);
    // The peer answers in batches of four: three more keep the link going.
    let others: Vec<_> = (10..=12)
        .map(|epoch| link.send(write_at(epoch)).unwrap())
        .collect();
    assert_eq!(again.await.expect("a later call works").epoch, 9);
    drop(others);
}

#[tokio::test]
async fn a_link_that_ends_fails_its_waiting_writes_at_once() {
    let (addr, _) = start_peer(Script::FailOnFirstWrite).await;
    let link = replica_link::open(addr.clone(), 1);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let outcome = link.call_until(write_at(1), deadline).await;
    assert!(
        matches!(outcome, Err(LinkError::Closed)),
        "expected a closed link, got {outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the write waited for its deadline instead of failing with the link"
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
    a_write_fails_closed_long_before_its_deadline(addr).await;
}

#[tokio::test]
async fn a_reply_over_the_frame_limit_closes_the_link() {
    let (addr, _) = start_peer(Script::OversizedReply).await;
    a_write_fails_closed_long_before_its_deadline(addr).await;
}

/// Sends one write over a new link to `addr` with 30 s to go and checks that it fails
/// as closed (and the link with it) within 10 s.
async fn a_write_fails_closed_long_before_its_deadline(addr: String) {
    let link = replica_link::open(addr, 1);
    let started = Instant::now();
    let outcome = link
        .call_until(write_at(1), started + Duration::from_secs(30))
        .await;
    assert!(matches!(outcome, Err(LinkError::Closed)), "got {outcome:?}");
    assert!(link.is_closed());
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn pattern(seed: u64, len: usize) -> bytes::Bytes {
    common::pattern(len, seed).into()
}

fn writing(ops: Vec<sub_op::Op>) -> ReplicateRequest {
    ReplicateRequest {
        epoch: 1,
        ops: ops.into_iter().map(|op| SubOp { op: Some(op) }).collect(),
        ..ReplicateRequest::default()
    }
}

#[tokio::test]
async fn large_data_arrives_whole_and_aligned_among_small_writes() {
    let (addr, _) = start_peer(Script::DescribeData).await;
    let link = replica_link::open(addr, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let big = pattern(1, 4 << 20);
    let medium = pattern(2, link::BULK_MIN_BYTES);
    let small = pattern(3, link::BULK_MIN_BYTES - 1);
    // One request mixing bulk data (two sub-ops), data kept in the message, and a sub-op
    // without data; small requests around it on the same link.
    let mixed = writing(vec![
        sub_op::Op::Write(WriteOp {
            offset: 0,
            data: big.clone(),
        }),
        sub_op::Op::Truncate(TruncateOp { size: 1 }),
        sub_op::Op::Append(AppendOp {
            data: small.clone(),
        }),
        sub_op::Op::WriteFull(WriteFullOp {
            data: medium.clone(),
        }),
    ]);
    let before = link.send(write_at(7)).expect("the link is open");
    let mixed = link.send(mixed).expect("the link is open");
    let after = link.send(write_at(8)).expect("the link is open");
    let unaligned = |data: &bytes::Bytes| {
        format!(
            "{} false {:x}",
            data.len(),
            xxhash_rust::xxh3::xxh3_64(data)
        )
    };
    let aligned =
        |data: &bytes::Bytes| format!("{} true {:x}", data.len(), xxhash_rust::xxh3::xxh3_64(data));
    let mixed = mixed.reply_until(deadline).await.expect("its reply");
    let described: Vec<&str> = mixed.message.split("; ").collect();
    assert_eq!(described[0], aligned(&big), "the 4 MiB write");
    assert_eq!(described[1], "-");
    // Kept in the message: its length and bytes (its alignment is whatever it is).
    assert!(
        described[2] == unaligned(&small) || described[2] == aligned(&small),
        "the small append: {}",
        described[2]
    );
    assert_eq!(
        described[3],
        aligned(&medium),
        "the write_full at the bulk bound"
    );
    assert_eq!(before.reply_until(deadline).await.unwrap().epoch, 7);
    assert_eq!(after.reply_until(deadline).await.unwrap().epoch, 8);
    assert!(!link.is_closed());
}

#[tokio::test]
async fn a_request_too_large_for_a_frame_is_refused_and_the_link_stays_open() {
    let (addr, _) = start_peer(Script::DescribeData).await;
    let link = replica_link::open(addr, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    // Sub-ops under the bulk bound stay in the message: twenty of them exceed a frame.
    let piece = pattern(4, link::BULK_MIN_BYTES - 1);
    let ops = (0..20)
        .map(|n| {
            sub_op::Op::Write(WriteOp {
                offset: n * piece.len() as u64,
                data: piece.clone(),
            })
        })
        .collect();
    let outcome = link.call_until(writing(ops), deadline).await;
    assert!(
        matches!(outcome, Err(LinkError::TooLarge)),
        "got {outcome:?}"
    );
    assert!(!link.is_closed());
    let again = link.call_until(write_at(3), deadline).await;
    assert_eq!(again.expect("the link still carries writes").epoch, 3);
}
