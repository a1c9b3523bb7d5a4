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
    requests: Option<mpsc::Sender<Mark>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub fn start(wal: Arc<Wal>, journal: Arc<JournalSync>, folder: &Path) -> std::io::Result<Self> {
        let (requests, marks) = mpsc::channel::<Mark>();
        let folder = folder.to_owned();
        let thread = std::thread::Builder::new()
            .name("kv-checkpoint".to_owned())
            .spawn(move || {
                for mark in marks {
                    let synced = journal.sync();
                    if let Err(error) = wal.finish_checkpoint(mark, synced) {
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
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Starts the checkpoint of `mark` (from [`Wal::early_checkpoint`]).
    pub fn request(&self, mark: Mark) {
        if let Some(requests) = &self.requests {
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
