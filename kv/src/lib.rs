//! The ordered key-value engine that monitors and OSDs keep their state in (DESIGN.md §5).
//!
//! One small object-safe trait, [`Engine`]: point reads, ordered range scans (both
//! directions), atomic write batches and a durable [`Engine::sync`] that concurrent callers
//! share (group commit). Data lives in named *keyspaces* (see [`keys`]): the monitors keep
//! their Raft log and state machine in separate keyspaces, the OSDs one keyspace per PG.
//!
//! Three backends pass one conformance suite (`tests/conformance.rs`) and one crash test
//! (`tests/crash.rs`): [`Backend::Fjall`] (an LSM tree with key-value separation for large
//! values, made durable through our own write-ahead log overwritten in place; the default),
//! [`Backend::Sled`] (sled 0.34, made durable by fdatasyncing its files
//! after each flush) and [`Backend::Memory`] (no persistence: tests and caches).
//! On fjall with its log, [`WriteBatch::put_log_only`] keeps a value in the log alone, for a
//! caller that writes it elsewhere itself and makes that copy durable in a hook the log runs
//! before it drops frames ([`Engine::on_log_release`]): the OSDs' deferred writes.
//! [`bench`] measures them against raw append+fdatasync on the same disk.
//!
//! ```
//! use kv::{Backend, KeyRange, Options, WriteBatch};
//! # fn main() -> Result<(), kv::Error> {
//! let engine = kv::open(Backend::Memory, std::path::Path::new("unused"), &Options::default())?;
//! let mut batch = WriteBatch::new();
//! batch.put("raft_log", 1u64.to_be_bytes(), b"entry one".to_vec());
//! batch.put("raft_state", b"hard_state".to_vec(), b"term=1".to_vec());
//! engine.write_sync(batch)?; // both keys, atomically and durably
//! let log: Vec<_> = engine.scan("raft_log", KeyRange::all())?.collect::<Result<_, _>>()?;
//! assert_eq!(log.len(), 1);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod backend;
mod batch;
pub mod bench;
mod engine;
mod error;
mod fjall_checkpoint;
mod fjall_idle;
mod fjall_journal;
mod fjall_store;
mod fjall_wal;
mod group_commit;
pub mod keys;
mod memory_store;
mod range;
mod sled_store;

pub use backend::{open, Backend, Options};
pub use batch::WriteBatch;
pub use engine::{Engine, Entry, LogReleaseHook, Scan, Visitor};
pub use error::{Error, Result};
pub use range::KeyRange;
