//! The monitor client, shared by the client library (`librados`), the OSDs and the launcher
//! (`deploy`): it owns everything that talks to the monitors and nothing of the data path.
//!
//! * [`config`]: [`ClientConfig`], the `[client]` table of the cluster config file (monitor
//!   addresses, also taken from `[[mon.members]]`; timeouts) and its environment overrides;
//! * [`mon_client`]: [`MonClient`], which fails over between monitors for maps, status and
//!   commands;
//! * [`watch`]: [`MapWatch`], a map subscription that survives monitor failures;
//! * [`status`]: the monitors' status reply as plain, serializable types;
//! * [`error`]: [`ClientError`], [`CommandFailure`] and [`CommandErrorKind`]; configuration
//!   errors are [`ConfigError`].
//!
//! The map and command types are re-exported ([`clustermap`], [`proto`]) so that users of
//! this crate build commands and read maps with the same versions.
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod mon_client;
pub mod status;
pub mod watch;

pub use clustermap;
pub use proto;

pub use config::{ClientConfig, ConfigError};
pub use error::{ClientError, CommandErrorKind, CommandFailure, MonitorAttempt};
pub use mon_client::{CommandOutcome, MonClient};
pub use status::{ClusterStatus, HealthCheckStatus, HealthStatus, MonitorStatus, PgSummary};
pub use watch::{MapEvent, MapWatch};
