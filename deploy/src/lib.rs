//! The local cluster launcher (DESIGN.md §10), used by `shoal cluster up|down|status` and by
//! the integration tests: it starts `shoal-mon` processes under one directory, waits until
//! they elect a leader and serve the map, writes the config file clients use, records what
//! it started, and stops exactly that. Tests also use it to kill, restart, wipe and add
//! monitors.
//!
//! * [`spec`]: what to start ([`ClusterSpec`], [`MonTimings`]) and the config file it
//!   writes;
//! * [`binaries`]: finding `shoal-mon` (and later `shoal-osd`) on disk;
//! * [`process`]: spawning daemons and signalling them, only after checking through
//!   `/proc` that a pid still is the daemon we started;
//! * [`state`]: the state file (`cluster.json`) that records the processes;
//! * [`cluster`]: the launcher itself, [`Cluster`];
//! * [`error`]: the errors, [`DeployError`].
//!
//! Directory layout: `DIR/shoal.conf` (the config for monitors and clients),
//! `DIR/cluster.json` (the state), `DIR/mon.N/` (monitor N's data directory, with its
//! `mon.addr`), `DIR/log/mon.N.log` (its output).
//!
//! Deployment files for containers, Kubernetes and systemd come with a later issue.
#![deny(missing_docs)]

pub mod binaries;
pub mod cluster;
pub mod error;
pub mod process;
pub mod spec;
pub mod state;

pub use binaries::Binaries;
pub use cluster::{Cluster, ClusterReport, DownReport, MonReport, StopOutcome};
pub use error::DeployError;
pub use spec::{ClusterSpec, MonTimings};
