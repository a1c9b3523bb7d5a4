//! The cluster-management commands of `shoal`, shaped like Ceph's `ceph` tool: `status`,
//! `health`, `mon ...`, `osd ...` (OSDs, pools, the live CRUSH map, `osd map`), the local
//! launcher's `cluster up|down|status`, and `bench mon`.
//!
//! This module owns the global options (`-c CONF`, `--format`, `-s`), connecting to the
//! monitors, and turning client errors into messages; each command family lives in its own
//! module: [`status`] (status, health, mon), [`osd`] (osd and pool), [`crush`] (osd crush),
//! [`cluster`] (the launcher), [`bench`]. Output helpers are in [`output`].
//!
//! Reads fetch the map at the leader's latest epoch (falling back, with a warning, to
//! whatever map a monitor serves when there is no quorum); writes are monitor commands whose
//! reply comes once the change is committed.

mod bench;
mod cluster;
mod crush;
mod osd;
mod osd_df;
pub(crate) mod output;
mod pg;
mod status;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use librados::clustermap::ClusterMap;
use librados::proto::mon::{command, Command};
use librados::{ClientConfig, ClientError, CommandOutcome, MonClient};

pub use output::Format;

/// `shoal`'s own options that the cluster commands use.
///
/// `--format` is accepted both before the subcommand (here) and anywhere after it (see
/// [`OutputArgs`]); it is not one global flag because `shoal crush movement` has a
/// `--format` of its own.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Cluster config file (its `[client]` table and monitor addresses); default $SHOAL_CONF.
    #[arg(short = 'c', long = "conf", global = true, value_name = "CONF")]
    pub conf: Option<PathBuf>,
    /// Output format of the cluster commands: plain, json or json-pretty.
    #[arg(
        id = "top_format",
        short = 'f',
        long = "format",
        value_name = "FORMAT",
        value_enum
    )]
    pub format: Option<Format>,
    /// Same as `shoal status` (like `ceph -s`).
    #[arg(short = 's', long = "status")]
    pub status: bool,
}

/// `--format` after a cluster subcommand (`shoal osd tree --format json`).
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct OutputArgs {
    /// Output format: plain, json or json-pretty.
    #[arg(short = 'f', long = "format", global = true, value_enum)]
    pub format: Option<Format>,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    out: OutputArgs,
}

/// `health [detail]`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// `detail`: list every failing check with its details.
    #[arg(value_enum)]
    detail: Option<Detail>,
    #[command(flatten)]
    out: OutputArgs,
}

/// The `detail` keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Detail {
    /// Show details.
    Detail,
}

/// The cluster-management subcommands (flattened into `shoal`'s own).
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Cluster status: health, monitors, OSDs, pools (like `ceph status`).
    Status(StatusArgs),
    /// Cluster health: HEALTH_OK, HEALTH_WARN or HEALTH_ERR with the failing checks.
    Health(HealthArgs),
    /// Monitors: stat, add, rm.
    Mon(status::MonArgs),
    /// OSDs, pools, the CRUSH map and object placement of the running cluster.
    Osd(osd::OsdArgs),
    /// Local clusters under one directory: up, down, status.
    Cluster(cluster::ClusterArgs),
    /// Benchmarks: monitor commands against a running cluster, or the local storage
    /// engines.
    Bench(bench::BenchArgs),
    /// Placement groups: dump, stat (from the OSDs' own reports).
    Pg(pg::PgArgs),
}

/// Runs a cluster command.
pub fn run(command: AdminCommand, global: &GlobalArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(dispatch(command, global))
}

/// Runs `shoal` without a subcommand: `-s` means `status`.
pub fn run_default(global: &GlobalArgs) -> Result<()> {
    if global.status {
        run(
            AdminCommand::Status(StatusArgs {
                out: OutputArgs::default(),
            }),
            global,
        )
    } else {
        anyhow::bail!("no command given; see `shoal --help`")
    }
}

async fn dispatch(command: AdminCommand, global: &GlobalArgs) -> Result<()> {
    let out = match &command {
        AdminCommand::Status(args) => args.out,
        AdminCommand::Health(args) => args.out,
        AdminCommand::Mon(args) => args.out,
        AdminCommand::Osd(args) => args.out,
        AdminCommand::Cluster(args) => args.out,
        AdminCommand::Bench(args) => args.out,
        AdminCommand::Pg(args) => args.out,
    };
    let format = out.format.or(global.format).unwrap_or(Format::Plain);
    match command {
        AdminCommand::Cluster(args) => cluster::run(args, format).await,
        AdminCommand::Status(_) => status::status(&Session::open(global, format)?).await,
        AdminCommand::Health(args) => {
            status::health(&Session::open(global, format)?, args.detail.is_some()).await
        }
        AdminCommand::Mon(args) => status::mon(&Session::open(global, format)?, args).await,
        AdminCommand::Osd(args) => osd::run(&Session::open(global, format)?, args).await,
        AdminCommand::Bench(args) if !args.needs_cluster() => bench::run_local(args, format).await,
        AdminCommand::Bench(args) => bench::run(&Session::open(global, format)?, args).await,
        AdminCommand::Pg(args) => pg::run(&Session::open(global, format)?, args).await,
    }
}

/// A connection to the monitors plus the output format.
pub struct Session {
    client: MonClient,
    format: Format,
}

impl Session {
    fn open(global: &GlobalArgs, format: Format) -> Result<Self> {
        let config = ClientConfig::load(global.conf.as_deref())?;
        Ok(Session {
            client: MonClient::new(config)?,
            format,
        })
    }

    /// The map as of the leader's latest epoch; without a quorum, the freshest map a
    /// monitor serves, with a warning on stderr.
    async fn map(&self) -> Result<Arc<ClusterMap>> {
        match self.client.latest_map().await {
            Ok(map) => Ok(map),
            Err(error) if error.is_unavailable() => {
                let map = self.client.get_map().await.map_err(anyhow::Error::from)?;
                eprintln!(
                    "warning: {error}; showing monitor's map at epoch {} (it may be stale)",
                    map.epoch()
                );
                Ok(map)
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Runs a command and prints its result: the monitors' message, or JSON.
    async fn command(&self, kind: command::Kind) -> Result<CommandOutcome> {
        let outcome = self
            .client
            .command(Command { kind: Some(kind) })
            .await
            .map_err(command_error)?;
        match self.format {
            Format::Plain => outln!("{}", outcome.message),
            _ => self.format.print_json(&serde_json::to_value(&outcome)?),
        }
        Ok(outcome)
    }
}

/// A command error as the CLI shows it: Ceph's `Error EINVAL: ...` shape.
fn command_error(error: ClientError) -> anyhow::Error {
    match error.command_kind() {
        Some(kind) => {
            let code = match kind.errno() {
                2 => "ENOENT",
                5 => "EIO",
                11 => "EAGAIN",
                16 => "EBUSY",
                17 => "EEXIST",
                22 => "EINVAL",
                110 => "ETIMEDOUT",
                _ => "EIO",
            };
            anyhow::anyhow!("{code}: {error}")
        }
        None => error.into(),
    }
}
