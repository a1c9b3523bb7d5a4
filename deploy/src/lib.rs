//! The local cluster launcher (DESIGN.md §10), used by `shoal cluster up|down|status` and by
//! the integration tests: it starts `shoal-mon` and `shoal-osd` processes under one
//! directory, waits until the monitors elect a leader, every OSD booted and the cluster is
//! healthy, writes the config file daemons and clients use, records what it started, and
//! stops exactly that. Tests also use it to kill, restart, wipe and add monitors and OSDs,
//! and to wait for health or for an OSD to be marked down.
//!
//! * [`spec`]: what to start ([`ClusterSpec`], [`MonTimings`], [`OsdTimings`],
//!   [`OsdSettings`]) and the config file it writes;
//! * [`binaries`]: finding `shoal-mon` and `shoal-osd` on disk;
//! * [`process`]: spawning daemons and signalling them, only after checking through
//!   `/proc` that a pid still is the daemon we started;
//! * [`state`]: the state file (`cluster.json`) that records the processes;
//! * [`cluster`]: the launcher itself, [`Cluster`];
//! * [`error`]: the errors, [`DeployError`].
//!
//! Directory layout: `DIR/shoal.conf` (the config for daemons and clients),
//! `DIR/cluster.json` (the state), `DIR/mon.N/` (monitor N's data directory, with its
//! `mon.addr`), `DIR/osd.N/` (OSD number N's, with its `osd.addr` and `whoami`),
//! `DIR/log/mon.N.log` and `DIR/log/osd.N.log` (their output).
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
pub use cluster::{Cluster, ClusterReport, DownReport, MonReport, OsdReport, StopOutcome};
pub use error::DeployError;
pub use spec::{ClusterSpec, MonTimings, OsdSettings, OsdTimings, LOCAL_OSD_CAPACITY};
