//! `shoal-mon`: one Shoal monitor. Configuration: the `[mon]` table of the TOML file given
//! with `-c` (or `SHOAL_CONF`), then `SHOAL_MON_*` variables, then these flags (see
//! `monitor::config` for every field). Stops cleanly on SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use monitor::{MonConfig, MonitorServer};

/// Command-line flags; each overrides the file and the environment.
#[derive(Parser, Debug)]
#[command(name = "shoal-mon", about = "Shoal monitor daemon", version)]
struct Flags {
    /// The cluster config file (its `[mon]` table); default $SHOAL_CONF.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// This monitor's Raft id (> 0).
    #[arg(long)]
    id: Option<u64>,
    /// Data directory.
    #[arg(long = "data")]
    data_dir: Option<PathBuf>,
    /// Listen address (ip:port; port 0 picks one and writes DATA/mon.addr).
    #[arg(long)]
    listen: Option<String>,
    /// Initial members as ID=ADDR,ID=ADDR.
    #[arg(long)]
    members: Option<String>,
    /// Join a running cluster (after `shoal mon add`) instead of bootstrapping.
    #[arg(long)]
    join: bool,
    /// Storage backend: fjall, sled or memory.
    #[arg(long)]
    backend: Option<String>,
    /// Cluster id (uuid) for a new cluster.
    #[arg(long)]
    fsid: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    show_config: bool,
}

fn load(flags: &Flags) -> anyhow::Result<MonConfig> {
    let path = flags
        .config
        .clone()
        .or_else(|| std::env::var_os("SHOAL_CONF").map(PathBuf::from));
    let mut config = match path {
        Some(path) => MonConfig::from_file(&path)?,
        None => MonConfig::default(),
    };
    config.apply_env(|name| std::env::var(name).ok())?;
    if let Some(id) = flags.id {
        config.id = id;
    }
    if let Some(dir) = &flags.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = &flags.listen {
        config.listen = Some(listen.clone());
    }
    if let Some(members) = &flags.members {
        config.members = monitor::config::parse_members(members)
            .map_err(|reason| anyhow::anyhow!("--members: {reason}"))?;
    }
    if flags.join {
        config.join = true;
    }
    if let Some(backend) = &flags.backend {
        config.backend = backend.clone();
    }
    if let Some(fsid) = &flags.fsid {
        config.fsid = Some(fsid.clone());
    }
    config.validate()?;
    Ok(config)
}

async fn run(config: MonConfig) -> anyhow::Result<()> {
    let server = MonitorServer::start(config).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        _ = terminate.recv() => tracing::info!("terminated; stopping"),
        _ = server.wait_node_stopped() => tracing::error!("the raft node stopped; exiting"),
    }
    server.stop().await?;
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    let config = match load(&flags) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("shoal-mon: {error:#}");
            return ExitCode::from(2);
        }
    };
    if flags.show_config {
        match toml::to_string_pretty(&toml::Table::from_iter([(
            "mon".to_owned(),
            toml::Value::try_from(&config).unwrap_or(toml::Value::Table(toml::Table::new())),
        )])) {
            Ok(text) => print!("{text}"),
            Err(error) => {
                eprintln!("shoal-mon: {error}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shoal-mon: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("shoal-mon: {error:#}");
            ExitCode::FAILURE
        }
    }
}
