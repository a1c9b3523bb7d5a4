//! [`RaftStore`]: raft-rs's [`raft::Storage`] over the `kv` engine — the Raft log, the hard
//! state, the conf state and the latest snapshot of one monitor.
//!
//! Layout (keyspace `raft`; every value is a rust-protobuf encoded raft-rs message):
//!
//! | key | value |
//! | --- | --- |
//! | `log/` + index (u64 big-endian) | one [`Entry`] |
//! | `hard_state` | [`HardState`] |
//! | `conf_state` | [`ConfState`] |
//! | `snapshot` | the latest [`Snapshot`], state machine included in `data` |
//! | `log_start` | index and term (2 × u64 BE) of the entry just before the first kept one |
//!
//! The log kept on disk is `first_index ..= last_index`; everything before `first_index`
//! has been compacted and is covered by the snapshot (`log_start.index <= snapshot.index`).
//! Every method that changes the store writes one atomic batch; the ones whose result must
//! survive a crash before the caller goes on (appending entries with a new hard state,
//! installing a snapshot, compacting) take a `sync` flag or always sync.
//!
//! A copy of the kept log lives in memory as well: compaction bounds it, and it spares the
//! engine the many small reads raft makes (`term`, `entries`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kv::{Engine, KeyRange, WriteBatch};
use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

/// The keyspace that holds the Raft state.
pub const RAFT_KEYSPACE: &str = "raft";

const LOG_PREFIX: &[u8] = b"log/";
const HARD_STATE_KEY: &[u8] = b"hard_state";
const CONF_STATE_KEY: &[u8] = b"conf_state";
const SNAPSHOT_KEY: &[u8] = b"snapshot";
const LOG_START_KEY: &[u8] = b"log_start";

/// Why the Raft store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (I/O, a poisoned engine).
    #[error("raft storage: {0}")]
    Engine(#[from] kv::Error),
    /// A stored record does not decode: the data directory is damaged.
    #[error("raft storage: stored {what} is corrupt: {detail}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// Entries handed to [`RaftStore::append`] leave a gap after the stored log.
    #[error(
        "raft storage: entries starting at {first} would leave a gap after the last index {last}"
    )]
    Gap {
        /// First index of the new entries.
        first: u64,
        /// The store's last index.
        last: u64,
    },
}

