//! [`Link`]: one long-lived TCP connection that carries many requests as tagged,
//! length-prefixed protobuf frames, with the replies matched back by tag. The OSDs
//! replicate writes over one (`ReplicaLink`) and clients send ops to a primary over one
//! (`OpLink`); everything else (listings, recovery, admin calls, and the ops too large for
//! a frame) is gRPC on the same port.
//!
//! Why not a gRPC stream: over HTTP/2 one message crosses three or four tasks on each side
//! (the body pipe, the connection task, the stream reader) before it reaches its handler,
//! and each crossing is a thread wake-up. Here the sender writes its frame to the socket
//! from its own task when the socket is idle, and the receiver's one reader task hands
//! each request to the task that runs it. A small write crosses the client-primary and
//! primary-replica hops twice each, so these wake-ups were most of a small write's latency.
//!
//! A connection opens with [`PREAMBLE_MAGIC`] and a [`LinkKind`] byte, which is how an OSD
//! tells a link from gRPC on its one port ([`identify`]). Each frame is a little-endian
//! `u32` length and that many bytes of one protobuf message, at most [`MAX_FRAME_BYTES`].
//!
//! Large writes travel as *bulk* frames, so that their data is copied by neither end: the
//! length word has [`BULK_FLAG`] set and is followed by a `u32` segment count and, per
//! segment, the `u32` index of the sub-op whose data it is and the `u32` data length; then
//! the message, with those sub-ops' data left empty; then the segments' bytes. The sender
//! queues the caller's own `Bytes` for the socket (no encoding copy, one buffer shared by
//! all replicas), and the receiver reads each segment straight from the socket into its
//! own 4 KiB-aligned buffer (no decoding copy), which the OSD's direct I/O then writes to
//! disk as it is. A frame goes out whole, so a 4 MiB write delays the small frames queued
//! behind it by the time the socket takes to carry it (about 2 ms on loopback), as one
//! Ceph messenger connection does; gRPC's HTTP/2 interleaves, but paid two copies and a
//! fresh 4 MiB buffer on each side of every hop.
//!
//! A link dies with its connection (the peer died or restarted, the connection broke, a
//! frame was malformed): every call waiting on it fails with [`LinkError::Closed`] at once,
//! and the owner opens a new link for the next call. Retries and deadlines stay the
//! caller's business.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes};
use tokio::io::{AsyncReadExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_stream::wrappers::ReceiverStream;

use crate::osd::{
    sub_op, sub_op_result, OpReply, OpRequest, ReplicateReply, ReplicateRequest, SubOp, TaggedOp,
    TaggedOpReply, TaggedReplicate, TaggedReplicateReply,
};

/// The first bytes of every link connection. gRPC connections open with HTTP/2's
/// `PRI * HTTP/2.0` preface, so the first byte alone tells the two apart.
pub const PREAMBLE_MAGIC: [u8; 8] = *b"SHOALLNK";

/// The largest frame message either end sends or accepts, bulk segments not counted (the
/// senders send requests with more than this besides their large data as gRPC requests);
/// a longer frame means a broken or hostile peer, and the connection is closed.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// The bit of a frame's length word that marks a bulk frame (see the module doc).
pub const BULK_FLAG: u32 = 1 << 31;
/// Sub-op data of at least this many bytes travels as a bulk segment.
pub const BULK_MIN_BYTES: usize = 64 << 10;
/// The most bulk bytes one frame carries: a whole message's worth.
pub const MAX_BULK_BYTES: usize = crate::MAX_MESSAGE_BYTES;
/// The most bulk segments one frame carries.
const MAX_BULK_SEGMENTS: usize = 256;
/// The alignment of a received bulk segment's bytes: a direct I/O write takes them as
/// they are.
pub const BULK_ALIGN: usize = 4096;
/// Buffers handed to one vectored socket write.
const WRITE_SLICES: usize = 16;

/// How many bytes of replies a server lets wait for a peer that does not read them before
/// it stops reading that peer's requests.
const SERVER_BACKLOG_BYTES: usize = 8 << 20;

/// What a link carries, named by the byte after the magic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// Client ops to a primary: `TaggedOp` in, `TaggedOpReply` out.
    Ops = 1,
    /// Replicated writes from a primary: `TaggedReplicate` in, `TaggedReplicateReply` out.
    Replicate = 2,
}

