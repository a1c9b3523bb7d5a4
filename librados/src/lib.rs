//! The client library: connect to the monitors, cache the map, compute placement and talk
//! to OSDs directly (DESIGN.md §6).
//!
//! What exists today is the monitor side:
//!
//! * [`config`]: the client's part of the cluster config file (the monitors' addresses);
//! * [`mon_client`]: [`MonClient`], which fails over between monitors for maps, status and
//!   commands;
//! * [`watch`]: [`MapWatch`], a map subscription that survives monitor failures;
//! * [`status`]: the monitors' status reply as plain, serializable types;
//! * [`error`]: [`ClientError`] and [`CommandErrorKind`].
//!
//! The OSD data path (`Rados`, `IoCtx`, object operations) comes with the OSDs.
//!
//! The map and command types are re-exported ([`clustermap`], [`proto`]) so that users of
//! this crate (the CLI, tests) build commands and read maps with the same versions.
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod mon_client;
pub mod status;
pub mod watch;

pub use clustermap;
pub use proto;

pub use config::{ClientConfig, ConfigError};
pub use error::{ClientError, CommandErrorKind, CommandFailure};
pub use mon_client::{CommandOutcome, MonClient};
pub use status::{ClusterStatus, HealthCheckStatus, HealthStatus, MonitorStatus, PgSummary};
pub use watch::{MapEvent, MapWatch};
