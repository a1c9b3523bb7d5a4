//! [`ReplicaLink`]: one long-lived `ReplicateStream` from this OSD to a peer, carrying many
//! small replicated writes as tagged messages. A unary `Replicate` is a whole HTTP/2
//! request each time (headers both ways, trailers, a stream opened and closed, a task on
//! the server); on the stream a write is one message each way, and writes queued together
//! leave in one socket write.
//!
//! A link dies with its stream (the peer died or restarted, the connection broke): every
//! write waiting on it fails with [`LinkError::Closed`] at once, and the next write opens a
//! new link. The caller's retry and deadline logic stays what it was for unary calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use proto::osd::{ReplicateReply, ReplicateRequest, TaggedReplicate};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// How many writes may wait to be sent on one link before senders wait.
const SEND_QUEUE: usize = 1024;

/// Why a write sent over a link got no reply.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The stream ended before the reply came (the peer died or the connection broke).
    #[error("the replication stream to the peer closed")]
    Closed,
    /// The deadline passed first.
    #[error("no reply before the deadline")]
    Deadline,
}

/// A stream of replicated writes to one peer, at one address.
pub struct ReplicaLink {
    addr: String,
    outbound: mpsc::Sender<TaggedReplicate>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<ReplicateReply>>>,
    next_tag: AtomicU64,
    closed: AtomicBool,
}

impl ReplicaLink {
    /// Opens a link to the peer behind `channel` (at `addr`); the stream is opened in the
    /// background, so a dead peer shows as a closed link, not as an error here.
    pub fn open(addr: String, channel: Channel, peer: i32) -> Arc<ReplicaLink> {
        let (outbound, queue) = mpsc::channel(SEND_QUEUE);
        let link = Arc::new(ReplicaLink {
            addr,
            outbound,
            waiting: Mutex::new(HashMap::new()),
            next_tag: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let reader = Arc::clone(&link);
        tokio::spawn(async move {
            let mut client = crate::peers::osd_client(channel);
            match client.replicate_stream(ReceiverStream::new(queue)).await {
                Ok(response) => {
                    let mut replies = response.into_inner();
                    loop {
                        match replies.message().await {
                            Ok(Some(tagged)) => reader.deliver(tagged.tag, tagged.reply),
                            Ok(None) => break,
                            Err(status) => {
                                tracing::debug!(peer, %status, "replication stream broke");
                                break;
                            }
                        }
                    }
                }
                Err(status) => {
                    tracing::debug!(peer, %status, "cannot open a replication stream");
                }
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

    fn waiting(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<ReplicateReply>>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn deliver(&self, tag: u64, reply: Option<ReplicateReply>) {
        let waiter = self.waiting().remove(&tag);
        if let (Some(waiter), Some(reply)) = (waiter, reply) {
            let _ = waiter.send(reply);
        }
    }

    /// Marks the link closed and fails every waiting write (dropping its reply sender).
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waiting().clear();
    }

    /// Sends one write and waits for its reply until `deadline`.
    pub async fn replicate(
        &self,
        request: ReplicateRequest,
        deadline: Instant,
    ) -> Result<ReplicateReply, LinkError> {
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let (reply_to, reply) = oneshot::channel();
        self.waiting().insert(tag, reply_to);
        // Checked after registering: a close that ran before the insert is seen here, one
        // that runs after it drops our sender.
        if self.is_closed() {
            self.waiting().remove(&tag);
            return Err(LinkError::Closed);
        }
        let message = TaggedReplicate {
            tag,
            request: Some(request),
        };
        let sent = tokio::time::timeout_at(deadline.into(), self.outbound.send(message)).await;
        match sent {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                self.waiting().remove(&tag);
                return Err(LinkError::Closed);
            }
            Err(_) => {
                self.waiting().remove(&tag);
                return Err(LinkError::Deadline);
            }
        }
        match tokio::time::timeout_at(deadline.into(), reply).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(LinkError::Closed),
            Err(_) => {
                self.waiting().remove(&tag);
                Err(LinkError::Deadline)
            }
        }
    }
}