impl LinkKind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(LinkKind::Ops),
            2 => Some(LinkKind::Replicate),
            _ => None,
        }
    }

    fn preamble(self) -> Vec<u8> {
        let mut bytes = PREAMBLE_MAGIC.to_vec();
        bytes.push(self as u8);
        bytes
    }
}

/// A frame message that carries one request or reply under a tag (the reply repeats its
/// request's tag). The client side of a link wraps requests and unwraps replies; a server
/// of the link does the reverse.
pub trait Tagged: prost::Message + Default + Send + 'static {
    /// The request or reply inside.
    type Inner: Send + 'static;
    /// Wraps `inner` under `tag`.
    fn tag(tag: u64, inner: Self::Inner) -> Self;
    /// The tag and what it carries (absent only from a broken peer).
    fn untag(self) -> (u64, Option<Self::Inner>);
    /// Moves the data of large sub-ops out of the message, as bulk segments.
    fn take_bulk(&mut self) -> Vec<(u32, Bytes)>;
    /// Puts received bulk segments back; `false` if one names no sub-op that carries data
    /// (or one whose data the message already holds).
    fn restore_bulk(&mut self, bulk: Vec<(u32, Bytes)>) -> bool;
}

/// A message whose data may travel as bulk segments (see the module doc): the data of
/// write sub-ops in requests, of read results in replies.
pub trait Bulk {
    /// The message's parts, in order, each with the data it carries if it carries any; a
    /// bulk segment names its part by position here.
    fn data_parts(&mut self) -> Vec<Option<&mut Bytes>> {
        Vec::new()
    }
}

/// The data a sub-op writes, if it writes any.
fn written_data(op: &mut SubOp) -> Option<&mut Bytes> {
    match op.op.as_mut()? {
        sub_op::Op::Write(write) => Some(&mut write.data),
        sub_op::Op::WriteFull(write) => Some(&mut write.data),
        sub_op::Op::Append(append) => Some(&mut append.data),
        _ => None,
    }
}

impl Bulk for ReplicateRequest {
    fn data_parts(&mut self) -> Vec<Option<&mut Bytes>> {
        self.ops.iter_mut().map(written_data).collect()
    }
}

impl Bulk for OpRequest {
    fn data_parts(&mut self) -> Vec<Option<&mut Bytes>> {
        self.ops.iter_mut().map(written_data).collect()
    }
}

impl Bulk for OpReply {
    fn data_parts(&mut self) -> Vec<Option<&mut Bytes>> {
        self.results
            .iter_mut()
            .map(|result| match result.result.as_mut()? {
                sub_op_result::Result::Data(data) => Some(data),
                _ => None,
            })
            .collect()
    }
}

impl Bulk for ReplicateReply {}

/// Bytes of `message`'s data that would travel as bulk segments.
fn bulk_bytes<M: Bulk>(message: &mut M) -> usize {
    message
        .data_parts()
        .into_iter()
        .flatten()
        .map(|data| data.len())
        .filter(|&len| len >= BULK_MIN_BYTES)
        .sum()
}

/// Whether `request` fits a link frame whose message, once the large data travels as bulk
/// segments, is at most `max_rest` bytes (and at most [`MAX_FRAME_BYTES`]).
pub fn fits_link<M: prost::Message + Bulk + Clone>(request: &M, max_rest: usize) -> bool {
    let encoded = request.encoded_len();
    if encoded <= max_rest.min(MAX_FRAME_BYTES) {
        return true;
    }
    // Counted on a copy (cheap: the data is shared) since parts are reached mutably.
    let bulk = bulk_bytes(&mut request.clone());
    bulk <= MAX_BULK_BYTES && encoded.saturating_sub(bulk) <= max_rest.min(MAX_FRAME_BYTES)
}

fn take_bulk_of<M: Bulk>(message: &mut M) -> Vec<(u32, Bytes)> {
    message
        .data_parts()
        .into_iter()
        .enumerate()
        .filter_map(|(index, data)| {
            let data = data.filter(|data| data.len() >= BULK_MIN_BYTES)?;
            Some((u32::try_from(index).ok()?, std::mem::take(data)))
        })
        .collect()
}

