//! The sled 0.34 backend, made truly durable.
//!
//! Layout: one sled tree holds every keyspace; a key is stored as
//! `[name length: u8][name][key]`, so each keyspace is a contiguous, ordered run of keys and
//! a batch over several keyspaces is one `sled::Batch` on one tree, which sled's log
//! recovers whole or not at all.
//!
//! Durability: sled 0.34's `flush()` writes its log with `sync_file_range` only, which
//! neither flushes the disk's write cache nor the file's metadata, and it never syncs the
//! blob files it writes for large values (see NOTES-deps.md). So `sync_to_disk` flushes,
//! then fdatasyncs every blob file written since the last sync and the blob directory, and
//! finally fdatasyncs the log file `db`; blobs go first so a durable log entry never points
//! at a blob that could vanish.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::batch::Mutation;
use crate::engine::{Scan, Store};
use crate::keys::prefix_successor;
use crate::{Backend, Error, KeyRange, Options, Result};

pub(crate) struct SledStore {
    path: PathBuf,
    db: sled::Db,
    /// sled's log file, opened separately only to fdatasync it (fdatasync acts on the file,
    /// whichever descriptor names it).
    log_file: File,
    blob_dir: PathBuf,
    /// Blob files already fdatasynced; only new ones are synced, pruned as sled removes them.
    synced_blobs: Mutex<HashSet<OsString>>,
}

fn storage_error(error: sled::Error) -> Error {
    Error::storage(Backend::Sled, error)
}

/// The stored-key prefix of a keyspace (names are at most 128 bytes, so the length fits).
fn keyspace_prefix(keyspace: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(keyspace.len() + 1);
    prefix.push(keyspace.len() as u8);
    prefix.extend_from_slice(keyspace.as_bytes());
    prefix
}

fn stored_key(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut stored = Vec::with_capacity(prefix.len() + key.len());
    stored.extend_from_slice(prefix);
    stored.extend_from_slice(key);
    stored
}

fn sync_path(path: &Path, operation: &'static str) -> Result<()> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|error| Error::io(operation, path, error))
}

