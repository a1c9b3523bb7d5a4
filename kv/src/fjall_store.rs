//! The fjall backend: each of our keyspaces is a fjall keyspace (its own LSM tree), and a
//! batch is one fjall cross-keyspace batch, which fjall's journal makes crash-atomic.
//!
//! Durability: batches are written to the journal's OS buffer on commit (so a killed process
//! loses nothing that was committed), and `sync` is `persist(PersistMode::SyncData)`, one
//! fdatasync of the journal. Values of at least [`Options::fjall_blob_threshold`] bytes are
//! kept in blob files (key-value separation), so compaction does not rewrite large values.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};

use crate::batch::Mutation;
use crate::engine::{Scan, Store};
use crate::{Backend, Error, KeyRange, Options, Result};

pub(crate) struct FjallStore {
    path: PathBuf,
    db: Database,
    /// Open keyspace handles; fjall's own lookup takes a global write lock, ours a read lock.
    handles: RwLock<HashMap<String, Keyspace>>,
    blob_threshold: Option<u32>,
    memtable_bytes: u64,
}

fn storage_error(error: fjall::Error) -> Error {
    Error::storage(Backend::Fjall, error)
}

impl FjallStore {
    pub fn open(path: &Path, options: &Options) -> Result<Self> {
        let db = Database::builder(path)
            .cache_size(options.cache_bytes)
            .open()
            .map_err(storage_error)?;
        Ok(Self {
            path: path.to_owned(),
            db,
            handles: RwLock::new(HashMap::new()),
            blob_threshold: options.fjall_blob_threshold,
            memtable_bytes: options.fjall_memtable_bytes,
        })
    }

    /// The handle of an existing keyspace, or of a new one when `create` is set.
    fn keyspace(&self, name: &str, create: bool) -> Result<Option<Keyspace>> {
        if let Some(handle) = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(Some(handle.clone()));
        }
        if !create && !self.db.keyspace_exists(name) {
            return Ok(None);
        }
        let blob_threshold = self.blob_threshold;
        let memtable_bytes = self.memtable_bytes;
        // The name was validated (1..=128 bytes), so fjall's name assertion cannot fire.
        let handle = self
            .db
            .keyspace(name, || {
                let separation = blob_threshold.map(|threshold| {
                    KvSeparationOptions::default().separation_threshold(threshold)
                });
                KeyspaceCreateOptions::default()
                    .max_memtable_size(memtable_bytes)
                    .with_kv_separation(separation)
            })
            .map_err(storage_error)?;
        self.handles
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), handle.clone());
        Ok(Some(handle))
    }
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.path)
            .field("blob_threshold", &self.blob_threshold)
            .finish_non_exhaustive()
    }
}

impl Store for FjallStore {
    fn backend(&self) -> Backend {
        Backend::Fjall
    }

    fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(handle) = self.keyspace(keyspace, false)? else {
            return Ok(None);
        };
        let value = handle.get(key).map_err(storage_error)?;
        Ok(value.map(|value| value.to_vec()))
    }

    fn scan(&self, keyspace: &str, range: KeyRange) -> Result<Scan> {
        let Some(handle) = self.keyspace(keyspace, false)? else {
            return Ok(Scan::empty());
        };
        let entries = handle.range(range.into_bounds()).map(|guard| {
            let (key, value) = guard.into_inner().map_err(storage_error)?;
            Ok((key.to_vec(), value.to_vec()))
        });
        Ok(Scan::new(entries))
    }

    fn keys_in(&self, keyspace: &str, range: &KeyRange) -> Result<Vec<Vec<u8>>> {
        let Some(handle) = self.keyspace(keyspace, false)? else {
            return Ok(Vec::new());
        };
        // Keys only: with key-value separation this never reads the blob files.
        handle
            .range(range.clone().into_bounds())
            .map(|guard| guard.key().map(|key| key.to_vec()).map_err(storage_error))
            .collect()
    }

    fn apply(&self, mutations: Vec<Mutation>) -> Result<()> {
        let mut batch = self.db.batch();
        for mutation in mutations {
            // A put creates its keyspace; deleting from a missing keyspace changes nothing.
            let creates = mutation.value.is_some();
            let Some(keyspace) = self.keyspace(&mutation.keyspace, creates)? else {
                continue;
            };
            match mutation.value {
                Some(value) => batch.insert(&keyspace, mutation.key, value),
                None => batch.remove(&keyspace, mutation.key),
            }
        }
        batch.commit().map_err(storage_error)
    }

    fn sync_to_disk(&self) -> Result<()> {
        self.db
            .persist(PersistMode::SyncData)
            .map_err(storage_error)
    }

    fn keyspaces(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for name in self.db.list_keyspace_names() {
            let name: &str = &name;
            if let Some(handle) = self.keyspace(name, false)? {
                if handle.first_key_value().is_some() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }
}