fn restore_bulk_of<M: Bulk>(message: &mut M, bulk: Vec<(u32, Bytes)>) -> bool {
    let mut parts = message.data_parts();
    for (index, bytes) in bulk {
        match parts.get_mut(index as usize) {
            Some(Some(data)) if data.is_empty() => **data = bytes,
            _ => return false,
        }
    }
    true
}

/// Why a call on a link got no reply.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The connection ended before the reply came (the peer died or the connection broke).
    #[error("the link to the peer closed")]
    Closed,
    /// The caller's deadline passed first.
    #[error("no reply before the deadline")]
    Deadline,
    /// The request is larger than a frame carries (nothing was sent).
    #[error("the request does not fit a link frame")]
    TooLarge,
}

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed or ended inside a frame.
    #[error("reading the link: {0}")]
    Io(#[from] io::Error),
    /// The length prefix is over [`MAX_FRAME_BYTES`].
    #[error("a frame of {0} bytes is over the limit of {MAX_FRAME_BYTES}")]
    TooLong(usize),
    /// The bytes are not the message the link carries.
    #[error("an undecodable frame: {0}")]
    Undecodable(#[from] prost::DecodeError),
    /// A bulk frame's segments are out of bounds or name no sub-op that carries data.
    #[error("a malformed bulk frame: {0}")]
    BadBulk(String),
}

/// What a new connection to an OSD's port speaks.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    /// A link of this kind; its preamble has been read.
    Link(LinkKind),
    /// Anything else, left unread for the gRPC server.
    Grpc,
    /// It began like a link but is not a valid one.
    Bad(String),
}

/// Reads enough of a new connection to tell a link from gRPC (see [`Opening`]).
pub async fn identify(stream: &mut TcpStream) -> io::Result<Opening> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 || first[0] != PREAMBLE_MAGIC[0] {
        return Ok(Opening::Grpc);
    }
    let mut preamble = [0u8; PREAMBLE_MAGIC.len() + 1];
    stream.read_exact(&mut preamble).await?;
    if preamble[..PREAMBLE_MAGIC.len()] != PREAMBLE_MAGIC {
        return Ok(Opening::Bad(format!(
            "a connection opened with {:?}, neither gRPC nor a link",
            String::from_utf8_lossy(&preamble[..PREAMBLE_MAGIC.len()])
        )));
    }
    let kind = preamble[PREAMBLE_MAGIC.len()];
    Ok(LinkKind::from_byte(kind).map_or_else(
        || Opening::Bad(format!("a link of unknown kind {kind}")),
        Opening::Link,
    ))
}

/// Reads frames from one connection.
pub struct FrameReader {
    socket: BufReader<OwnedReadHalf>,
}

impl FrameReader {
    /// Reads frames from `socket`.
    pub fn new(socket: OwnedReadHalf) -> Self {
        FrameReader {
            socket: BufReader::with_capacity(64 << 10, socket),
        }
    }

    /// The next message; `None` when the peer closed the connection between frames.
    pub async fn next<M: Tagged>(&mut self) -> Result<Option<M>, FrameError> {
        let mut prefix = [0u8; 4];
        match self.socket.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(error) => return Err(error.into()),
        }
        let word = u32::from_le_bytes(prefix);
        let len = (word & !BULK_FLAG) as usize;
        if len > MAX_FRAME_BYTES {
            return Err(FrameError::TooLong(len));
        }
        let segments = if word & BULK_FLAG != 0 {
            self.bulk_layout().await?
        } else {
            Vec::new()
        };
        let mut body = vec![0u8; len];
        self.socket.read_exact(&mut body).await?;
        // Decoded from `Bytes`: small writes' data stays in the frame's buffer.
        let mut message = M::decode(Bytes::from(body))?;
        if !segments.is_empty() {
            let mut bulk = Vec::with_capacity(segments.len());
            for (index, len) in segments {
                bulk.push((index, self.read_aligned(len).await?));
            }
            if !message.restore_bulk(bulk) {
                return Err(FrameError::BadBulk(
                    "a segment for a sub-op that carries no data".to_owned(),
                ));
            }
        }
        Ok(Some(message))
    }

    /// A bulk frame's segment table: (sub-op index, length) per segment.
    async fn bulk_layout(&mut self) -> Result<Vec<(u32, usize)>, FrameError> {
        let count = self.socket.read_u32_le().await? as usize;
        if count == 0 || count > MAX_BULK_SEGMENTS {
            return Err(FrameError::BadBulk(format!("{count} segments")));
        }
        let mut segments = Vec::with_capacity(count);
        let mut total = 0usize;
        for _ in 0..count {
            let index = self.socket.read_u32_le().await?;
            let len = self.socket.read_u32_le().await? as usize;
            total += len;
            if total > MAX_BULK_BYTES {
                return Err(FrameError::BadBulk(format!(
                    "more than {MAX_BULK_BYTES} bytes of segments"
                )));
            }
            segments.push((index, len));
        }
        Ok(segments)
    }

    /// Reads `len` bytes into a fresh buffer that starts on a [`BULK_ALIGN`] boundary.
    async fn read_aligned(&mut self, len: usize) -> io::Result<Bytes> {
        let mut storage: Vec<u8> = Vec::with_capacity(len + BULK_ALIGN);
        let start = storage.as_ptr().align_offset(BULK_ALIGN);
        storage.resize(start, 0);
        let end = start + len;
        while storage.len() < end {
            // Within the capacity, so the buffer never moves (and stays aligned).
            let missing = end - storage.len();
            let mut room = (&mut storage).limit(missing);
            if self.socket.read_buf(&mut room).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(Bytes::from(storage).slice(start..))
    }
}

