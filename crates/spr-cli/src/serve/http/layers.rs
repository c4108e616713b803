//! Middleware around every route: the access log and response count (`observe`), JSON
//! bodies for the errors axum makes itself (`json_errors`), and the loopback-names rule
//! of a server without a token (`loopback_hosts`).

use super::errors::ApiError;
use super::state::App;
use crate::front::loggable;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use spr_protocol::wire::ErrorBody;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Count every response by route and status, and log it at debug. Client text (the
/// path) is escaped and cut.
pub async fn observe(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    app.metrics
        .response(route.as_ref().map(MatchedPath::as_str), status);
    tracing::debug!(
        method = %method,
        path = %loggable(&crate::serve::redact_session_ids(uri.path())),
        status,
        ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        "http"
    );
    response
}

/// Errors that axum or a layer made without a JSON body (405, for one)
/// get one: every error of the API is `{"error": ...}`.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let message = match status {
        // axum adds the `Allow` header after this layer has run: it is in the answer,
        // but not here to be repeated.
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "method {} is not allowed on \"{}\" (the Allow header lists the methods that are)",
            loggable(method.as_str()),
            loggable(uri.path())
        ),
        other => other
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase(),
    };
    let (mut parts, _) = response.into_parts();
    let body = serde_json::to_vec(&ErrorBody { error: message }).expect("errors serialize");
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

/// Without a token, only requests addressed to a loopback name are served. A web page
/// whose name an attacker re-points at 127.0.0.1 (DNS rebinding) reaches the server as
/// "same origin" but still sends its own name in `Host`; this refuses it. A server with
/// a token needs no such rule: the page does not have the token.
pub async fn loopback_hosts(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if app.token.is_none() {
        if let Some(host) = request.headers().get(header::HOST) {
            let host = String::from_utf8_lossy(host.as_bytes());
            if !is_loopback_name(&host) {
                return ApiError::HostNotServed(loggable(&host)).into_response();
            }
        }
    }
    next.run(request).await
}

/// `localhost`, `*.localhost` (RFC 6761) or a loopback address, with or without a port.
pub fn is_loopback_name(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        match rest.split_once(']') {
            Some((v6, "")) => v6,
            Some((v6, tail)) if tail.strip_prefix(':').is_some_and(is_port) => v6,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_port(text: &str) -> bool {
    !text.starts_with('+') && text.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "api.localhost:1",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8080",
            "localhost.",
        ] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "10.0.0.1:80",
            "[::2]:80",
            "[::1]x",
            "[::1]8080",
            "127.0.0.1:x",
            "",
        ] {
            assert!(!is_loopback_name(refused), "{refused}");
        }
    }
}