fn log_key(index: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(LOG_PREFIX.len() + 8);
    key.extend_from_slice(LOG_PREFIX);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

fn encode<M: protobuf::Message>(message: &M, what: &'static str) -> Result<Vec<u8>, StoreError> {
    message
        .write_to_bytes()
        .map_err(|error| StoreError::Corrupt {
            what,
            detail: error.to_string(),
        })
}

fn decode<M: protobuf::Message>(bytes: &[u8], what: &'static str) -> Result<M, StoreError> {
    M::parse_from_bytes(bytes).map_err(|error| StoreError::Corrupt {
        what,
        detail: error.to_string(),
    })
}

/// The Raft state of one monitor, durable in a `kv` engine and mirrored in memory.
pub struct RaftStore {
    engine: Arc<dyn Engine>,
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// Index and term of the entry just before `entries[0]` (0, 0 for a fresh store).
    log_start: (u64, u64),
    entries: VecDeque<Entry>,
    /// Set when raft asked for a snapshot the stored one cannot serve (it predates the
    /// configuration that added the peer); the node then takes a fresh one.
    snapshot_wanted: AtomicBool,
}

impl std::fmt::Debug for RaftStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftStore")
            .field("hard_state", &self.hard_state)
            .field("conf_state", &self.conf_state)
            .field("snapshot_index", &self.snapshot_index())
            .field("log_start", &self.log_start)
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl RaftStore {
    /// Loads the Raft state stored in `engine` (an empty state if there is none).
    pub fn open(engine: Arc<dyn Engine>) -> Result<Self, StoreError> {
        let get = |key: &[u8]| engine.get(RAFT_KEYSPACE, key);
        let mut hard_state: HardState = match get(HARD_STATE_KEY)? {
            Some(bytes) => decode(&bytes, "hard state")?,
            None => HardState::default(),
        };
        let conf_state: ConfState = match get(CONF_STATE_KEY)? {
            Some(bytes) => decode(&bytes, "conf state")?,
            None => ConfState::default(),
        };
        let snapshot: Snapshot = match get(SNAPSHOT_KEY)? {
            Some(bytes) => decode(&bytes, "snapshot")?,
            None => Snapshot::default(),
        };
        let log_start = match get(LOG_START_KEY)? {
            Some(bytes) if bytes.len() == 16 => {
                let mut index = [0u8; 8];
                let mut term = [0u8; 8];
                index.copy_from_slice(&bytes[..8]);
                term.copy_from_slice(&bytes[8..]);
                (u64::from_be_bytes(index), u64::from_be_bytes(term))
            }
            Some(bytes) => {
                return Err(StoreError::Corrupt {
                    what: "log start",
                    detail: format!("{} bytes instead of 16", bytes.len()),
                })
            }
            None => (0, 0),
        };
        let mut entries = VecDeque::new();
        for item in engine.scan(RAFT_KEYSPACE, KeyRange::prefix(LOG_PREFIX))? {
            let (_, value) = item?;
            let entry: Entry = decode(&value, "log entry")?;
            let expected = log_start.0 + 1 + entries.len() as u64;
            if entry.index != expected {
                return Err(StoreError::Corrupt {
                    what: "log",
                    detail: format!("entry {} found where {expected} was expected", entry.index),
                });
            }
            entries.push_back(entry);
        }
        // A commit index is written without a sync; the snapshot always is. Never let the
        // commit index fall behind what the snapshot proves committed (raft-rs refuses that).
        let snapshot_index = snapshot.get_metadata().index;
        if hard_state.commit < snapshot_index {
            hard_state.commit = snapshot_index;
        }
        Ok(RaftStore {
            engine,
            hard_state,
            conf_state,
            snapshot,
            log_start,
            entries,
            snapshot_wanted: AtomicBool::new(false),
        })
    }

    /// Whether raft asked for a snapshot newer than the stored one (and clears the flag).
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.swap(false, Ordering::Relaxed)
    }

    /// Whether this store has ever been part of a cluster (bootstrapped, or given a
    /// snapshot by a leader).
    pub fn is_initialized(&self) -> bool {
        self.snapshot.get_metadata().index > 0 || !self.conf_state.voters.is_empty()
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// The stored hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The stored conf state (the latest applied configuration).
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The latest snapshot (empty if none).
    pub fn latest_snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Index of the latest snapshot (0 if none).
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    /// First index still in the log.
    pub fn first(&self) -> u64 {
        self.log_start.0 + 1
    }

    /// Last index in the log (or the compaction point when the log is empty).
    pub fn last(&self) -> u64 {
        self.log_start.0 + self.entries.len() as u64
    }

    /// Number of entries kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Installs the very first snapshot of a new monitor cluster (every initial member
    /// installs the same one) and syncs it.
    pub fn bootstrap(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.install_snapshot(snapshot)
    }

    /// Appends entries (replacing any conflicting suffix) and the new hard state, in one
    /// batch; syncs when `sync` is set.
    pub fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync: bool,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        let mut truncate_from = None;
        if let Some(first) = entries.first() {
            let first_index = first.index;
            if first_index > self.last() + 1 {
                return Err(StoreError::Gap {
                    first: first_index,
                    last: self.last(),
                });
            }
            // Entries at or before the compaction point are already covered by the snapshot.
            let skip = self.first().saturating_sub(first_index) as usize;
            let entries = &entries[skip.min(entries.len())..];
            if let Some(first) = entries.first() {
                if first.index <= self.last() {
                    batch.delete_range(
                        RAFT_KEYSPACE,
                        KeyRange::between(log_key(first.index), log_key(u64::MAX)),
                    );
                    truncate_from = Some(first.index);
                }
                for entry in entries {
                    batch.put(
                        RAFT_KEYSPACE,
                        log_key(entry.index),
                        encode(entry, "log entry")?,
                    );
                }
            }
        }
        if let Some(hard_state) = hard_state {
            batch.put(
                RAFT_KEYSPACE,
                HARD_STATE_KEY,
                encode(hard_state, "hard state")?,
            );
        }
        self.write(batch, sync)?;
        if let Some(from) = truncate_from {
            let keep = (from - self.first()) as usize;
            self.entries.truncate(keep);
        }
        let first_new = self.last() + 1;
        self.entries.extend(
            entries
                .iter()
                .filter(|entry| entry.index >= first_new)
                .cloned(),
        );
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state.clone();
        }
        Ok(())
    }

    /// Records a new commit index (from a light ready). Not synced: a lost commit index is
    /// learnt again from the leader.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        if commit <= self.hard_state.commit {
            return Ok(());
        }
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = commit;
        let mut batch = WriteBatch::new();
        batch.put(
            RAFT_KEYSPACE,
            HARD_STATE_KEY,
            encode(&hard_state, "hard state")?,
        );
        self.write(batch, false)?;
        self.hard_state = hard_state;
        Ok(())
    }

    /// Records the configuration after an applied conf change. Not synced: on a restart the
    /// change is applied again from the log.
    pub fn set_conf_state(&mut self, conf_state: ConfState) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(
            RAFT_KEYSPACE,
            CONF_STATE_KEY,
            encode(&conf_state, "conf state")?,
        );
        self.write(batch, false)?;
        self.conf_state = conf_state;
        Ok(())
    }

    /// Installs a snapshot received from the leader: it replaces the whole log, the conf
    /// state and the snapshot, moves the commit index up to it, and is synced.
    pub fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StoreError> {
        let meta = snapshot.get_metadata();
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = hard_state.commit.max(meta.index);
        hard_state.term = hard_state.term.max(meta.term);
        let log_start = (meta.index, meta.term);
        let conf_state = meta.get_conf_state().clone();
        let mut batch = WriteBatch::new();
        batch.delete_range(RAFT_KEYSPACE, KeyRange::prefix(LOG_PREFIX));
        batch.put(RAFT_KEYSPACE, SNAPSHOT_KEY, encode(&snapshot, "snapshot")?);
        batch.put(
            RAFT_KEYSPACE,
            HARD_STATE_KEY,
            encode(&hard_state, "hard state")?,
        );
        batch.put(
            RAFT_KEYSPACE,
            CONF_STATE_KEY,
            encode(&conf_state, "conf state")?,
        );
        batch.put(RAFT_KEYSPACE, LOG_START_KEY, log_start_value(log_start));
        self.write(batch, true)?;
        self.entries.clear();
        self.log_start = log_start;
        self.hard_state = hard_state;
        self.conf_state = conf_state;
        self.snapshot = snapshot;
        Ok(())
    }

    /// Stores a snapshot of the local state machine taken at `snapshot.metadata.index`
    /// (which must be applied, hence in the log or at the compaction point) and drops the
    /// log entries up to `keep_from` (exclusive), never past the snapshot. Synced.
    pub fn compact(&mut self, snapshot: Snapshot, keep_from: u64) -> Result<(), StoreError> {
        let snapshot_index = snapshot.get_metadata().index;
        let keep_from = keep_from.min(snapshot_index + 1).max(self.first());
        let new_start_index = keep_from - 1;
        let new_start_term =
            raft::Storage::term(self, new_start_index).map_err(|error| StoreError::Corrupt {
                what: "log",
                detail: format!("no term for compaction point {new_start_index}: {error}"),
            })?;
        let mut hard_state = self.hard_state.clone();
        hard_state.commit = hard_state.commit.max(snapshot_index);
        let mut batch = WriteBatch::new();
        batch.put(RAFT_KEYSPACE, SNAPSHOT_KEY, encode(&snapshot, "snapshot")?);
        batch.put(
            RAFT_KEYSPACE,
            HARD_STATE_KEY,
            encode(&hard_state, "hard state")?,
        );
        batch.delete_range(
            RAFT_KEYSPACE,
            KeyRange::between(log_key(0), log_key(keep_from)),
        );
        batch.put(
            RAFT_KEYSPACE,
            LOG_START_KEY,
            log_start_value((new_start_index, new_start_term)),
        );
        self.write(batch, true)?;
        let drop = (keep_from - self.first()) as usize;
        self.entries.drain(..drop.min(self.entries.len()));
        self.log_start = (new_start_index, new_start_term);
        self.hard_state = hard_state;
        self.snapshot = snapshot;
        Ok(())
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StoreError> {
        if sync {
            self.engine.write_sync(batch)?;
        } else {
            self.engine.write(batch)?;
        }
        Ok(())
    }

    fn entry(&self, index: u64) -> Option<&Entry> {
        let offset = index.checked_sub(self.first())?;
        self.entries.get(usize::try_from(offset).ok()?)
    }
}