/// When a sender that finds the socket idle writes the queue.
///
/// A loopback socket write costs some microseconds of system time whatever it carries (on
/// a small VM, with the receiver's share of the TCP stack run in the sender's context):
/// under 4 KiB writes with 16 in flight, each small frame written by itself made `writev`
/// the largest single cost of the machine, about six per client write. So a sender that
/// knows more frames are coming on its connection (other calls of the link unanswered,
/// other requests of the connection still being served) corks: the queue is written by a
/// task that first yields to the tasks already ready, whose frames then share its write.
/// That halved the `writev` calls per client write and gave about 5 % more writes per
/// second. A lone frame is written at once: the yield would add a scheduler round (an
/// `epoll_wait` and a wake-up) to its latency, which at one write in flight cost half
/// again of the write's latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flush {
    Now,
    Corked,
}

/// More frames are coming after this one when others are outstanding besides it.
fn flush_with(outstanding: usize) -> Flush {
    if outstanding > 1 {
        Flush::Corked
    } else {
        Flush::Now
    }
}

/// The sending side of one connection. A frame is queued, and whichever sender finds the
/// socket idle writes the queue, from its own task or, corked ([`Flush`]), from a task
/// spawned to run after the ready ones; only what the socket cannot take at once is left
/// to a spawned task. Until the connection is attached, frames just queue.
pub struct FrameWriter {
    outbox: Mutex<Outbox>,
    drained: Notify,
}

#[derive(Default)]
struct Outbox {
    /// Frames and bulk segments queued before `tail`, in order.
    segments: VecDeque<Bytes>,
    /// Small frames queued since the last bulk frame, encoded one after another.
    tail: Vec<u8>,
    /// A sender (or the spawned task) is writing the queue.
    writing: bool,
    socket: Option<Arc<OwnedWriteHalf>>,
    broken: bool,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.segments.is_empty() && self.tail.is_empty()
    }

    fn queued_bytes(&self) -> usize {
        self.segments.iter().map(Bytes::len).sum::<usize>() + self.tail.len()
    }

    /// Everything queued, in order, leaving the queue empty.
    fn take(&mut self) -> VecDeque<Bytes> {
        let mut batch = std::mem::take(&mut self.segments);
        if !self.tail.is_empty() {
            batch.push_back(Bytes::from(std::mem::take(&mut self.tail)));
        }
        batch
    }
}

/// What writing to a socket that would not block came to.
enum Written {
    /// All of the batch went.
    All,
    /// The socket is full; the rest of the batch waits.
    Blocked,
}

