//! `spr serve`: keep one warm engine and answer run requests, over standard input and
//! output (`--stdio`, for a trusted parent process) or over HTTP (`--http ADDR`, for
//! clients that are not trusted with the policy).
//!
//! The serve loops and the wire format are apart: requests and responses are
//! `spr_protocol::wire`; each loop here only moves them and decides what its clients
//! are trusted with.

mod engine;
mod http;
mod stdio;

pub use engine::{log_run, log_session, redact_session_ids, EngineSlot, Outcome};

use crate::engine_opts::{DockerConnOpts, EngineOpts};
use crate::error::{CliError, Exit};
use clap::{ArgGroup, Args};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("door").required(true).args(["stdio", "http"])))]
pub struct ServeArgs {
    /// Serve JSON lines on standard input and standard output (for a trusted parent process).
    #[arg(long)]
    pub stdio: bool,
    /// Serve the HTTP API on ADDR (IP:PORT such as 127.0.0.1:8080; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", value_parser = crate::front::parse_addr)]
    pub http: Option<SocketAddr>,
    /// TOML policy file of requests that name none: for --stdio, requests without "policy";
    /// for --http, the "default" profile (default: the built-in default policy).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    #[command(flatten)]
    pub engine: EngineOpts,
    // Last: its help heading would otherwise also cover the engine options after it.
    #[command(flatten)]
    pub http_opts: http::HttpOpts,
}

pub async fn run(args: ServeArgs, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    match args.http {
        Some(addr) => http::run(args, addr, conn).await,
        None => {
            debug_assert!(args.stdio, "clap requires --stdio or --http");
            // Ignored options are a trap (the original's ssh_port did nothing).
            if let Some(flag) = args.http_opts.given() {
                return Err(CliError::usage(format!("{flag} only applies to --http")));
            }
            stdio::run(args, conn).await
        }
    }
}
