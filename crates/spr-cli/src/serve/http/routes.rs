//! The routes of the HTTP API (docs/HTTP.md) and the small handlers: health, metrics
//! and unknown routes.
//!
//! Every route but `GET /v1/health` is behind the bearer token (unknown routes too, so
//! that a client without the token learns nothing of what is served).

use super::errors::ApiError;
use super::layers;
use super::runs;
use super::sessions;
use super::state::App;
use crate::front::require_token;
use axum::extract::State;
use axum::http::{header, Method, Uri};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use spr_protocol::wire::Health;
use std::sync::Arc;

pub fn router(app: Arc<App>) -> Router {
    let protected = Router::new()
        .route("/v1/runs", post(runs::create))
        .route("/metrics", get(metrics))
        .route("/v1/sessions", post(sessions::create))
        .route("/v1/sessions/{sid}", delete(sessions::close))
        .route("/v1/sessions/{sid}/runs", post(sessions::run))
        .fallback(no_route)
        .layer(from_fn_with_state(app.token.clone(), require_token));
    let open = Router::new().route("/v1/health", get(health));
    protected
        .merge(open)
        .layer(from_fn_with_state(app.clone(), layers::loopback_hosts))
        .layer(from_fn(layers::json_errors))
        .layer(from_fn_with_state(app.clone(), layers::observe))
        .with_state(app)
}

async fn health(State(app): State<Arc<App>>) -> Response {
    axum::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        engine: app.slot.kind().into(),
        capacity: app.limits.capacity(),
        in_flight: app.limits.in_flight(),
        queued: app.limits.queued(),
        open_sessions: app.slot.open_sessions(),
    })
    .into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        app.metrics.encode(&app.limits, app.slot.open_sessions()),
    )
        .into_response()
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::no_route(&method, uri.path())
}