/// Writes as much of `batch` as `socket` takes now, dropping what went.
fn write_now(socket: &OwnedWriteHalf, batch: &mut VecDeque<Bytes>) -> io::Result<Written> {
    while !batch.is_empty() {
        let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
        let count = batch.len().min(WRITE_SLICES);
        for (slice, segment) in slices.iter_mut().zip(batch.iter()) {
            *slice = IoSlice::new(segment);
        }
        match socket.try_write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(mut written) => {
                while written > 0 {
                    let Some(front) = batch.front_mut() else {
                        break;
                    };
                    if front.len() <= written {
                        written -= front.len();
                        batch.pop_front();
                    } else {
                        front.advance(written);
                        written = 0;
                    }
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(Written::Blocked),
            Err(error) => return Err(error),
        }
    }
    Ok(Written::All)
}

impl FrameWriter {
    /// A writer whose queue starts with `opening` (a preamble, or nothing).
    fn new(opening: Vec<u8>) -> Arc<Self> {
        Arc::new(FrameWriter {
            outbox: Mutex::new(Outbox {
                tail: opening,
                ..Outbox::default()
            }),
            drained: Notify::new(),
        })
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        self.outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A writer of frames to `socket`.
    pub fn attached(socket: OwnedWriteHalf) -> Arc<Self> {
        let writer = FrameWriter::new(Vec::new());
        writer.attach(socket);
        writer
    }

    /// Starts writing to `socket`, beginning with what queued before.
    fn attach(self: &Arc<Self>, socket: OwnedWriteHalf) {
        let mut outbox = self.outbox();
        outbox.socket = Some(Arc::new(socket));
        self.write_queue(outbox, Flush::Now);
    }

    /// Queues `message` and writes it at once; `false` once the connection has failed.
    pub fn send<M: prost::Message>(self: &Arc<Self>, message: &M) -> bool {
        self.send_with_bulk(message, Vec::new(), Flush::Now)
    }

    /// Queues `message` with `bulk` segments after it (a bulk frame unless `bulk` is
    /// empty), to be written as `flush` says; `false` once the connection has failed. The
    /// caller checked the sizes.
    fn send_with_bulk<M: prost::Message>(
        self: &Arc<Self>,
        message: &M,
        bulk: Vec<(u32, Bytes)>,
        flush: Flush,
    ) -> bool {
        let mut outbox = self.outbox();
        if outbox.broken {
            return false;
        }
        let len = message.encoded_len() as u32;
        let tail = &mut outbox.tail;
        if bulk.is_empty() {
            tail.reserve(4 + len as usize);
            tail.put_u32_le(len);
        } else {
            tail.reserve(8 + 8 * bulk.len() + len as usize);
            tail.put_u32_le(len | BULK_FLAG);
            tail.put_u32_le(bulk.len() as u32);
            for (index, bytes) in &bulk {
                tail.put_u32_le(*index);
                tail.put_u32_le(bytes.len() as u32);
            }
        }
        message.encode(tail).expect("a Vec grows to fit");
        if !bulk.is_empty() {
            let frame = Bytes::from(std::mem::take(&mut outbox.tail));
            outbox.segments.push_back(frame);
            let data = bulk.into_iter().map(|(_, bytes)| bytes);
            outbox
                .segments
                .extend(data.filter(|bytes| !bytes.is_empty()));
        }
        self.write_queue(outbox, flush);
        true
    }

    /// Bytes queued and not yet written.
    fn backlog(&self) -> usize {
        self.outbox().queued_bytes()
    }

    /// Waits until at most `bytes` are queued (or the connection failed).
    async fn backlog_below(&self, bytes: usize) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                let outbox = self.outbox();
                if outbox.broken || outbox.queued_bytes() <= bytes {
                    return;
                }
            }
            drained.await;
        }
    }

    /// Marks the connection failed: what is queued is dropped, later sends refused.
    fn fail(&self) {
        let mut outbox = self.outbox();
        outbox.broken = true;
        outbox.segments = VecDeque::new();
        outbox.tail = Vec::new();
        outbox.socket = None;
        drop(outbox);
        self.drained.notify_waiters();
    }

    /// Writes the queue if nobody else is, without waiting on the socket: now, or, when
    /// `flush` is [`Flush::Corked`], from a task that first lets the tasks already ready
    /// run (outside a tokio runtime there are none: then now).
    fn write_queue<'a>(self: &'a Arc<Self>, mut outbox: MutexGuard<'a, Outbox>, flush: Flush) {
        if outbox.writing || outbox.broken || outbox.is_empty() {
            return;
        }
        let Some(socket) = outbox.socket.clone() else {
            return;
        };
        outbox.writing = true;
        if flush == Flush::Corked {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                drop(outbox);
                let writer = Arc::clone(self);
                runtime.spawn(async move {
                    tokio::task::yield_now().await;
                    let batch = writer.outbox().take();
                    writer.finish(socket, batch).await;
                });
                return;
            }
        }
        loop {
            let mut batch = outbox.take();
            drop(outbox);
            match write_now(&socket, &mut batch) {
                Ok(Written::All) => {}
                Ok(Written::Blocked) => {
                    let writer = Arc::clone(self);
                    tokio::spawn(async move { writer.finish(socket, batch).await });
                    return;
                }
                Err(_) => return self.fail(),
            }
            outbox = self.outbox();
            if outbox.is_empty() || outbox.broken {
                outbox.writing = false;
                drop(outbox);
                self.drained.notify_waiters();
                return;
            }
        }
    }

    /// Finishes writing `batch`, waiting for the socket, then the rest of the queue.
    async fn finish(self: Arc<Self>, socket: Arc<OwnedWriteHalf>, mut batch: VecDeque<Bytes>) {
        loop {
            while !batch.is_empty() {
                if socket.writable().await.is_err() {
                    return self.fail();
                }
                if write_now(&socket, &mut batch).is_err() {
                    return self.fail();
                }
            }
            let mut outbox = self.outbox();
            if outbox.is_empty() || outbox.broken {
                outbox.writing = false;
                drop(outbox);
                self.drained.notify_waiters();
                return;
            }
            batch = outbox.take();
        }
    }
}

