//! Checkpoints of the write-ahead log (see `fjall_wal`): what must be durable before the
//! log's tail moves ([`CheckpointSync`]), and the thread that runs early checkpoints (that
//! sync, then the tail moves to the mark, while syncs go on writing frames).

use std::io;
use std::path::Path;
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;

use crate::engine::LogReleaseHook;
use crate::fjall_journal::JournalSync;
use crate::fjall_wal::{Mark, Wal};

/// What makes the batches of frames durable elsewhere, so that the log may drop them:
/// fjall's journal, which holds every ordinary put, and the hook of the caller that keeps
/// the data of log-only puts (which fjall never saw).
#[derive(Debug)]
pub(crate) struct CheckpointSync {
    journal: Arc<JournalSync>,
    release_hook: OnceLock<ReleaseHook>,
}

struct ReleaseHook(LogReleaseHook);

impl std::fmt::Debug for ReleaseHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReleaseHook")
    }
}

impl CheckpointSync {
    pub fn new(journal: Arc<JournalSync>) -> Self {
        Self {
            journal,
            release_hook: OnceLock::new(),
        }
    }

    /// Sets the hook; `false` if one was set before.
    pub fn set_release_hook(&self, hook: LogReleaseHook) -> bool {
        self.release_hook.set(ReleaseHook(hook)).is_ok()
    }

    /// Whether log-only puts are kept out of fjall (a hook makes their data durable).
    pub fn keeps_log_only(&self) -> bool {
        self.release_hook.get().is_some()
    }

    /// Makes every batch committed (and every log-only put logged) before the call
    /// durable outside the log.
    pub fn sync(&self) -> io::Result<()> {
        self.journal.sync()?;
        match self.release_hook.get() {
            Some(ReleaseHook(hook)) => hook(),
            None => Ok(()),
        }
    }
}

/// Runs early checkpoints one at a time. Dropping it waits for the one under way, so no
/// header is written once the store is closed (a reopened store owns the log then).
pub(crate) struct Checkpointer {
    wal: Arc<Wal>,
    requests: Option<mpsc::Sender<Mark>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(wal: Arc<Wal>, durable: Arc<CheckpointSync>, folder: &Path) -> io::Result<Self> {
        let (requests, marks) = mpsc::channel::<Mark>();
        let folder = folder.to_owned();
        let log = Arc::clone(&wal);
        let thread = std::thread::Builder::new()
            .name("kv-checkpoint".to_owned())
            .spawn(move || {
                for mark in marks {
                    let synced = durable.sync();
                    if let Err(error) = log.finish_checkpoint(mark, synced) {
                        // The log keeps its frames; a later checkpoint (early, or the one
                        // a sync runs when the ring is full) frees them.
                        tracing::warn!(
                            folder = %folder.display(),
                            %error,
                            "an early checkpoint of the write-ahead log failed"
                        );
                    }
                }
            })?;
        Ok(Self {
            wal,
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// After each sync of the log: starts an early checkpoint once one is due.
    pub fn after_sync(&self) {
        if let (Some(mark), Some(requests)) = (self.wal.early_checkpoint(), &self.requests) {
            // The thread ends only when this sender is dropped, so the send cannot fail.
            let _ = requests.send(mark);
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
