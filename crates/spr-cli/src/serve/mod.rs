//! `spr serve`: keep one warm engine and answer run requests, over standard input and
//! output (`--stdio`, for a trusted parent process).
//!
//! The serve loops and the wire format are apart: requests and responses are
//! `spr_protocol::wire`; each loop here only moves them and decides what its clients
//! are trusted with.

mod engine;
mod stdio;

pub use engine::{log_run, EngineSlot, Outcome};

use crate::engine_opts::{DockerConnOpts, EngineOpts};
use crate::error::{CliError, Exit};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve JSON lines on standard input and standard output.
    #[arg(long, required = true)]
    pub stdio: bool,
    /// TOML policy file for requests that carry no "policy" (default: the built-in default policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineOpts,
}

pub async fn run(args: ServeArgs, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    debug_assert!(args.stdio, "clap requires --stdio");
    stdio::run(args, conn).await
}
