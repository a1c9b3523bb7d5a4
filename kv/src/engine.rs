//! The [`Engine`] trait every backend implements, and the shared front half of every
//! backend ([`StoreEngine`]): input checks, the write lock, batch resolution and group commit.
//! Backends only implement the small internal [`Store`] trait.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use crate::batch::Mutation;
use crate::group_commit::GroupCommit;
use crate::keys::{validate_key, validate_keyspace};
use crate::{Backend, KeyRange, Result, WriteBatch};

/// One key and its value, as a scan yields them.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered key-value store with named keyspaces, atomic batches and durable sync.
///
/// Consistency: a read sees every write that returned before the read began. A scan yields
/// keys in ascending order (or descending, from its back end) and never a key twice. On the
/// fjall backend a scan reads one snapshot; on sled and memory it may see writes that land
/// while it runs, so two keys it yields can come from different batches. Callers that need
/// a consistent multi-key view while others write must order those writes themselves (the
/// OSDs do, per PG). Writing from inside a scan is allowed.
///
/// Durability: [`Engine::write`] makes a batch visible and crash-atomic (after any crash a
/// batch is there whole or not at all) but not necessarily durable; [`Engine::sync`] returns
/// once every write that returned before it was called survives power loss. Concurrent
/// callers of `sync` share fdatasyncs (group commit), so "write, then sync" from many threads
/// costs far fewer than one fdatasync each. The memory backend's sync does nothing.
///
/// A failed write or sync poisons the engine (see [`crate::Error::Poisoned`]).
pub trait Engine: Send + Sync + fmt::Debug {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// The value stored under `key` in `keyspace`, if any.
    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The entries of `keyspace` inside `range`, in ascending key order; `.rev()` walks them
    /// in descending order (for instance the last Raft log index).
    fn scan(&self, keyspace: &str, range: KeyRange) -> Result<Scan>;

    /// Calls `visit` with each entry of `keyspace` inside `range`, in ascending key order,
    /// until it returns `false`. Unlike [`Engine::scan`], the backend may lend its own
    /// buffers instead of copying every key and value (fjall does), which matters for
    /// reading large values.
    fn visit(&self, keyspace: &str, range: KeyRange, visit: Visitor<'_>) -> Result<()>;

    /// Applies every operation of `batch` atomically. An invalid batch is refused whole.
    fn write(&self, batch: WriteBatch) -> Result<()>;

    /// Makes every write that returned before this call durable.
    fn sync(&self) -> Result<()>;

    /// [`Engine::write`] then [`Engine::sync`]: the batch is durable when this returns.
    fn write_sync(&self, batch: WriteBatch) -> Result<()> {
        self.write(batch)?;
        self.sync()
    }

    /// The names of the keyspaces that hold at least one key, sorted.
    fn keyspaces(&self) -> Result<Vec<String>>;

    /// Makes [`WriteBatch::put_log_only`] keep later log-only puts out of the engine's
    /// tables: the engine then calls `hook` before its log drops any of them, and the hook
    /// must make whatever the caller keeps in their stead durable (or fail, and the log
    /// keeps them). Returns `false` when the engine has no log of its own to keep them in
    /// (sled, memory, fjall without its log): log-only puts stay ordinary puts there. Set
    /// once, before the first log-only put; a second hook is refused (`false`).
    fn on_log_release(&self, hook: LogReleaseHook) -> bool;

    /// How many backend sync rounds (fdatasyncs) [`Engine::sync`] has run: fewer than the
    /// calls to it when group commit shared them or nothing new was written. The memory
    /// backend counts its free rounds the same way.
    fn syncs_performed(&self) -> u64;
}

/// What an engine calls before its log drops log-only puts (see [`Engine::on_log_release`]).
pub type LogReleaseHook = Box<dyn Fn() -> std::io::Result<()> + Send + Sync>;

/// What [`Engine::visit`] calls with each key and value; `false` stops the walk.
pub type Visitor<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> bool;

/// A double-ended iterator over scanned entries; each item may carry a storage error.
pub struct Scan {
    inner: Box<dyn DoubleEndedIterator<Item = Result<Entry>> + Send>,
}

impl Scan {
    pub(crate) fn new(
        inner: impl DoubleEndedIterator<Item = Result<Entry>> + Send + 'static,
    ) -> Self {
        Self {
            inner: Box::new(inner),
        }
    }

