//! The client library: connect to the monitors, cache the map, compute placement and talk
//! to OSDs directly (DESIGN.md §6).
//!
//! The monitor side lives in the `monclient` crate (shared with the OSDs and the launcher) and
//! is re-exported here under the same names:
//!
//! * [`config`]: the client's part of the cluster config file (monitors, timeouts);
//! * [`mon_client`]: [`MonClient`], which fails over between monitors for maps, status and
//!   commands;
//! * [`watch`]: [`MapWatch`], a map subscription that survives monitor failures;
//! * [`status`]: the monitors' status reply as plain, serializable types;
//! * [`error`]: [`ClientError`] and [`CommandErrorKind`] (monclient's), [`RadosError`].
//!
//! The OSD data path:
//!
//! * [`rados`]: [`Rados`], the connected client: map cache, request ids, the resend engine;
//! * [`ioctx`]: [`IoCtx`], object operations on one pool and namespace;
//! * [`op`]: compound [`WriteOp`] / [`ReadOp`] builders and their results;
//! * [`list`]: [`ObjectLister`], listing a pool PG by PG with a resumable cursor;
//! * `osd_conn`: the channel cache to OSDs; errors are [`RadosError`].
//!
//! The map and command types are re-exported ([`clustermap`], [`proto`]) so that users of
//! this crate (the CLI, tests) build commands and read maps with the same versions.
#![deny(missing_docs)]

pub mod error;
pub mod ioctx;
pub mod list;
pub mod op;
mod osd_conn;
pub mod rados;

pub use monclient::{config, mon_client, status, watch};

pub use clustermap;
pub use proto;

pub use bytes::Bytes;
pub use config::{ClientConfig, ConfigError};
pub use error::{ClientError, CommandErrorKind, CommandFailure, RadosError};
pub use ioctx::{IoCtx, MAX_NAME_BYTES};
pub use list::{ListCursor, ListEntry, ObjectLister};
pub use mon_client::{CommandOutcome, MonClient};
pub use op::{ObjectStat, OmapPage, OpResult, ReadOp, ReadOutcome, Version, WriteOp};
pub use rados::Rados;
pub use status::{ClusterStatus, HealthCheckStatus, HealthStatus, MonitorStatus, PgSummary};
pub use watch::{MapEvent, MapWatch};
