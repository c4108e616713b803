//! `spr mcp --http ADDR`: MCP's streamable HTTP transport at `/mcp`, in an axum router,
//! behind the bearer token and the profile the client's URL names (`/mcp?profile=NAME`).
//!
//! Clients of the handshake era (MCP before 2026-07-28, what desktop clients speak today)
//! get MCP sessions (`Mcp-Session-Id`), because that is where their cancellations go: a
//! `notifications/cancelled` reaches the call it names, and closing the session (`DELETE
//! /mcp`, or five idle minutes) cancels every call in it. Newer clients are served
//! statelessly, as their protocol has it: they cancel a call by dropping its request.
//! Either way a cancelled call's run is dropped, which frees its worker at once. (MCP
//! sessions are the transport's; spr's own sessions, when they come, are tool arguments.)
//!
//! Connections are served as `spr serve --http` serves them (`front::serve_until`: a
//! header and idle timeout, a connection cap), and the requests read at once are bounded
//! ([`super::admission`]), so that no number of clients can make the server hold an
//! unbounded amount of memory.

use super::admission::{self, Places};
use super::server::{ProfileChoice, SprMcp};
use crate::error::{CliError, Exit};
use crate::front::{self, error_response, loggable, Profiles, Token, TokenLayerState};
use crate::serve::EngineSlot;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Where the MCP endpoint is.
pub const MCP_PATH: &str = "/mcp";

/// Largest request body: the same as the stdio transport's longest line.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// How long a stopped server waits for its requests to end after cancelling them.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Serve on `listener` (bound by `front::bind`, which refused a public address without a
/// token) until SIGINT or SIGTERM.
pub async fn serve(
    listener: TcpListener,
    token: Option<Token>,
    profiles: Profiles,
    server: SprMcp,
    slot: &EngineSlot,
) -> Result<Exit, CliError> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(true)
        .with_max_request_body_bytes(MAX_BODY_BYTES);
    // DNS rebinding (a web page that resolves its own name to 127.0.0.1) is what the SDK's
    // Host and Origin checks guard against. With a token, the token does: a page cannot
    // know it, and the server may be reached under any name. Without one the server is on
    // loopback (`bind` refuses anything else): loopback Host names only, and no request
    // from a browser page at all (any Origin header is refused).
    let config = match &token {
        Some(_) => config.disable_allowed_hosts(),
        None => config.enforce_origin_validation(),
    };
    let stop = config.cancellation_token.clone();
    let places = Places::for_calls(server.call_capacity());
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = router(service, profiles, token, places);

    let open = front::serve_until(listener, router, slot.stopping()).await;
    // Cancel every call in flight (their workers are freed) and the SDK's streams, then
    // let the connections close; a client that holds one open does not hold the exit
    // for long.
    stop.cancel();
    open.close(tokio::time::sleep(STOP_GRACE)).await;
    Ok(Exit::Interrupted)
}

/// The router: `/mcp` (that path only) behind the token check (outermost), the profile
/// choice and the bound on requests read at once.
fn router(
    service: StreamableHttpService<SprMcp, LocalSessionManager>,
    profiles: Profiles,
    token: Option<Token>,
    places: Arc<Places>,
) -> Router {
    let token: TokenLayerState = token.map(Arc::new);
    Router::new()
        .route_service(MCP_PATH, service)
        .fallback(not_found)
        .layer(from_fn_with_state(places, admission::bounded))
        .layer(from_fn_with_state(Arc::new(profiles), pick_profile))
        .layer(from_fn_with_state(token, front::require_token))
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!("not found: spr mcp serves MCP at {MCP_PATH}"),
    )
}

/// Middleware: the profile the URL names (`?profile=NAME`, else the default), checked
/// against the operator's and handed to the handler in the request's extensions. A name
/// the operator did not configure is a 400 on every request, `initialize` included, so a
/// misconfigured client fails at once rather than at its first call.
async fn pick_profile(
    State(profiles): State<Arc<Profiles>>,
    mut request: Request,
    next: Next,
) -> Response {
    match profile_of(request.uri(), &profiles) {
        Ok(choice) => {
            request.extensions_mut().insert(ProfileChoice(choice));
            next.run(request).await
        }
        Err(message) => error_response(StatusCode::BAD_REQUEST, message),
    }
}

/// The profile a URL picks: `None` for the default.
fn profile_of(uri: &axum::http::Uri, profiles: &Profiles) -> Result<Option<String>, String> {
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map_err(|e| format!("invalid query string: {e}"))?;
    let mut choice = None;
    for (key, value) in pairs {
        if key != "profile" {
            return Err(format!(
                "unknown query parameter \"{}\": {MCP_PATH} takes only ?profile=NAME",
                loggable(&key)
            ));
        }
        if choice.replace(value).is_some() {
            return Err("?profile= is given twice".to_string());
        }
    }
    let Some(name) = choice.filter(|name| name != "default") else {
        return Ok(None);
    };
    profiles
        .resolve(Some(&name), None)
        .map_err(|e| format!("?profile={}: {e}", loggable(&name)))?;
    Ok(Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spr_core::RunnerPolicy;
    use std::collections::BTreeMap;

    #[test]
    fn the_url_picks_a_configured_profile_or_is_refused() {
        let profiles = Profiles::new(
            RunnerPolicy::default(),
            BTreeMap::from([("strict".to_string(), RunnerPolicy::default())]),
        );
        let pick = |uri: &str| profile_of(&uri.parse().unwrap(), &profiles);
        assert_eq!(pick("/mcp"), Ok(None));
        assert_eq!(pick("/mcp?profile=default"), Ok(None));
        assert_eq!(pick("/mcp?profile=strict"), Ok(Some("strict".to_string())));
        let refusals: Vec<String> = [
            "/mcp?profile=nope",
            "/mcp?profile=strict&profile=strict",
            "/mcp?policy=x",
            "/mcp?profile=%0A%1B",
        ]
        .iter()
        .map(|uri| format!("{uri}: {}", pick(uri).unwrap_err()))
        .collect();
        insta::assert_snapshot!(refusals.join("\n"));
    }
}
