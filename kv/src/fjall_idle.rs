//! Giving back the memory of flushed memtables once the store goes quiet.
//!
//! fjall keeps each superseded version of a keyspace's tree, and with it every sealed
//! memtable that version references (values included), until a memtable rotation runs its
//! version garbage collection, which drops only versions older than the snapshot watermark.
//! That watermark moves with writes. So after the last write of a burst, everything flushed
//! since stays in memory for good: measured on an OSD, 100 MiB of already flushed 64 KiB
//! chunk values were still held 10 s after a 4 MiB write burst, with an 8 MiB write buffer.
//! When writes have stopped for [`QUIET`] and no flush is pending, the [`IdleRelease`]
//! thread writes one small marker to its own keyspace ([`MARKER_KEYSPACE`]), which moves the
//! watermark past those versions, and rotates that keyspace's memtable, which runs the
//! collection for every keyspace. fjall's own rules decide what is dropped. It does so only
//! after [`MIN_WRITTEN`] bytes were written since its last round, so a store that sees a
//! trickle of small writes (a monitor) does not get a tiny table every quiet second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

/// How long writes must have stopped before the flushed memtables are collected.
pub(crate) const QUIET: Duration = Duration::from_millis(1000);

/// Bytes written since the last round below which a quiet spell is let pass: at most this
/// much (plus the memtables) can stay held.
pub(crate) const MIN_WRITTEN: u64 = 4 << 20;

/// How often the thread looks at the write counter.
const TICK: Duration = Duration::from_millis(250);

/// The keyspace the marker goes to; `#` is outside the names [`crate::keys`] allows, so no
/// caller's keyspace can be it, and listings leave it out.
pub(crate) const MARKER_KEYSPACE: &str = "#idle-release";

/// The thread that collects flushed memtables after writes stop; dropping it stops and joins it.
pub(crate) struct IdleRelease {
    written: Arc<AtomicU64>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl IdleRelease {
    /// Starts the thread for `db`.
    pub fn start(db: Database) -> Result<Self, StartError> {
        let marker = db
            .keyspace(MARKER_KEYSPACE, KeyspaceCreateOptions::default)
            .map_err(StartError::Keyspace)?;
        let written = Arc::new(AtomicU64::new(0));
        let (stop, stopped) = mpsc::channel();
        let counter = Arc::clone(&written);
        let thread = std::thread::Builder::new()
            .name("kv-idle-release".into())
            .spawn(move || run(&db, &marker, &counter, &stopped))
            .map_err(StartError::Thread)?;
        Ok(Self {
            written,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Notes that a batch of `bytes` was written (the quiet period starts over).
    pub fn wrote(&self, bytes: u64) {
        // At least 1, so that an empty batch also counts as activity.
        self.written.fetch_add(bytes.max(1), Ordering::Relaxed);
    }
}

impl Drop for IdleRelease {
    fn drop(&mut self) {
        // Closing the channel wakes the thread; joining it drops the database handle it
        // holds, so the database is closed once the store is dropped and can be reopened.
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &Database, marker: &Keyspace, written: &AtomicU64, stopped: &mpsc::Receiver<()>) {
    let mut seen = written.load(Ordering::Relaxed);
    let mut seen_at_last_round = seen;
    let mut last_change = Instant::now();
    let mut rounds: u64 = 0;
    loop {
        match stopped.recv_timeout(TICK) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let now_seen = written.load(Ordering::Relaxed);
        if now_seen != seen {
            seen = now_seen;
            last_change = Instant::now();
            continue;
        }
        if seen - seen_at_last_round >= MIN_WRITTEN
            && last_change.elapsed() >= QUIET
            && db.outstanding_flushes() == 0
        {
            seen_at_last_round = seen;
            rounds += 1;
            if let Err(error) = collect_flushed_memtables(marker, rounds) {
                tracing::warn!(%error, "could not release the memory of flushed memtables");
            }
        }
    }
}

/// One marker write, then a rotation of the marker's memtable: fjall's version collection
/// then drops, in every keyspace, the versions (and sealed memtables) no reader needs.
fn collect_flushed_memtables(marker: &Keyspace, round: u64) -> fjall::Result<()> {
    marker.insert("round", round.to_be_bytes())?;
    marker.rotate_memtable()?;
    Ok(())
}

/// Why the idle-release thread did not start.
#[derive(Debug)]
pub(crate) enum StartError {
    Keyspace(fjall::Error),
    Thread(std::io::Error),
}
