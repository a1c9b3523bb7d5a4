//! Choosing and opening a backend: [`Backend`] (as named in config files), [`Options`] and
//! [`open`].

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::StoreEngine;
use crate::fjall_store::FjallStore;
use crate::memory_store::MemoryStore;
use crate::sled_store::SledStore;
use crate::{Engine, Error, Result};

/// A storage backend, written in config files as `fjall`, `sled` or `memory` (serde and
/// [`FromStr`] both accept these names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// fjall 3: an LSM tree per keyspace, one journal, key-value separation for large
    /// values. The default: it won `kv::bench` on this project's machines, at about raw
    /// speed for 4 KiB synced puts, half of raw for 4 MiB (sled: a quarter) and raw's disk
    /// space (sled: 2.5 times the bytes written).
    #[default]
    Fjall,
    /// sled 0.34, with an fdatasync of its files after each flush so syncs are durable.
    Sled,
    /// In memory only: nothing survives the process. For tests and caches.
    Memory,
}

impl Backend {
    /// Every backend, in a fixed order.
    pub const ALL: [Backend; 3] = [Backend::Fjall, Backend::Sled, Backend::Memory];

    /// The name used in config files.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Fjall => "fjall",
            Backend::Sled => "sled",
            Backend::Memory => "memory",
        }
    }

    /// Whether data written and synced survives a restart.
    pub fn is_durable(self) -> bool {
        !matches!(self, Backend::Memory)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Backend::ALL
            .into_iter()
            .find(|backend| backend.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| Error::UnknownBackend {
                name: name.to_owned(),
            })
    }
}

/// Tuning that applies when opening an engine. The defaults suit a daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Bytes of block cache (fjall) or page cache (sled). Default 64 MiB.
    pub cache_bytes: u64,
    /// fjall only: values of at least this many bytes go to blob files instead of the LSM
    /// tree (key-value separation), so compactions do not rewrite them; `None` keeps every
    /// value inline. Fixed when a keyspace is created. Default 16 KiB: 4 KiB metadata stays
    /// inline, the OSDs' 64 KiB data chunks are separated.
    pub fjall_blob_threshold: Option<u32>,
    /// fjall only: size at which one keyspace's memtable is flushed. fjall's default (64 MiB
    /// per keyspace, with no overall cap in fjall 3.1) would let an OSD with many PGs grow
    /// far past its memory budget. Default 8 MiB.
    pub fjall_memtable_bytes: u64,
    /// fjall only: bytes all keyspaces' active memtables may hold together; past it the
    /// largest one is flushed (what RocksDB's write buffer manager does; fjall 3.1 does
    /// not enforce its own). This bounds memory with many keyspaces without making every
    /// memtable small. Default 64 MiB.
    pub fjall_write_buffer_bytes: u64,
    /// fjall only: lz4-compress values of 4 KiB and more in the journal and in blob files
    /// (fixed for blob files when a keyspace is created; every journal entry and blob file
    /// records its own compression, so either setting reads what the other wrote). Off for
    /// callers that compress their values themselves: fjall would compress each large value
    /// twice. Default on.
    pub fjall_compression: bool,
    /// fjall only: make batches durable through Shoal's own write-ahead log (a ring
    /// overwritten in place with direct synchronous writes, see `fjall_wal`) instead of an
    /// fdatasync of fjall's journal each time. Default on.
    pub fjall_wal: bool,
    /// fjall only: the size of a new write-ahead log's ring (an existing log keeps its
    /// size). fjall's journal is fdatasynced once per half of it logged; each of those
    /// syncs writes back that much of the journal at once. Default 8 MiB (at least 1 MiB).
    pub fjall_wal_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache_bytes: 64 << 20,
            fjall_blob_threshold: Some(16 << 10),
            fjall_memtable_bytes: 8 << 20,
            fjall_write_buffer_bytes: 64 << 20,
            fjall_compression: true,
            fjall_wal: true,
            fjall_wal_bytes: 8 << 20,
        }
    }
}

/// Opens (creating it if needed) the store in directory `path` with the given backend.
/// The memory backend ignores `path`. A directory is opened by one engine at a time; a
/// second open while the first is alive fails with [`Error::Storage`].
pub fn open(backend: Backend, path: &Path, options: &Options) -> Result<Arc<dyn Engine>> {
    if backend.is_durable() {
        std::fs::create_dir_all(path)
            .map_err(|error| Error::io("create directory", path, error))?;
    }
    Ok(match backend {
        Backend::Fjall => Arc::new(StoreEngine::new(FjallStore::open(path, options)?)),
        Backend::Sled => Arc::new(StoreEngine::new(SledStore::open(path, options)?)),
        Backend::Memory => Arc::new(StoreEngine::new(MemoryStore::default())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_round_trip_and_bad_names_are_refused() {
        for backend in Backend::ALL {
            assert_eq!(backend.name().parse::<Backend>().unwrap(), backend);
        }
        assert_eq!(" FJALL ".parse::<Backend>().unwrap(), Backend::Fjall);
        assert!(matches!(
            "rocksdb".parse::<Backend>(),
            Err(Error::UnknownBackend { name }) if name == "rocksdb"
        ));
    }

    #[test]
    fn config_files_name_backends_like_from_str() {
        for backend in Backend::ALL {
            let json = serde_json::to_string(&backend).unwrap();
            assert_eq!(json, format!("\"{}\"", backend.name()));
            assert_eq!(serde_json::from_str::<Backend>(&json).unwrap(), backend);
        }
        assert!(serde_json::from_str::<Backend>("\"rocksdb\"").is_err());
    }
}
