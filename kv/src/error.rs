//! The crate's error type: bad input (keyspace names, key and value sizes, backend names) is
//! kept apart from failures of the storage underneath.

use crate::Backend;

/// Result alias for engine operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything an engine operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A keyspace name broke the rules in [`crate::keys`].
    #[error("invalid keyspace name {name:?}: {reason}")]
    InvalidKeyspace {
        /// The rejected name.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// Keys must hold at least one byte (an LSM tree cannot store the empty key).
    #[error("empty key")]
    EmptyKey,
    /// The key was [`crate::keys::RESERVED_KEY`] (a single zero byte), which the engine
    /// keeps for itself.
    #[error("the key 0x00 is reserved by the engine")]
    ReservedKey,
    /// A key was longer than [`crate::keys::MAX_KEY_LEN`].
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value was longer than [`crate::keys::MAX_VALUE_LEN`].
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A backend name from a config file named no known backend.
    #[error("unknown storage backend {name:?} (expected one of: fjall, sled, memory)")]
    UnknownBackend {
        /// The name that was given.
        name: String,
    },
    /// A file-system operation the engine does itself (directories, fdatasync) failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The backend's own library reported an error (I/O, corruption, a locked directory).
    #[error("{backend} engine: {source}")]
    Storage {
        /// Which backend failed.
        backend: Backend,
        /// The library's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An earlier write or sync failed, so what is on disk is unknown: the engine refuses
    /// further writes and syncs; reopen it (restart the daemon) to recover.
    #[error("engine refused the operation: an earlier write or sync failed; reopen it")]
    Poisoned,
}

impl Error {
    pub(crate) fn storage(
        backend: Backend,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            backend,
            source: Box::new(source),
        }
    }

    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<std::path::PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            operation,
            path: path.into(),
            source,
        }
    }
}