impl SledStore {
    pub fn open(path: &Path, options: &Options) -> Result<Self> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(options.cache_bytes)
            .open()
            .map_err(storage_error)?;
        let log_path = path.join("db");
        let log_file =
            File::open(&log_path).map_err(|error| Error::io("open sled log", &log_path, error))?;
        // The files sled just created must not vanish with their directory entries.
        sync_path(&path.join("conf"), "fsync sled config")?;
        sync_path(path, "fsync directory")?;
        let blob_dir = path.join("blobs");
        if blob_dir.exists() {
            sync_path(&blob_dir, "fsync sled blob directory")?;
        }
        Ok(Self {
            path: path.to_owned(),
            db,
            log_file,
            blob_dir,
            synced_blobs: Mutex::new(HashSet::new()),
        })
    }

    /// fdatasyncs the blob files written since the last call, then their directory.
    fn sync_new_blobs(&self) -> Result<()> {
        if !self.blob_dir.exists() {
            return Ok(());
        }
        let mut synced = self
            .synced_blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let listing = std::fs::read_dir(&self.blob_dir)
            .map_err(|error| Error::io("list sled blobs", &self.blob_dir, error))?;
        let mut present = HashSet::new();
        let mut any_new = false;
        for entry in listing {
            let entry =
                entry.map_err(|error| Error::io("list sled blobs", &self.blob_dir, error))?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                match File::open(entry.path()) {
                    Ok(file) => file
                        .sync_data()
                        .map_err(|error| Error::io("fdatasync sled blob", entry.path(), error))?,
                    // sled's garbage collection removed it since the listing: nothing to keep.
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(Error::io("open sled blob", entry.path(), error)),
                }
                any_new = true;
            }
            present.insert(name);
        }
        if any_new {
            sync_path(&self.blob_dir, "fsync sled blob directory")?;
        }
        *synced = present;
        Ok(())
    }

    #[cfg(test)]
    pub fn synced_blob_count(&self) -> usize {
        self.synced_blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store for SledStore {
    fn backend(&self) -> Backend {
        Backend::Sled
    }

    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let stored = stored_key(&keyspace_prefix(keyspace), key);
        let value = self.db.get(stored).map_err(storage_error)?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn scan(&self, keyspace: &str, range: KeyRange) -> Result<Scan> {
        let prefix = keyspace_prefix(keyspace);
        let (start, end) = range.into_bounds();
        let start = match start {
            Bound::Included(key) => Bound::Included(stored_key(&prefix, &key)),
            Bound::Excluded(key) => Bound::Excluded(stored_key(&prefix, &key)),
            Bound::Unbounded => Bound::Included(prefix.clone()),
        };
        let end = match end {
            Bound::Included(key) => Bound::Included(stored_key(&prefix, &key)),
            Bound::Excluded(key) => Bound::Excluded(stored_key(&prefix, &key)),
            // Names are ASCII, so the prefix always has a successor.
            Bound::Unbounded => match prefix_successor(&prefix) {
                Some(successor) => Bound::Excluded(successor),
                None => Bound::Unbounded,
            },
        };
        let prefix_len = prefix.len();
        let entries = self
            .db
            .range::<Vec<u8>, _>((start, end))
            .filter(move |entry| match entry {
                Ok((stored, _)) => stored.starts_with(&prefix),
                Err(_) => true,
            })
            .map(move |entry| {
                let (stored, value) = entry.map_err(storage_error)?;
                Ok((stored[prefix_len..].to_vec(), value.to_vec()))
            });
        Ok(Scan::new(entries))
    }

    fn apply(&self, mutations: Vec<Mutation>) -> Result<()> {
        let mut batch = sled::Batch::default();
        let mut prefix: Option<(String, Vec<u8>)> = None;
        for mutation in mutations {
            if prefix.as_ref().map(|(name, _)| name) != Some(&mutation.keyspace) {
                let bytes = keyspace_prefix(&mutation.keyspace);
                prefix = Some((mutation.keyspace, bytes));
            }
            let Some((_, prefix_bytes)) = &prefix else {
                continue;
            };
            let stored = stored_key(prefix_bytes, &mutation.key);
            match mutation.value {
                Some(value) => batch.insert(stored, value),
                None => batch.remove(stored),
            }
        }
        self.db.apply_batch(batch).map_err(storage_error)
    }

    fn sync_to_disk(&self) -> Result<()> {
        self.db.flush().map_err(storage_error)?;
        self.sync_new_blobs()?;
        let log_path = self.path.join("db");
        self.log_file
            .sync_data()
            .map_err(|error| Error::io("fdatasync sled log", log_path, error))
    }

    fn keyspaces(&self) -> Result<Vec<String>> {
        // Jump from one keyspace's first key to the next keyspace: one seek per keyspace.
        let mut names = Vec::new();
        let mut from: Bound<Vec<u8>> = Bound::Unbounded;
        loop {
            let Some(entry) = self
                .db
                .range::<Vec<u8>, _>((from.clone(), Bound::Unbounded))
                .next()
            else {
                break;
            };
            let (stored, _) = entry.map_err(storage_error)?;
            let name_len = usize::from(stored.first().copied().unwrap_or(0));
            let name = stored
                .get(1..=name_len)
                .and_then(|name| std::str::from_utf8(name).ok())
                .filter(|name| !name.is_empty())
                .ok_or_else(|| {
                    Error::storage(
                        Backend::Sled,
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("stored key {stored:?} has no valid keyspace prefix"),
                        ),
                    )
                })?;
            names.push(name.to_owned());
            match prefix_successor(&stored[..=name_len]) {
                Some(next) => from = Bound::Included(next),
                None => break,
            }
        }
        // Stored order is by name length first; the trait promises name order.
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, StoreEngine};
    use crate::WriteBatch;

    #[test]
    fn sync_fdatasyncs_the_blob_files_sled_leaves_unsynced() {
        let dir = std::env::temp_dir().join(format!("kv-sled-blobs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let engine = StoreEngine::new(SledStore::open(&dir, &Options::default()).unwrap());
        let mut batch = WriteBatch::new();
        batch.put("big", b"value".to_vec(), vec![7u8; 4 << 20]);
        engine.write_sync(batch).unwrap();
        let blobs_on_disk = std::fs::read_dir(dir.join("blobs")).unwrap().count();
        assert!(
            blobs_on_disk >= 1,
            "sled stores a 4 MiB value as a blob file"
        );
        assert_eq!(engine.store().synced_blob_count(), blobs_on_disk);
        drop(engine);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keyspace_prefixes_keep_keyspaces_apart() {
        let a = stored_key(&keyspace_prefix("a"), b"\xff\xff");
        let ab = stored_key(&keyspace_prefix("ab"), b"");
        // "a" + 0xffff sorts before "ab" because the length byte differs first.
        assert!(a < ab);
        assert_eq!(keyspace_prefix("pg:1"), b"\x04pg:1".to_vec());
    }
}
