//! [`Syncer`]: one thread that makes the object store durable for async callers.
//!
//! A write is applied on the caller's side (visible, ordered, in the OS buffers) and then
//! awaits [`Syncer::sync`]. The thread takes every waiter queued so far, runs one fdatasync
//! for all of them, and wakes them; waiters that queue while it runs share the next one.
//! Compared with a blocking-pool task per write that queues on the engine's sync mutex, this
//! costs one thread hand-off per round instead of two per write, which on a small machine
//! is most of the difference between context switching and doing work.
//!
//! Under concurrent load a round that syncs at once covers only the two or three writes
//! that queued during the previous fdatasync, and every OSD sharing the disk forces its own
//! file-system journal commit. So after a round that served several writers, the thread
//! waits `batch_wait` before the next fdatasync and lets more writes join it (like MySQL's
//! binlog_group_commit_sync_delay). A lone writer never waits: a round of one does not
//! trigger it. Measured with 3 OSDs on one disk, 4 KiB writes with 16 in flight: 300 us
//! took fdatasyncs from 1.2-1.3 to 0.6-0.7 per write, IOPS up 3-14 % (most when the disk's
//! fdatasync is slow); 1 and 4 in flight were unchanged within noise.
//!
//! A writer that finds no round running and nobody queued syncs on its own thread instead
//! (blocking its tokio worker for one log write): a lone write then costs no thread
//! hand-off at all, where the sync thread costs two wake-ups (there and back) on the
//! critical path of every replica. Writers that arrive meanwhile queue for the thread as
//! usual (the engine serializes the two syncs), so at most one worker blocks; and once a
//! thread round serves several writers, every writer queues until a round serves only one,
//! so that concurrent writes keep sharing rounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::store::ObjectStore;

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct Queue {
    waiters: Vec<Waiter>,
    /// A writer is syncing on its own thread (see the module doc).
    inline_round: bool,
    /// The sync thread is running a round.
    thread_round: bool,
    /// The thread's last round served several writers: writes are arriving concurrently,
    /// so they queue and share rounds rather than sync one by one inline.
    concurrent: bool,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Rounds run (each one store sync), for tests and statistics.
    rounds: AtomicU64,
}

/// The sync thread of one store. Dropping it stops the thread after its current round.
pub struct Syncer {
    shared: Arc<Shared>,
    store: Arc<ObjectStore>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").finish_non_exhaustive()
    }
}

impl Syncer {
    /// Starts the sync thread for `store`; after a round shared by several writers the
    /// next one waits `batch_wait` for more (zero: never waits).
    pub fn start(store: Arc<ObjectStore>, batch_wait: Duration) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            rounds: AtomicU64::new(0),
        });
        let thread_shared = Arc::clone(&shared);
        let thread_store = Arc::clone(&store);
        std::thread::Builder::new()
            .name("osd-sync".into())
            .spawn(move || run(&thread_shared, &thread_store, batch_wait))?;
        Ok(Self { shared, store })
    }

    /// Rounds (store syncs on behalf of writers) run so far.
    pub fn rounds(&self) -> u64 {
        self.shared.rounds.load(Ordering::Relaxed)
    }

    /// Returns once every write applied before this call is durable; the error says why the
    /// store could not sync (after which the engine refuses all writes).
    pub async fn sync(&self) -> Result<(), String> {
        let wait = {
            let mut queue = lock(&self.shared.queue);
            if queue.stopping {
                return Err("the OSD is stopping".into());
            }
            let alone = queue.waiters.is_empty() && !queue.inline_round && !queue.thread_round;
            if alone && !queue.concurrent {
                queue.inline_round = true;
                drop(queue);
                return self.sync_inline();
            }
            let (done, wait) = oneshot::channel();
            queue.waiters.push(done);
            wait
        };
        self.shared.wake.notify_one();
        wait.await
            .unwrap_or_else(|_| Err("the sync thread stopped".into()))
    }

    /// One round run by the calling writer itself, which claimed `inline_round`.
    fn sync_inline(&self) -> Result<(), String> {
        self.shared.rounds.fetch_add(1, Ordering::Relaxed);
        let outcome = sync_store(&self.store);
        lock(&self.shared.queue).inline_round = false;
        outcome
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        lock(&self.shared.queue).stopping = true;
        self.shared.wake.notify_one();
    }
}

fn lock(queue: &Mutex<Queue>) -> std::sync::MutexGuard<'_, Queue> {
    // The queue is a list of senders: valid whatever a panicking holder was doing.
    queue.lock().unwrap_or_else(PoisonError::into_inner)
}

fn sync_store(store: &ObjectStore) -> Result<(), String> {
    let outcome = store.sync().map_err(|error| error.to_string());
    if let Err(error) = &outcome {
        tracing::error!(%error, "store sync failed; writes can no longer be acknowledged");
    }
    outcome
}

