//! Group commit: concurrent [`crate::Engine::sync`] callers share one fdatasync.
//!
//! Every completed write bumps a counter. A sync notes the counter, then queues on one mutex;
//! whoever holds the mutex re-reads the counter and makes everything up to that point
//! durable. A caller that gets the mutex and finds its writes already covered by the previous
//! holder's sync returns at once. So while one fdatasync runs, all writers that finish
//! meanwhile are covered by the next single fdatasync, however many of them call sync.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::{Error, Result};

/// Tracks which writes are durable, and whether a failure made the engine unusable.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    /// Writes completed so far (counted after the backend accepted them).
    completed_writes: AtomicU64,
    /// Writes known durable; the mutex also serializes the backend syncs.
    durable_writes: Mutex<u64>,
    /// Set after a failed write or sync: what reached the disk is unknown from then on.
    poisoned: AtomicBool,
    /// Backend syncs actually run, for tests and statistics.
    syncs_performed: AtomicU64,
}

impl GroupCommit {
    /// Refuses work once a write or sync failed.
    pub fn check_usable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Runs a backend write; counts it when it succeeds, poisons the engine when it fails.
    pub fn record_write(&self, write: impl FnOnce() -> Result<()>) -> Result<()> {
        self.check_usable()?;
        match write() {
            Ok(()) => {
                self.completed_writes.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(error) => {
                self.poisoned.store(true, Ordering::Release);
                Err(error)
            }
        }
    }

    /// Makes every write completed before this call durable, running `backend_sync` at most
    /// once and skipping it when a concurrent caller's sync already covered those writes.
    pub fn sync(&self, backend_sync: impl FnOnce() -> Result<()>) -> Result<()> {
        self.check_usable()?;
        let needed = self.completed_writes.load(Ordering::Acquire);
        // The guarded value is a plain counter, valid even if a holder panicked.
        let mut durable = self
            .durable_writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.check_usable()?;
        if *durable >= needed {
            return Ok(());
        }
        // Everything completed by now is in the backend before its sync starts.
        let covered = self.completed_writes.load(Ordering::Acquire);
        if let Err(error) = backend_sync() {
            self.poisoned.store(true, Ordering::Release);
            return Err(error);
        }
        self.syncs_performed.fetch_add(1, Ordering::Relaxed);
        *durable = covered;
        Ok(())
    }

    /// Backend syncs run so far.
    pub fn syncs_performed(&self) -> u64 {
        self.syncs_performed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{mpsc, Arc};
    use std::time::{Duration, Instant};

    fn wait_until(condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            assert!(Instant::now() < deadline, "condition not reached in 10 s");
            std::thread::yield_now();
        }
    }

    #[test]
    fn sync_without_new_writes_does_nothing() {
        let commits = GroupCommit::default();
        commits.sync(|| panic!("nothing to sync")).unwrap();
        commits.record_write(|| Ok(())).unwrap();
        commits.sync(|| Ok(())).unwrap();
        commits.sync(|| panic!("already durable")).unwrap();
        assert_eq!(commits.syncs_performed(), 1);
    }

    #[test]
    fn callers_waiting_behind_a_sync_share_the_next_one() {
        let commits = Arc::new(GroupCommit::default());
        let waiting = Arc::new(AtomicUsize::new(0));
        let (release_first, first_blocked) = mpsc::channel::<()>();

        commits.record_write(|| Ok(())).unwrap();
        let first = {
            let commits = commits.clone();
            std::thread::spawn(move || {
                commits.sync(|| {
                    first_blocked.recv().unwrap();
                    Ok(())
                })
            })
        };
        // The first sync now holds the mutex; two more writers finish and queue behind it.
        wait_until(|| commits.durable_writes.try_lock().is_err());
        let followers: Vec<_> = (0..2)
            .map(|_| {
                let commits = commits.clone();
                let waiting = waiting.clone();
                std::thread::spawn(move || {
                    commits.record_write(|| Ok(())).unwrap();
                    waiting.fetch_add(1, Ordering::SeqCst);
                    commits.sync(|| Ok(()))
                })
            })
            .collect();
        wait_until(|| waiting.load(Ordering::SeqCst) == 2);
        release_first.send(()).unwrap();
        first.join().unwrap().unwrap();
        for follower in followers {
            follower.join().unwrap().unwrap();
        }
        assert_eq!(
            commits.syncs_performed(),
            2,
            "the two followers share one sync"
        );
        assert_eq!(*commits.durable_writes.lock().unwrap(), 3);
    }

    #[test]
    fn a_failed_sync_poisons_the_engine() {
        let commits = GroupCommit::default();
        commits.record_write(|| Ok(())).unwrap();
        let failure = std::io::Error::other("disk on fire");
        assert!(commits
            .sync(|| Err(Error::io("fdatasync", "/x", failure)))
            .is_err());
        assert!(matches!(commits.sync(|| Ok(())), Err(Error::Poisoned)));
        assert!(matches!(
            commits.record_write(|| Ok(())),
            Err(Error::Poisoned)
        ));
    }
}
