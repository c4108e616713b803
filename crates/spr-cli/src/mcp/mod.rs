//! `spr mcp`: the engine as an MCP server with one tool, `run_python`, over standard
//! input and output or, with `--http ADDR`, streamable HTTP at `/mcp`.
//!
//! One job per module: [`server`] is the handler both transports serve (the tool, its
//! listing, the policy it runs under), [`stdio`] and [`http`] are the transports,
//! [`admission`] bounds the requests the HTTP one reads at once, and [`render`] writes
//! the text a model reads (a run's result, the server's instructions).
//!
//! The model never chooses a policy. The operator names the profiles (`--policy`,
//! `--profile NAME=FILE`) and the client's configuration picks one: `--use-profile NAME`
//! on the command line a stdio client runs, `/mcp?profile=NAME` in the URL an HTTP client
//! is given. A call may only lower the profile's `timeout_seconds`.

mod admission;
mod http;
mod render;
mod server;
mod stdio;

use crate::engine_opts::{DockerConnOpts, EngineOpts};
use crate::error::{CliError, Exit};
use crate::front::{self, FrontOpts};
use crate::serve::EngineSlot;
use clap::Args;
use std::net::SocketAddr;

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Serve streamable HTTP at http://ADDR/mcp (such as 127.0.0.1:8080) instead of
    /// standard input and output. Beyond loopback a token is required.
    #[arg(long, value_name = "ADDR", value_parser = crate::front::parse_addr)]
    pub http: Option<SocketAddr>,
    /// The profile every call runs under on standard input and output [default: the
    /// --policy one]. Over HTTP the client's URL picks it: /mcp?profile=NAME.
    #[arg(long, value_name = "NAME", conflicts_with = "http")]
    pub use_profile: Option<String>,
    #[command(flatten)]
    pub front: FrontOpts,
    #[command(flatten)]
    pub engine: EngineOpts,
}

pub async fn run(args: McpArgs, conn: &DockerConnOpts) -> Result<Exit, CliError> {
    args.engine.check(conn)?;
    // Every operator mistake is refused before anything starts: a bad policy file, a
    // profile that does not exist, a token that is too short.
    let profiles = args.front.profiles()?;
    let fixed = args.use_profile.filter(|name| name != "default");
    if let Some(name) = &fixed {
        profiles
            .resolve(Some(name), None)
            .map_err(|e| CliError::usage(format!("--use-profile: {e}")))?;
    }
    let token = match args.http {
        Some(_) => args.front.token()?,
        None if args.front.token_file.is_some() => {
            return Err(CliError::usage(
                "--token-file only applies to spr mcp --http: a stdio client is the process that started spr",
            ))
        }
        None => None,
    };
    // Listening is the last check (a public address without a token, a port in use), and
    // it comes before the engine exists, so a refused server starts nothing.
    let listener = match args.http {
        Some(addr) => Some(front::bind(addr, token.as_ref(), "spr mcp").await?),
        None => None,
    };
    // The profile its runs use: the one fixed for the server, else the default.
    let warm_policy = match &fixed {
        Some(name) => profiles
            .resolve(Some(name), None)
            .map_err(|e| CliError::usage(format!("--use-profile: {e}")))?,
        None => profiles.default_policy().clone(),
    };
    let slot = EngineSlot::new(args.engine.clone(), conn.clone(), warm_policy);
    // Built in the background: a client's initialize and tools/list need no engine.
    // A build still going at the end is left to the process's exit.
    drop(slot.start());
    let server = server::SprMcp::new(profiles.clone(), fixed, slot.clone());
    let outcome = match listener {
        None => stdio::serve(server, &slot).await,
        Some(listener) => http::serve(listener, token, profiles, server, &slot).await,
    };
    slot.shutdown().await;
    match slot.unusable() {
        Some(err) => Err(err),
        None => outcome,
    }
}