fn run(shared: &Shared, store: &ObjectStore, batch_wait: Duration) {
    loop {
        let round = {
            let mut queue = lock(&shared.queue);
            while queue.waiters.is_empty() && !queue.stopping {
                queue = shared
                    .wake
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if queue.waiters.is_empty() {
                return;
            }
            if queue.concurrent && !batch_wait.is_zero() && !queue.stopping {
                // Writers are arriving concurrently: let the ones in flight join this round.
                drop(queue);
                std::thread::sleep(batch_wait);
                queue = lock(&shared.queue);
            }
            queue.thread_round = true;
            queue.concurrent = queue.waiters.len() > 1;
            std::mem::take(&mut queue.waiters)
        };
        shared.rounds.fetch_add(1, Ordering::Relaxed);
        // Each waiter applied its write before queueing, so this sync covers all of them.
        let outcome = sync_store(store);
        lock(&shared.queue).thread_round = false;
        for waiter in round {
            let _ = waiter.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ObjectId, StoreConfig, Transaction, WriteOp};
    use clustermap::{PgId, Uuid};

    fn memory_store() -> Arc<ObjectStore> {
        let options = kv::Options::default();
        let engine = kv::open(kv::Backend::Memory, std::path::Path::new(""), &options).unwrap();
        let uuid = Uuid::from_bytes([7; 16]);
        Arc::new(ObjectStore::mkfs(engine, uuid, StoreConfig::default()).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_round_covers_every_write_applied_before_it() {
        let store = memory_store();
        let syncer = Arc::new(Syncer::start(Arc::clone(&store), Duration::ZERO).unwrap());
        let pg = PgId::new(1, 0);
        store.create_pg(pg).unwrap();
        let synced_before = store.engine().syncs_performed();
        for name in ["a", "b", "c"] {
            let mut txn = Transaction::new(pg, ObjectId::new(name), 1);
            txn.push(WriteOp::Create { exclusive: true });
            store.apply(txn).unwrap();
        }
        // Many callers, one pending round: the writes need exactly one more engine sync.
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let syncer = Arc::clone(&syncer);
            tasks.spawn(async move { syncer.sync().await });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        assert_eq!(store.engine().syncs_performed(), synced_before + 1);
    }

    #[tokio::test]
    async fn a_stopped_syncer_refuses() {
        let syncer = Syncer::start(memory_store(), Duration::ZERO).unwrap();
        lock(&syncer.shared.queue).stopping = true;
        assert!(syncer.sync().await.is_err());
    }

    /// Queues `count` waiters in one go, so that the thread takes them as one round.
    async fn one_round_of(syncer: &Syncer, count: usize) {
        let mut waits = Vec::new();
        {
            let mut queue = lock(&syncer.shared.queue);
            for _ in 0..count {
                let (done, wait) = oneshot::channel();
                queue.waiters.push(done);
                waits.push(wait);
            }
        }
        syncer.shared.wake.notify_one();
        for wait in waits {
            wait.await.unwrap().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_shared_round_a_writer_arriving_within_the_wait_joins_the_next_round() {
        let syncer = Arc::new(Syncer::start(memory_store(), Duration::from_millis(800)).unwrap());
        one_round_of(&syncer, 2).await;
        let rounds = syncer.rounds();
        let first = {
            let syncer = Arc::clone(&syncer);
            tokio::spawn(async move { syncer.sync().await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        syncer.sync().await.unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(syncer.rounds(), rounds + 1, "both writers shared one round");
    }

    #[tokio::test]
    async fn a_lone_writer_syncs_inline_until_writers_arrive_concurrently() {
        use futures_util::FutureExt;
        // The thread waits before a round after a shared one, so a queued writer cannot be
        // done at its first poll.
        let syncer = Syncer::start(memory_store(), Duration::from_millis(200)).unwrap();
        // Inline: done at the first poll, with no thread involved.
        assert!(matches!(syncer.sync().now_or_never(), Some(Ok(()))));
        assert_eq!(syncer.rounds(), 1);
        one_round_of(&syncer, 2).await;
        assert!(
            syncer.sync().now_or_never().is_none(),
            "after a shared round a writer queues for the thread"
        );
        // That queued writer made a round of one, after which writers sync inline again.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while syncer.rounds() < 3 || lock(&syncer.shared.queue).thread_round {
            assert!(
                std::time::Instant::now() < deadline,
                "the round did not run"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(matches!(syncer.sync().now_or_never(), Some(Ok(()))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_writer_does_not_wait() {
        let wait = Duration::from_secs(30);
        let syncer = Syncer::start(memory_store(), wait).unwrap();
        let started = std::time::Instant::now();
        for _ in 0..3 {
            syncer.sync().await.unwrap();
        }
        assert!(started.elapsed() < wait, "took {:?}", started.elapsed());
        assert_eq!(syncer.rounds(), 3);
    }
}
