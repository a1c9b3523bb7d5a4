//! `shoal-osd`: one Shoal OSD. Configuration: the `[osd]` table of the cluster config file
//! (`-c`), overridden by these flags; the monitors' addresses come from the same file.
//! Logs go to stderr, filtered by `SHOAL_LOG` or `RUST_LOG` (default `info`). Stops
//! cleanly on SIGINT or SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use osd::daemon::{self, Options};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(name = "shoal-osd", about = "Shoal OSD daemon", version)]
struct Flags {
    /// The cluster config file (shoal.conf).
    #[arg(short = 'c', long = "config")]
    config: PathBuf,
    /// Data directory (the store, osd.addr, whoami).
    #[arg(long = "data")]
    data_dir: PathBuf,
    /// CRUSH host bucket (default: this machine's short hostname).
    #[arg(long)]
    host: Option<String>,
    /// Extra CRUSH location above the host, TYPE=NAME (repeatable), e.g. rack=r1; without
    /// a root=NAME pair, the topmost new bucket goes under root=default.
    #[arg(long = "crush-location")]
    crush_location: Vec<String>,
    /// CRUSH weight of a new OSD (default 1.0; 0 places it without data until it is
    /// reweighted). Like --host and --crush-location, read on its first boot only.
    #[arg(long)]
    weight: Option<f64>,
    /// Listen address (ip:port; port 0 picks one), overriding osd.listen.
    #[arg(long)]
    listen: Option<String>,
}

fn options(flags: Flags) -> anyhow::Result<Options> {
    let mut crush_location = Vec::new();
    for pair in &flags.crush_location {
        let Some((kind, name)) = pair.split_once('=') else {
            anyhow::bail!("--crush-location `{pair}` is not TYPE=NAME");
        };
        if kind.is_empty() || name.is_empty() {
            anyhow::bail!("--crush-location `{pair}` is not TYPE=NAME");
        }
        crush_location.push((kind.to_owned(), name.to_owned()));
    }
    Ok(Options {
        conf: flags.config,
        data_dir: flags.data_dir,
        host: flags.host,
        crush_location,
        weight: flags.weight,
        listen: flags.listen,
    })
}

async fn shutdown_signal() {
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    match terminate {
        Ok(mut terminate) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
                _ = terminate.recv() => tracing::info!("terminated"),
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; only SIGINT stops the OSD");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// mimalloc instead of glibc's malloc. With glibc an OSD spent about 17% of its CPU time
/// in malloc and free during 4 KiB `rados bench` writes (arena locks, consolidation), and
/// after the benchmarks it held 250-313 MiB RSS, of which `malloc_trim` could hand back
/// 136 MiB: freed memory stayed mapped. mimalloc returns freed pages to the kernel on its
/// own, shortly after they are freed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let filter = std::env::var("SHOAL_LOG")
        .ok()
        .and_then(|text| tracing_subscriber::EnvFilter::try_new(text).ok())
        .or_else(|| tracing_subscriber::EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let options = match options(Flags::parse()) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("shoal-osd: {error:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(osd::memory::release_freed_memory)
        // An idle blocking thread (listing, peering and recovery, status) ends after 1 s
        // rather than 10 s, so the pages it kept go back with it sooner.
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("shoal-osd: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(daemon::run(options, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("shoal-osd: {error:#}");
            ExitCode::FAILURE
        }
    }
}
