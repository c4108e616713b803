//! Every refusal of the HTTP API, its status and its JSON body `{"error": ...}`.
//!
//! Messages name what is wrong (the key, the limit, the route) and repeat client text
//! only escaped and cut ([`crate::front::loggable`]).

use super::limits::Refusal;
use crate::front::{error_response, loggable, BodyError, PolicyRefusal};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use spr_protocol::wire::RequestError;
use spr_protocol::SessionError;

/// Seconds a client is told to wait when every worker and queue place is taken: runs
/// take milliseconds, so a place is usually free again well within it.
const RETRY_BUSY_SECONDS: &str = "1";
/// Seconds a client is told to wait when the server is shutting down: long enough for a
/// supervisor to have started its successor.
const RETRY_DRAINING_SECONDS: &str = "5";
/// Seconds a client is told to wait when the engine's session cap is reached: a place
/// frees when a client closes a session or one idles past its TTL, not within a run's
/// time.
const RETRY_SESSIONS_SECONDS: &str = "5";
/// Seconds a client is told to wait when the engine (or a session's interpreter) could
/// not start: the engine's own retry backoff.
const RETRY_ENGINE_SECONDS: &str = "2";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: not a run request (JSON syntax, wrong types, unknown keys).
    #[error("invalid request: {0}")]
    Request(#[from] RequestError),
    /// 400 (unknown profile, invalid narrowed policy) or 403 (widening).
    #[error("{0}")]
    Policy(#[from] PolicyRefusal),
    /// 400: refused by spr-core before running (cannot happen for a request that parsed;
    /// kept so that a future refusal is a 400, not an engine error).
    #[error("invalid request: {0}")]
    Run(#[from] spr_core::RunError),
    /// 413, 408 or 400.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// 415: only JSON bodies are taken (see docs/HTTP.md: a browser cannot send one to
    /// another origin without asking first).
    #[error("the request body must be JSON: send Content-Type: application/json{}", describe_type(.0))]
    NotJson(Option<String>),
    /// 429 or 503, with `Retry-After`.
    #[error("{}", describe_refusal(.0))]
    Refused(Refusal),
    /// 404 (unknown, expired or lost), 429 (the engine's cap), 400 (a bad TTL) or 503 (its
    /// interpreter could not start). The messages name the session.
    #[error("{0}")]
    Session(#[from] SessionError),
    /// 503: the engine could not be built; the cause is in the server's log, never sent
    /// to a client (it can name the server's files).
    #[error("the engine failed to start (the server's log says why)")]
    EngineDown,
    /// 404.
    #[error("no route for {method} \"{path}\"")]
    NoRoute { method: String, path: String },
    /// 403: without a token only loopback host names are served (DNS rebinding).
    #[error("host \"{0}\" is not served: without a token spr serves only loopback names (localhost, 127.0.0.1, [::1]); set --token-file or SPR_TOKEN to serve others")]
    HostNotServed(String),
    /// 500: the run's task failed (a panic); the server carries on.
    #[error("internal error: the run's task failed")]
    Internal(#[source] tokio::task::JoinError),
}

fn describe_type(got: &Option<String>) -> String {
    match got {
        None => " (no Content-Type was sent)".into(),
        Some(t) => format!(" (got \"{}\")", loggable(t)),
    }
}

fn describe_refusal(refusal: &Refusal) -> String {
    match refusal {
        Refusal::Full { capacity, queue } => format!(
            "the server is busy: {capacity} runs executing and {queue} waiting; retry later"
        ),
        Refusal::Draining => "the server is shutting down; retry later or elsewhere".into(),
    }
}

impl ApiError {
    pub fn no_route(method: &axum::http::Method, path: &str) -> ApiError {
        ApiError::NoRoute {
            method: loggable(method.as_str()),
            path: loggable(path),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Request(_) | ApiError::Run(_) => StatusCode::BAD_REQUEST,
            ApiError::Policy(refusal) => {
                StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ApiError::Body(BodyError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Body(BodyError::Timeout) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Body(BodyError::Read(_)) => StatusCode::BAD_REQUEST,
            ApiError::NotJson(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Refused(Refusal::Full { .. }) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Refused(Refusal::Draining) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Session(e) => match e {
                SessionError::Unknown { .. } | SessionError::Lost { .. } => StatusCode::NOT_FOUND,
                SessionError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
                SessionError::BadTtl { .. } => StatusCode::BAD_REQUEST,
                SessionError::Start(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            ApiError::EngineDown => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::HostNotServed(_) => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        ApiError::Refused(refusal)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = error_response(self.status(), self.to_string());
        let retry_after = match self {
            ApiError::Refused(Refusal::Full { .. }) => Some(RETRY_BUSY_SECONDS),
            ApiError::Refused(Refusal::Draining) => Some(RETRY_DRAINING_SECONDS),
            ApiError::Session(SessionError::TooMany { .. }) => Some(RETRY_SESSIONS_SECONDS),
            ApiError::Session(SessionError::Start(_)) | ApiError::EngineDown => {
                Some(RETRY_ENGINE_SECONDS)
            }
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_in_messages_is_escaped() {
        let err = ApiError::NotJson(Some("text/plain\n\u{1b}[2J".into()));
        assert_eq!(
            err.to_string(),
            "the request body must be JSON: send Content-Type: application/json (got \"text/plain\\n\\u{1b}[2J\")"
        );
        let err = ApiError::no_route(&axum::http::Method::GET, "/a\"b");
        assert_eq!(err.to_string(), "no route for GET \"/a\\\"b\"");
        assert_eq!(err.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn full_and_draining_say_when_to_retry() {
        let full = ApiError::Refused(Refusal::Full {
            capacity: 2,
            queue: 16,
        })
        .into_response();
        assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(full.headers()[header::RETRY_AFTER], "1");
        let draining = ApiError::Refused(Refusal::Draining).into_response();
        assert_eq!(draining.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(draining.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn session_errors_get_their_status_and_retry_after() {
        let status = |e: SessionError| {
            let response = ApiError::Session(e).into_response();
            let retry = response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_string());
            (response.status().as_u16(), retry)
        };
        let id = || "ses_1".to_string();
        assert_eq!(status(SessionError::Unknown { id: id() }), (404, None));
        assert_eq!(status(SessionError::Lost { id: id() }), (404, None));
        assert_eq!(
            status(SessionError::TooMany { limit: 2 }),
            (429, Some("5".into()))
        );
        assert_eq!(status(SessionError::BadTtl { got: 0, max: 9 }), (400, None));
        assert_eq!(
            status(SessionError::Start("no worker".into())),
            (503, Some("2".into()))
        );
        let down = ApiError::EngineDown.into_response();
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.headers()[header::RETRY_AFTER], "2");
    }
}
