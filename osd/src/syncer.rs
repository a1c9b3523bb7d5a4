//! [`Syncer`]: one thread that makes the object store durable for async callers.
//!
//! A write is applied on the caller's side (visible, ordered, in the OS buffers) and then
//! awaits [`Syncer::sync`]. The thread takes every waiter queued so far, runs one fdatasync
//! for all of them, and wakes them; waiters that queue while it runs share the next one.
//! Compared with a blocking-pool task per write that queues on the engine's sync mutex, this
//! costs one thread hand-off per round instead of two per write, which on a small machine
//! is most of the difference between context switching and doing work.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::store::ObjectStore;

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct Queue {
    waiters: Vec<Waiter>,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The sync thread of one store. Dropping it stops the thread after its current round.
pub struct Syncer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").finish_non_exhaustive()
    }
}

impl Syncer {
    /// Starts the sync thread for `store`.
    pub fn start(store: Arc<ObjectStore>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("osd-sync".into())
            .spawn(move || run(&thread_shared, &store))?;
        Ok(Self { shared })
    }

    /// Returns once every write applied before this call is durable; the error says why the
    /// store could not sync (after which the engine refuses all writes).
    pub async fn sync(&self) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        {
            let mut queue = lock(&self.shared.queue);
            if queue.stopping {
                return Err("the OSD is stopping".into());
            }
            queue.waiters.push(done);
        }
        self.shared.wake.notify_one();
        wait.await
            .unwrap_or_else(|_| Err("the sync thread stopped".into()))
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

fn run(shared: &Shared, store: &ObjectStore) {
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
            std::mem::take(&mut queue.waiters)
        };
        // Each waiter applied its write before queueing, so this sync covers all of them.
        let outcome = store.sync().map_err(|error| error.to_string());
        if let Err(error) = &outcome {
            tracing::error!(%error, "store sync failed; writes can no longer be acknowledged");
        }
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
        let syncer = Arc::new(Syncer::start(Arc::clone(&store)).unwrap());
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
        let syncer = Syncer::start(memory_store()).unwrap();
        lock(&syncer.shared.queue).stopping = true;
        assert!(syncer.sync().await.is_err());
    }
}