    pub(crate) fn empty() -> Self {
        Self::new(std::iter::empty())
    }
}

impl Iterator for Scan {
    type Item = Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

impl DoubleEndedIterator for Scan {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back()
    }
}

impl fmt::Debug for Scan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scan").finish_non_exhaustive()
    }
}

/// What a backend implements; [`StoreEngine`] adds validation, locking and group commit.
pub(crate) trait Store: Send + Sync + fmt::Debug + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Point read; the keyspace name and key are already validated.
    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Ordered scan over a normalized (certainly well-formed) range.
    fn scan(&self, keyspace: &str, range: KeyRange) -> Result<Scan>;
    /// Ordered walk over a normalized range; by default over a copying [`Store::scan`].
    fn visit(&self, keyspace: &str, range: KeyRange, visit: Visitor<'_>) -> Result<()> {
        for entry in self.scan(keyspace, range)? {
            let (key, value) = entry?;
            if !visit(&key, &value) {
                break;
            }
        }
        Ok(())
    }
    /// The stored keys inside a normalized range (for range deletes).
    fn keys_in(&self, keyspace: &str, range: &KeyRange) -> Result<Vec<Vec<u8>>> {
        self.scan(keyspace, range.clone())?
            .map(|entry| entry.map(|(key, _)| key))
            .collect()
    }
    /// Applies resolved mutations (sorted, one per key) atomically. Called under the
    /// engine's write lock, so no other apply runs concurrently.
    fn apply(&self, mutations: Vec<Mutation>) -> Result<()>;
    /// Makes everything applied so far durable.
    fn sync_to_disk(&self) -> Result<()>;
    /// Names of keyspaces holding at least one key, sorted.
    fn keyspaces(&self) -> Result<Vec<String>>;
    /// See [`Engine::on_log_release`]; backends without a log of their own refuse.
    fn on_log_release(&self, _hook: LogReleaseHook) -> bool {
        false
    }
}

/// Turns a [`Store`] into an [`Engine`].
pub(crate) struct StoreEngine<S> {
    store: S,
    /// Serializes applies, so a range delete's key listing cannot race another writer.
    write_lock: Mutex<()>,
    commits: GroupCommit,
}

impl<S: Store> StoreEngine<S> {
    pub fn new(store: S) -> Self {
        Self {
            store,
            write_lock: Mutex::new(()),
            commits: GroupCommit::default(),
        }
    }

    #[cfg(test)]
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S: Store> fmt::Debug for StoreEngine<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store)
            .field("commits", &self.commits)
            .finish_non_exhaustive()
    }
}

impl<S: Store> Engine for StoreEngine<S> {
    fn backend(&self) -> Backend {
        self.store.backend()
    }

    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        validate_keyspace(keyspace)?;
        validate_key(key)?;
        self.store.get(keyspace, key)
    }

    fn scan(&self, keyspace: &str, range: KeyRange) -> Result<Scan> {
        validate_keyspace(keyspace)?;
        range.validate()?;
        match range.normalized() {
            Some(range) => self.store.scan(keyspace, range),
            None => Ok(Scan::empty()),
        }
    }

    fn visit(&self, keyspace: &str, range: KeyRange, visit: Visitor<'_>) -> Result<()> {
        validate_keyspace(keyspace)?;
        range.validate()?;
        match range.normalized() {
            Some(range) => self.store.visit(keyspace, range, visit),
            None => Ok(()),
        }
    }

    fn write(&self, batch: WriteBatch) -> Result<()> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        // The guarded value is (), so a panic in another writer leaves nothing inconsistent
        // here; a failed apply poisons the engine through `record_write` instead.
        let _writer = self
            .write_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.commits.record_write(|| {
            let mutations = batch.resolve(|keyspace, range| self.store.keys_in(keyspace, range))?;
            self.store.apply(mutations)
        })
    }

    fn sync(&self) -> Result<()> {
        self.commits.sync(|| self.store.sync_to_disk())
    }

    fn keyspaces(&self) -> Result<Vec<String>> {
        self.store.keyspaces()
    }

    fn on_log_release(&self, hook: LogReleaseHook) -> bool {
        self.store.on_log_release(hook)
    }

    fn syncs_performed(&self) -> u64 {
        self.commits.syncs_performed()
    }
}
