//! [`Link`]: one long-lived bidirectional gRPC stream that carries many small requests as
//! tagged messages, with the replies matched back by tag. A unary call is a whole HTTP/2
//! request each time (headers both ways, trailers, a stream opened and closed, a task on the
//! server); on a link a request is one message each way, and requests queued together leave
//! in one socket write. The OSDs replicate small writes over one (`ReplicateStream`) and
//! clients send small writes to a primary over one (`OpStream`).
//!
//! A link dies with its stream (the peer died or restarted, the connection broke): every
//! call waiting on it fails with [`LinkError::Closed`] at once, and the owner opens a new
//! link for the next call. Retries and deadlines stay the caller's business.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use crate::osd::{
    OpReply, OpRequest, ReplicateReply, ReplicateRequest, TaggedOp, TaggedOpReply, TaggedReplicate,
    TaggedReplicateReply,
};

/// How many requests may wait to be sent on one link before senders wait.
const SEND_QUEUE: usize = 1024;

/// A stream message that carries one request or reply under a tag (the reply repeats its
/// request's tag). The client side of a link wraps requests and unwraps replies; a server
/// of the stream does the reverse.
pub trait Tagged: Send + 'static {
    /// The request or reply inside.
    type Inner: Send + 'static;
    /// Wraps `inner` under `tag`.
    fn tag(tag: u64, inner: Self::Inner) -> Self;
    /// The tag and what it carries (absent only from a broken peer).
    fn untag(self) -> (u64, Option<Self::Inner>);
}

/// Why a call on a link got no reply.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The stream ended before the reply came (the peer died or the connection broke).
    #[error("the stream to the peer closed")]
    Closed,
    /// The caller's deadline passed first.
    #[error("no reply before the deadline")]
    Deadline,
}

type Waiters<R> = Mutex<HashMap<u64, oneshot::Sender<R>>>;

/// A stream of tagged requests `Q` to one peer at one address, answered by tagged replies `A`.
pub struct Link<Q: Tagged, A: Tagged> {
    addr: String,
    outbound: mpsc::Sender<Q>,
    waiting: Waiters<A::Inner>,
    next_tag: AtomicU64,
    closed: AtomicBool,
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
    /// Opens a link to the peer at `addr` (named `peer` in logs): `start` makes the
    /// streaming call with the outbound messages. The stream is opened in the background,
    /// so a dead peer shows as a closed link, not as an error here.
    pub fn open<F, Fut>(addr: String, peer: String, start: F) -> Arc<Self>
    where
        F: FnOnce(ReceiverStream<Q>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<tonic::Response<tonic::Streaming<A>>, tonic::Status>>
            + Send
            + 'static,
    {
        let (outbound, queue) = mpsc::channel(SEND_QUEUE);
        let link = Arc::new(Link {
            addr,
            outbound,
            waiting: Mutex::new(HashMap::new()),
            next_tag: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let reader = Arc::clone(&link);
        tokio::spawn(async move {
            match start(ReceiverStream::new(queue)).await {
                Ok(response) => {
                    let mut replies = response.into_inner();
                    loop {
                        match replies.message().await {
                            Ok(Some(answer)) => {
                                let (tag, reply) = answer.untag();
                                reader.deliver(tag, reply);
                            }
                            Ok(None) => break,
                            Err(status) => {
                                tracing::debug!(peer, %status, "stream broke");
                                break;
                            }
                        }
                    }
                }
                Err(status) => tracing::debug!(peer, %status, "cannot open a stream"),
            }
            reader.close();
        });
        link
    }

    /// The address this link was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether the stream has ended (a new link is needed).
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
        self.waiting().clear();
    }

    /// Sends one request and waits for its reply. Dropping the future (a caller's timeout)
    /// forgets the request; a reply that still comes is discarded.
    pub async fn call(&self, request: Q::Inner) -> Result<A::Inner, LinkError> {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let (reply_to, reply) = oneshot::channel();
        self.waiting().insert(tag, reply_to);
        let _forget = Forget { link: self, tag };
        // Checked after registering: a close that ran before the insert is seen here, one
        // that runs after it drops our sender.
        if self.is_closed() {
            return Err(LinkError::Closed);
        }
        self.outbound
            .send(Q::tag(tag, request))
            .await
            .map_err(|_| LinkError::Closed)?;
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

/// Makes generated stream messages [`Tagged`]: each has a `tag` and one optional field.
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

/// Small client ops to one OSD.
pub type OpLink = Link<TaggedOp, TaggedOpReply>;
