//! The thread that runs the write-ahead log's early checkpoints (see `fjall_wal`): an
//! fdatasync of fjall's journal, then the log's tail moves to the mark, while syncs go on
//! writing frames.

use std::path::Path;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use crate::fjall_journal::JournalSync;
use crate::fjall_wal::{Mark, Wal};

/// Runs early checkpoints one at a time. Dropping it waits for the one under way, so no
/// header is written once the store is closed (a reopened store owns the log then).
pub(crate) struct Checkpointer {
    wal: Arc<Wal>,
    requests: Option<mpsc::Sender<Mark>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(wal: Arc<Wal>, journal: Arc<JournalSync>, folder: &Path) -> std::io::Result<Self> {
        let (requests, marks) = mpsc::channel::<Mark>();
        let folder = folder.to_owned();
        let log = Arc::clone(&wal);
        let thread = std::thread::Builder::new()
            .name("kv-checkpoint".to_owned())
            .spawn(move || {
                for mark in marks {
                    let synced = journal.sync();
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