type Waiters<R> = Mutex<HashMap<u64, oneshot::Sender<R>>>;

/// A link of tagged requests `Q` to one peer at one address, answered by tagged replies `A`.
pub struct Link<Q: Tagged, A: Tagged> {
    addr: String,
    writer: Arc<FrameWriter>,
    waiting: Waiters<A::Inner>,
    next_tag: AtomicU64,
    closed: AtomicBool,
    _requests: std::marker::PhantomData<fn(Q)>,
}

impl<Q: Tagged, A: Tagged> std::fmt::Debug for Link<Q, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("addr", &self.addr)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl<Q: Tagged, A: Tagged> Link<Q, A> {
    /// Opens a link of `kind` to the peer at `addr` (named `peer` in logs). The connection
    /// is made in the background (giving up after `connect_timeout`), so a dead peer shows
    /// as a closed link, not as an error here; calls made before it is up wait in the queue.
    pub fn open(
        addr: String,
        peer: String,
        kind: LinkKind,
        connect_timeout: Duration,
    ) -> Arc<Self> {
        let link = Arc::new(Link {
            addr: addr.clone(),
            writer: FrameWriter::new(kind.preamble()),
            waiting: Mutex::new(HashMap::new()),
            next_tag: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            _requests: std::marker::PhantomData,
        });
        let reader = Arc::clone(&link);
        tokio::spawn(async move {
            let connected = tokio::time::timeout(connect_timeout, TcpStream::connect(&addr)).await;
            match connected {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let (read, write) = stream.into_split();
                    reader.writer.attach(write);
                    reader.read_replies(FrameReader::new(read), &peer).await;
                }
                Ok(Err(error)) => tracing::debug!(peer, %error, "cannot connect a link"),
                Err(_) => tracing::debug!(peer, "connecting a link timed out"),
            }
            reader.close();
        });
        link
    }

    async fn read_replies(&self, mut replies: FrameReader, peer: &str) {
        loop {
            match replies.next::<A>().await {
                Ok(Some(answer)) => {
                    let (tag, reply) = answer.untag();
                    self.deliver(tag, reply);
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::debug!(peer, %error, "link broke");
                    return;
                }
            }
        }
    }

    /// The address this link was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the connection has ended (a new link is needed).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn waiting(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<A::Inner>>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn deliver(&self, tag: u64, reply: Option<A::Inner>) {
        let waiter = self.waiting().remove(&tag);
        if let (Some(waiter), Some(reply)) = (waiter, reply) {
            let _ = waiter.send(reply);
        }
    }

    /// Marks the link closed and fails every waiting call (dropping its reply sender).
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.writer.fail();
        self.waiting().clear();
    }

    /// Sends one request and waits for its reply. Dropping the future (a caller's timeout)
    /// forgets the request; a reply that still comes is discarded.
    pub async fn call(&self, request: Q::Inner) -> Result<A::Inner, LinkError> {
        let (tag, reply) = self.start(request)?;
        let _forget = Forget { link: self, tag };
        reply.await.map_err(|_| LinkError::Closed)
    }

    /// [`Link::call`] that gives up at `deadline`.
    pub async fn call_until(
        &self,
        request: Q::Inner,
        deadline: std::time::Instant,
    ) -> Result<A::Inner, LinkError> {
        tokio::time::timeout_at(deadline.into(), self.call(request))
            .await
            .unwrap_or(Err(LinkError::Deadline))
    }

    /// Sends one request now, from synchronous code; its reply is awaited later through
    /// the returned [`Sent`] (dropping which forgets the request).
    pub fn send(self: &Arc<Self>, request: Q::Inner) -> Result<Sent<Q, A>, LinkError> {
        let (tag, reply) = self.start(request)?;
        Ok(Sent {
            link: Arc::clone(self),
            tag,
            reply,
        })
    }

    /// Registers a waiter for a new tag and queues the request under it.
    fn start(&self, request: Q::Inner) -> Result<(u64, oneshot::Receiver<A::Inner>), LinkError> {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let (reply_to, reply) = oneshot::channel();
        let flush = {
            let mut waiting = self.waiting();
            waiting.insert(tag, reply_to);
            flush_with(waiting.len())
        };
        // Checked after registering: a close that ran before the insert is seen here, one
        // that runs after it drops our sender.
        let mut frame = Q::tag(tag, request);
        let bulk = frame.take_bulk();
        let bulk_bytes: usize = bulk.iter().map(|(_, bytes)| bytes.len()).sum();
        if frame.encoded_len() > MAX_FRAME_BYTES
            || bulk_bytes > MAX_BULK_BYTES
            || bulk.len() > MAX_BULK_SEGMENTS
        {
            self.waiting().remove(&tag);
            return Err(LinkError::TooLarge);
        }
        if self.is_closed() || !self.writer.send_with_bulk(&frame, bulk, flush) {
            self.waiting().remove(&tag);
            return Err(LinkError::Closed);
        }
        Ok((tag, reply))
    }
}