fn log_start_value((index, term): (u64, u64)) -> Vec<u8> {
    let mut value = Vec::with_capacity(16);
    value.extend_from_slice(&index.to_be_bytes());
    value.extend_from_slice(&term.to_be_bytes());
    value
}

impl raft::Storage for RaftStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let max_size = max_size.into().unwrap_or(u64::MAX);
        let mut result = Vec::new();
        let mut size = 0u64;
        for index in low..high {
            let Some(entry) = self.entry(index) else {
                return Err(raft::Error::Store(StorageError::Unavailable));
            };
            size += u64::from(entry.compute_size());
            // Always return at least one entry, as the trait requires.
            if !result.is_empty() && size > max_size {
                break;
            }
            result.push(entry.clone());
        }
        Ok(result)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        if index == self.log_start.0 {
            return Ok(self.log_start.1);
        }
        let snapshot_meta = self.snapshot.get_metadata();
        if index == snapshot_meta.index {
            return Ok(snapshot_meta.term);
        }
        if index < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        match self.entry(index) {
            Some(entry) => Ok(entry.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let meta = self.snapshot.get_metadata();
        let conf_state = meta.get_conf_state();
        let knows_peer = conf_state.voters.contains(&to) || conf_state.learners.contains(&to);
        if meta.index < request_index || !knows_peer {
            // A peer that is not in the snapshot's configuration would ignore it: ask the
            // node for a fresh snapshot; raft retries shortly.
            self.snapshot_wanted.store(true, Ordering::Relaxed);
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}
