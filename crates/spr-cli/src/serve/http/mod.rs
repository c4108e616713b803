//! `spr serve --http ADDR`: the HTTP API of docs/HTTP.md for clients that are not
//! trusted with the policy.
//!
//! One job per module: [`routes`] (the router and the small handlers), [`runs`]
//! (`POST /v1/runs`), [`sessions`] (`/v1/sessions` and the runs in them), [`limits`] (admission and the queue), [`metrics`] (`GET
//! /metrics`), [`errors`] (every refusal and its status), [`layers`] (access log, JSON
//! errors, loopback names), [`server`] (the drain), [`state`] (what requests share).
//! Reading a body under its cap and serving connections are shared with `spr mcp
//! --http` (`crate::front`).
//!
//! Invariants:
//! - every error is `{"error": ...}` JSON, whoever made it (a handler, axum, a layer);
//! - client text reaches a message or a log line only escaped and cut;
//! - request bodies in memory are bounded by `(capacity + queue) × --max-body-mb`;
//! - each `POST /v1/runs` that reaches its handler gets one info log line and one count,
//!   and so does each session operation (a run in a session counts as a run too);
//! - a run whose client hangs up is cancelled, and its worker freed (a cell cancelled
//!   this way loses its session).

mod errors;
mod layers;
mod limits;
mod metrics;
mod routes;
mod runs;
mod server;
mod sessions;
mod state;

use super::{EngineSlot, ServeArgs};
use crate::engine_opts::DockerConnOpts;
use crate::error::{CliError, Exit};
use crate::front::{bind, Profiles, Token};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// Queue places per worker when `--queue` is not given: enough to absorb a burst of a
/// few clients per worker, few enough that a waiting request is served within a few
/// runs' time.
pub const QUEUE_PER_WORKER: usize = 8;

/// Default of `--max-body-mb`: far more than code and input usually need, and what keeps
/// the bodies of a full queue within a few hundred MiB.
pub const DEFAULT_MAX_BODY_MB: u32 = 8;

/// The options of `spr serve --http` (each refused without `--http`, see [`HttpOpts::given`]).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP server")]
pub struct HttpOpts {
    /// A named profile (policy file) that requests pick with "profile": NAME; repeatable.
    /// --policy is the profile called "default".
    #[arg(
        long = "profile",
        value_name = "NAME=FILE",
        value_parser = crate::front::parse_profile
    )]
    pub profiles: Vec<(String, PathBuf)>,
    /// File holding the bearer token every route but /v1/health requires [default:
    /// $SPR_TOKEN]. Without a token only loopback addresses may be served.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Largest request body taken, in MiB (larger ones get 413) [default: 8].
    #[arg(
        long,
        value_name = "MIB",
        value_parser = clap::value_parser!(u32).range(1..=1024)
    )]
    pub max_body_mb: Option<u32>,
    /// Run requests that may wait for a free worker beyond the ones running; more get
    /// 429 [default: 8 per worker].
    #[arg(long, value_name = "N")]
    pub queue: Option<usize>,
}

impl HttpOpts {
    /// The first of these options given, if any: `--stdio` refuses them.
    pub fn given(&self) -> Option<&'static str> {
        if !self.profiles.is_empty() {
            Some("--profile")
        } else if self.token_file.is_some() {
            Some("--token-file")
        } else if self.max_body_mb.is_some() {
            Some("--max-body-mb")
        } else if self.queue.is_some() {
            Some("--queue")
        } else {
            None
        }
    }
}

pub async fn run(
    args: ServeArgs,
    addr: SocketAddr,
    conn: &DockerConnOpts,
) -> Result<Exit, CliError> {
    args.engine.check(conn)?;
    // Everything the operator gave is checked before the port is taken: a bad profile
    // or token is a usage error of the server, never a failure of every request.
    let profiles = Profiles::load(args.policy.as_deref(), &args.http_opts.profiles)?;
    let token = Token::load(args.http_opts.token_file.as_deref())?.map(Arc::new);
    let listener = bind(addr, token.as_deref(), "spr serve").await?;

    let capacity = args.engine.concurrency();
    let queue = args.http_opts.queue.unwrap_or(capacity * QUEUE_PER_WORKER);
    let max_body_mb = args.http_opts.max_body_mb.unwrap_or(DEFAULT_MAX_BODY_MB);
    let slot = EngineSlot::new(
        args.engine.clone(),
        conn.clone(),
        profiles.default_policy().clone(),
    );
    let init = slot.start();
    let app = Arc::new(state::App {
        profiles,
        slot: slot.clone(),
        limits: limits::Limits::new(capacity, queue),
        metrics: metrics::Metrics::new(),
        max_body: (max_body_mb as usize) << 20,
        token,
    });
    tracing::debug!(capacity, queue, max_body_mb, "serving");
    let stopped = server::serve(listener, routes::router(app.clone()), app).await;
    // An engine still being built is left to the runtime's shutdown; a built one stops.
    init.abort();
    slot.shutdown().await;
    if let Some(err) = slot.unusable() {
        return Err(err);
    }
    match stopped {
        server::Stopped::Drained => {
            tracing::info!("drained: every run answered, the engine stopped");
            Ok(Exit::Ok)
        }
        server::Stopped::Forced => Ok(Exit::Interrupted),
    }
}
