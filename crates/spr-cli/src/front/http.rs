//! HTTP plumbing both HTTP front doors (`spr serve --http`, `spr mcp --http`) share:
//! where they may listen, the bearer-token check, and JSON error bodies.

use super::token::{check_bind, Token};
use crate::error::CliError;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use spr_protocol::wire::ErrorBody;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Listen on `addr`, refusing a non-loopback address without a token. Logs the address
/// actually bound (port 0 picks a free one) as `listening on http://ADDR`.
pub async fn bind(
    addr: SocketAddr,
    token: Option<&Token>,
    what: &str,
) -> Result<TcpListener, CliError> {
    check_bind(&addr, token)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::usage(format!("cannot listen on {addr}")).caused_by(e))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::infrastructure("cannot read the bound address").caused_by(e))?;
    tracing::info!(
        token = token.is_some(),
        "{what} listening on http://{local}"
    );
    Ok(listener)
}

/// A JSON error: `{"error": message}` with `status`.
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(ErrorBody {
            error: message.into(),
        }),
    )
        .into_response()
}

/// The state of [`require_token`]: the token, or none (every request passes).
pub type TokenLayerState = Option<Arc<Token>>;

/// Middleware: with a token configured, a request without `Authorization: Bearer
/// <token>` gets 401 and never reaches its route.
pub async fn require_token(
    State(token): State<TokenLayerState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if token.accepts(given) {
        return next.run(request).await;
    }
    let message = if given.is_none() {
        "missing bearer token: send Authorization: Bearer <token>"
    } else {
        "wrong bearer token"
    };
    let mut response = error_response(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
