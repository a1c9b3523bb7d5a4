//! The monitor (`shoal-mon`): Raft (raft-rs) over the `kv` engine, the cluster-map state
//! machine, the monitor gRPC services (mon.proto, monpeer.proto) and the failure policy
//! (DESIGN.md §3-§4).
//!
//! * [`config`]: the TOML configuration, environment overrides and validation;
//! * [`store`]: raft-rs storage (log, hard state, conf state, snapshots) in the `kv` engine;
//! * [`node`]: the thread that owns the Raft node and runs the Ready loop;
//! * [`state`]: the replicated state machine (map, monitors, incrementals) and its commands;
//! * [`commands`]: mon.proto commands to replicated commands, with argument checks;
//! * [`transport`]: Raft messages between monitors over gRPC;
//! * [`service`]: the client-facing and OSD-facing gRPC services, forwarding to the leader;
//! * [`policy`]: the leader's soft state, the failure policy and the OSD fullness rule;
//! * [`server`]: starting and stopping a whole monitor ([`MonitorServer`]).
#![deny(missing_docs)]

pub mod commands;
pub mod config;
pub mod error;
mod logger;
pub mod node;
pub mod policy;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod transport;

pub use config::{ConfigError, MemberConfig, MonConfig};
pub use error::{MonError, SubmitError};
pub use server::{read_addr_file, MonitorServer, ADDR_FILE};
pub use service::{
    decode_incremental, decode_map, encode_incremental, encode_map, FORWARDED_HEADER,
};
pub use state::{CommandError, MapView, Member, MonCommand};