/// A request [`Link::send`] sent, whose reply has not been taken yet.
pub struct Sent<Q: Tagged, A: Tagged> {
    link: Arc<Link<Q, A>>,
    tag: u64,
    reply: oneshot::Receiver<A::Inner>,
}

impl<Q: Tagged, A: Tagged> Sent<Q, A> {
    /// Waits for the reply until `deadline`.
    pub async fn reply_until(
        mut self,
        deadline: std::time::Instant,
    ) -> Result<A::Inner, LinkError> {
        match tokio::time::timeout_at(deadline.into(), &mut self.reply).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(LinkError::Closed),
            Err(_) => Err(LinkError::Deadline),
        }
    }
}

impl<Q: Tagged, A: Tagged> Drop for Sent<Q, A> {
    fn drop(&mut self) {
        self.link.waiting().remove(&self.tag);
    }
}

/// Removes a call's waiter when the call ends, however it ends.
struct Forget<'l, Q: Tagged, A: Tagged> {
    link: &'l Link<Q, A>,
    tag: u64,
}

impl<Q: Tagged, A: Tagged> Drop for Forget<'_, Q, A> {
    fn drop(&mut self) {
        self.link.waiting().remove(&self.tag);
    }
}

/// Serves one link connection whose preamble [`identify`] has read: each request runs on
/// its own task (one waiting for its predecessor on the same object must not hold up the
/// predecessor queued behind it), and its reply is sent under its tag as soon as it is
/// ready. A message without a request is answered with `missing()`. A malformed frame ends
/// the connection (logged with `peer`); the requests already running still finish.
pub async fn serve<Q, A, F, Fut>(
    stream: TcpStream,
    peer: String,
    answer: F,
    missing: impl Fn() -> A::Inner,
) where
    Q: Tagged,
    A: Tagged,
    F: Fn(Q::Inner) -> Fut,
    Fut: Future<Output = A::Inner> + Send + 'static,
{
    let (read, write) = stream.into_split();
    let writer = FrameWriter::attached(write);
    let mut requests = FrameReader::new(read);
    // Requests of this connection whose replies are not queued yet (see `Flush`).
    let serving = Arc::new(AtomicUsize::new(0));
    loop {
        if writer.backlog() > SERVER_BACKLOG_BYTES {
            writer.backlog_below(SERVER_BACKLOG_BYTES / 2).await;
        }
        match requests.next::<Q>().await {
            Ok(Some(message)) => {
                let (tag, request) = message.untag();
                let writer = Arc::clone(&writer);
                match request {
                    Some(request) => {
                        let reply = answer(request);
                        let serving = Arc::clone(&serving);
                        serving.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            let mut frame = A::tag(tag, reply.await);
                            let bulk = frame.take_bulk();
                            let flush = flush_with(serving.fetch_sub(1, Ordering::Relaxed));
                            writer.send_with_bulk(&frame, bulk, flush);
                        });
                    }
                    None => {
                        writer.send(&A::tag(tag, missing()));
                    }
                }
            }
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(peer, %error, "closing a link that sent a malformed frame");
                return;
            }
        }
    }
}

