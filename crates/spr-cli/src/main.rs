//! The `spr` command-line interface: argument parsing and dispatch. Each command lives
//! in its own module; this file only wires them to clap, the runtime and exit codes.

mod admin;
mod doctor;
mod engine_opts;
mod error;
mod front;
mod local_file;
mod logging;
mod mcp;
mod output;
mod policy;
mod policy_file;
mod retry;
mod run;
mod run_files;
mod serve;

use clap::{Parser, Subcommand};
use error::{CliError, Exit};
use std::process::ExitCode;
use std::time::Duration;

const ABOUT: &str = "spr: run untrusted, LLM-written Python with guardrails";

const LONG_ABOUT: &str = "\
spr: run untrusted, LLM-written Python with guardrails.

Code runs under a policy (imports, builtins, globals, time, memory, output) on a warm
local engine or in hardened Docker containers, and every run ends in one result.

The admin commands (list, container, stop, kill, cleanup) manage only spr-managed
Docker resources: they never modify containers or images that spr did not create.";

const AFTER_HELP: &str = "\
Quick examples:
  spr run -c 'result = 2 + 2'
  spr run script.py --input '{\"x\": 81}' --json
  echo 'print(\"hi\")' | spr run -
  spr serve --stdio --policy policy.toml
  spr serve --http 127.0.0.1:8080 --policy policy.toml
  spr mcp --policy policy.toml
  spr mcp --http 127.0.0.1:8080 --profile strict=strict.toml
  spr policy check policy.toml
  spr list containers

Remote examples:
  spr --docker-context remote list containers
  spr --docker-host ssh://ubuntu@server list images
  spr --ssh-host server --ssh-user ubuntu --ssh-port 2222 --ssh-key-path ~/.ssh/id_ed25519 stop all
  spr run --engine docker --docker-host tcp://127.0.0.1:2375 -c 'result = 1'";

#[derive(Debug, Parser)]
#[command(
    name = "spr",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    propagate_version = true
)]
struct Cli {
    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace); SPR_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(flatten)]
    docker: engine_opts::DockerConnOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Python code once and report the result (exit 0 ok, 1 failed, 2 usage or
    /// policy error, 124 timeout, 125 engine error).
    Run(run::RunArgs),
    /// Serve run requests as JSON lines on stdin/stdout or over HTTP, keeping the engine warm.
    Serve(serve::ServeArgs),
    /// Serve the tool run_python to MCP clients, over stdin/stdout or streamable HTTP.
    Mcp(mcp::McpArgs),
    /// Check or show policy files.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Report what this machine offers spr (python, uv, venv, Docker).
    Doctor(doctor::DoctorArgs),
    /// List spr-managed containers or images.
    #[command(subcommand)]
    List(admin::ListCommand),
    /// Show one spr-managed container, by id prefix or exact name.
    Container(admin::ContainerArgs),
    /// Stop spr-managed containers.
    #[command(subcommand)]
    Stop(admin::StopCommand),
    /// Kill an spr-managed container.
    #[command(subcommand)]
    Kill(admin::KillCommand),
    /// Remove stopped or orphaned spr-managed containers and unused spr-managed images.
    Cleanup(admin::CleanupArgs),
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits 2, the contract's usage code.
    let cli = Cli::parse();
    let server = matches!(cli.command, Command::Serve(_) | Command::Mcp(_));
    if let Err(e) = logging::init(server, cli.verbose) {
        output::print_error(&CliError::usage(e));
        return Exit::Usage.into();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::print_error(
                &CliError::infrastructure("cannot start the async runtime").caused_by(e),
            );
            return Exit::Infrastructure.into();
        }
    };
    let outcome = runtime.block_on(dispatch(cli));
    // A venv still being created on the blocking pool (after Ctrl-C) must not hold the
    // exit; its child processes are in the engine's hands.
    runtime.shutdown_timeout(Duration::from_millis(500));
    match outcome {
        Ok(exit) => exit.into(),
        Err(err) => {
            output::print_error(&err);
            err.exit.into()
        }
    }
}

async fn dispatch(cli: Cli) -> Result<Exit, CliError> {
    let conn = &cli.docker;
    match cli.command {
        Command::Run(args) => run::run(args, conn).await,
        Command::Serve(args) => serve::run(args, conn).await,
        Command::Mcp(args) => mcp::run(args, conn).await,
        Command::Policy(command) => policy::run(command),
        Command::Doctor(args) => doctor::run(args, conn).await,
        Command::List(command) => admin::list(command, conn).await,
        Command::Container(args) => admin::container(args, conn).await,
        Command::Stop(command) => admin::stop(command, conn).await,
        Command::Kill(command) => admin::kill(command, conn).await,
        Command::Cleanup(args) => admin::cleanup(args, conn).await,
    }
}

/// Resolves on SIGINT or SIGTERM, so long-running commands can stop their engine
/// (and its worker processes) before exiting.
pub async fn interrupted() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
