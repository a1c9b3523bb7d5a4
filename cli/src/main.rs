//! `shoal`: the admin CLI. Each top-level subcommand lives in its own module (`crush` in
//! [`crush_cmd`]); `status`, `osd`, `pool`, `rados`, `cluster` and the rest are added as
//! siblings in [`Command`]. Errors print as `shoal: error: ...` with their causes, and the
//! exit code is non-zero (1 for a failed command, 2 for a usage error). Output goes through
//! [`out`]'s `outln!`/`out!`, so a reader that closes early (`| head`) ends `shoal` quietly
//! with status 0.

#[macro_use]
mod out;

mod admin;
mod crush_cmd;
mod rados;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Shoal's admin CLI.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about)]
#[command(arg_required_else_help = true)]
struct Cli {
    #[command(flatten)]
    global: admin::GlobalArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// CRUSH map tools (offline, like crushtool).
    Crush(crush_cmd::CrushArgs),
    /// Object commands on a pool (like Ceph's rados tool): put, get, ls, bench, ...
    Rados(rados::RadosArgs),
    #[command(flatten)]
    Admin(admin::AdminCommand),
}

/// mimalloc: `rados bench` reading 4 MiB objects spent a quarter of its time in page
/// faults with glibc, which maps and unmaps every buffer of that size afresh.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Crush(args)) => crush_cmd::run(args),
        Some(Command::Rados(args)) => rados::run(args, &cli.global),
        Some(Command::Admin(command)) => admin::run(command, &cli.global),
        None => admin::run_default(&cli.global),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if out::is_closed_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shoal: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