/// How long a new connection may take to show what it speaks.
const IDENTIFY_WAIT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` (Nagle's algorithm off: small replies would otherwise
/// wait for the peer's delayed ACK) and tells them apart: each link goes to `on_link`
/// with its kind and the peer's address (it should spawn its server), everything else
/// comes out of the returned stream, for a gRPC server's `serve_with_incoming`. A
/// connection that opens like a link but is not one is logged and closed.
pub fn accept<F>(listener: TcpListener, on_link: F) -> ReceiverStream<io::Result<TcpStream>>
where
    F: Fn(TcpStream, LinkKind, SocketAddr) + Send + Sync + 'static,
{
    let (grpc, incoming) = mpsc::channel(64);
    let on_link = Arc::new(on_link);
    tokio::spawn(async move {
        loop {
            let (mut stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: the next accept may succeed.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (to_grpc, on_link) = (grpc.clone(), Arc::clone(&on_link));
            tokio::spawn(async move {
                match tokio::time::timeout(IDENTIFY_WAIT, identify(&mut stream)).await {
                    Ok(Ok(Opening::Grpc)) => {
                        let _ = to_grpc.send(Ok(stream)).await;
                    }
                    Ok(Ok(Opening::Link(kind))) => on_link(stream, kind, peer),
                    Ok(Ok(Opening::Bad(reason))) => {
                        tracing::warn!(%peer, reason, "closing a connection");
                    }
                    Ok(Err(error)) => tracing::debug!(%peer, %error, "a connection failed at once"),
                    Err(_) => tracing::debug!(%peer, "closing a connection that sent nothing"),
                }
            });
            if grpc.is_closed() {
                return;
            }
        }
    });
    ReceiverStream::new(incoming)
}

/// Makes generated frame messages [`Tagged`]: each has a `tag` and one optional field.
macro_rules! tagged {
    ($($message:ident($field:ident: $inner:ident)),* $(,)?) => {$(
        impl Tagged for $message {
            type Inner = $inner;
            fn tag(tag: u64, inner: $inner) -> Self {
                $message {
                    tag,
                    $field: Some(inner),
                }
            }
            fn untag(self) -> (u64, Option<$inner>) {
                (self.tag, self.$field)
            }
            fn take_bulk(&mut self) -> Vec<(u32, Bytes)> {
                self.$field.as_mut().map_or_else(Vec::new, take_bulk_of)
            }
            fn restore_bulk(&mut self, bulk: Vec<(u32, Bytes)>) -> bool {
                match self.$field.as_mut() {
                    Some(inner) => restore_bulk_of(inner, bulk),
                    None => bulk.is_empty(),
                }
            }
        }
    )*};
}

tagged!(
    TaggedReplicate(request: ReplicateRequest),
    TaggedReplicateReply(reply: ReplicateReply),
    TaggedOp(request: OpRequest),
    TaggedOpReply(reply: OpReply),
);

/// Replicated writes from a primary to one replica.
pub type ReplicaLink = Link<TaggedReplicate, TaggedReplicateReply>;

/// A replicated write sent on a [`ReplicaLink`], its reply still to come.
pub type SentReplicate = Sent<TaggedReplicate, TaggedReplicateReply>;
/// Small client ops to one primary.
pub type OpLink = Link<TaggedOp, TaggedOpReply>;
