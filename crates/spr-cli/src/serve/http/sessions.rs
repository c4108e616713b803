//! The session routes: `POST /v1/sessions` (201 `{"session"}`), `POST
//! /v1/sessions/{sid}/runs` (200 with the RunnerResult) and `DELETE /v1/sessions/{sid}`
//! (204).
//!
//! A session is judged like a run: its body picks a profile and may only lower three of
//! its limits, and that policy is the session's for its life (a run in a session cannot
//! set one). Creating a session and running in one are admitted, queued and refused as
//! runs are (they start or use an interpreter); closing one takes no place, so a client
//! can always give a session back, even to a full server.
//!
//! A client that hangs up during a cell cancels it like a run, and that kills the
//! session's interpreter: the session is lost (its state is gone) and later runs in it
//! get 404 saying so. A client that hangs up while its session is being created leaves
//! nothing behind, unless the session was made just before: then it idles out after its
//! TTL like any other.

use super::errors::ApiError;
use super::runs::{require_json, AbortOnDrop, RunLog};
use super::state::App;
use crate::front::body;
use crate::serve::{log_session, Outcome};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use spr_core::{PolicySource, RunError, RunnerResult, SessionError, Sessions};
use spr_protocol::wire::{run_response_body, Door, SessionCreate, SessionCreated};
use std::sync::Arc;
use std::time::Instant;

/// `POST /v1/sessions`.
pub async fn create(State(app): State<Arc<App>>, request: Request) -> Response {
    let mut log = OpLog::new("create");
    match open(&app, request, &mut log.profile).await {
        Ok(session) => {
            app.metrics.session_created();
            let body = serde_json::to_vec(&SessionCreated {
                session: session.clone(),
            })
            .expect("responses serialize");
            log.session = Some(session);
            log.outcome = Some(Outcome::Ok);
            let mut response = (StatusCode::CREATED, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => log.refused(err),
    }
}

async fn open(app: &App, request: Request, profile: &mut String) -> Result<String, ApiError> {
    if app.limits.draining() {
        return Err(super::limits::Refusal::Draining.into());
    }
    let (parts, body) = request.into_parts();
    require_json(&parts.headers)?;
    let mut ticket = app.limits.admit()?;
    let bytes = body::read(body, &parts.headers, app.max_body).await?;
    let call = SessionCreate::parse_http(&bytes)?;
    drop(bytes);
    if let Some(name) = &call.profile {
        profile.clone_from(name);
    }
    let policy = app
        .profiles
        .resolve(call.profile.as_deref(), call.policy.as_ref())?;
    // Before the queue: a bad TTL never waits for a worker.
    spr_protocol::session_ttl(call.ttl_seconds)?;

    let queued = Instant::now();
    ticket.start().await?;
    app.metrics.waited_for(queued.elapsed());
    let sessions = sessions(app).await?;
    // Its own task, so that a panic is a 500 for this request only; dropping this
    // handler (the client hung up) drops the half-made session with it.
    let made = AbortOnDrop(tokio::spawn(async move {
        sessions
            .create(PolicySource::Policy(policy), call.ttl_seconds)
            .await
    }));
    let made = made.await.map_err(ApiError::Internal)?;
    drop(ticket);
    made.map_err(from_run_error)
}

/// `POST /v1/sessions/{sid}/runs`.
pub async fn run(
    State(app): State<Arc<App>>,
    Path(sid): Path<String>,
    request: Request,
) -> Response {
    let mut log = RunLog::in_session(app.clone());
    match cell(&app, &sid, request, &mut log).await {
        Ok(result) => {
            let outcome = Outcome::of(&result);
            log.done(outcome);
            let mut response = Response::new(Body::from(run_response_body(&log.id, &result)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(err) => {
            log.done(Outcome::Refused);
            tracing::debug!(
                status = err.status().as_u16(),
                "session run refused: {}",
                crate::serve::redact_session_ids(&err.to_string())
            );
            err.into_response()
        }
    }
}

async fn cell(
    app: &App,
    sid: &str,
    request: Request,
    log: &mut RunLog,
) -> Result<RunnerResult, ApiError> {
    let (mut ticket, call) = super::runs::admit_call(app, request, Door::HttpSession, log).await?;
    let queued = Instant::now();
    ticket.start().await?;
    app.metrics.waited_for(queued.elapsed());
    let sessions = match app.slot.sessions().await {
        Ok(sessions) => sessions,
        // As a one-shot run answers it: the RunnerResult of an engine that cannot start.
        Err(_) => {
            return Ok(RunnerResult::infrastructure_error(
                "the engine failed to start (the server's log says why)",
            ))
        }
    };
    let started = Instant::now();
    let sid = sid.to_string();
    // As a run: its own task, aborted when this handler is dropped (the client hung
    // up), which drops the cell's future and so kills the session's interpreter.
    let run = AbortOnDrop(tokio::spawn(async move {
        sessions
            .run_with(&sid, &call.code, Some(call.input_data), &call.attachments)
            .await
    }));
    let result = run
        .await
        .map_err(ApiError::Internal)?
        .map_err(from_run_error)?;
    app.metrics.ran_for(started.elapsed());
    drop(ticket);
    Ok(result)
}

/// `DELETE /v1/sessions/{sid}`: 204, after the session's cell in flight if there is one.
pub async fn close(State(app): State<Arc<App>>, Path(sid): Path<String>) -> Response {
    let mut log = OpLog::new("close");
    log.profile = "session".into();
    log.session = Some(sid.clone());
    let closed = match sessions(&app).await {
        Ok(sessions) => sessions.close(&sid).await.map_err(ApiError::Session),
        Err(err) => Err(err),
    };
    match closed {
        Ok(()) => {
            log.outcome = Some(Outcome::Ok);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(err) => log.refused(err),
    }
}

/// The one log line of a session's creation or closing, written when it is answered or
/// when its future is dropped unanswered (the client went away: `cancelled`).
struct OpLog {
    op: &'static str,
    started: Instant,
    session: Option<String>,
    profile: String,
    outcome: Option<Outcome>,
}

impl OpLog {
    fn new(op: &'static str) -> OpLog {
        OpLog {
            op,
            started: Instant::now(),
            session: None,
            profile: "default".into(),
            outcome: None,
        }
    }

    /// A refused operation: its outcome is logged, its error answered.
    fn refused(&mut self, err: ApiError) -> Response {
        tracing::debug!(
            status = err.status().as_u16(),
            "session request refused: {}",
            crate::serve::redact_session_ids(&err.to_string())
        );
        self.outcome = Some(match err {
            ApiError::EngineDown | ApiError::Session(SessionError::Start(_)) => {
                Outcome::EngineError
            }
            _ => Outcome::Refused,
        });
        err.into_response()
    }
}

impl Drop for OpLog {
    fn drop(&mut self) {
        log_session(
            "http",
            self.op,
            self.session.as_deref(),
            &self.profile,
            self.outcome.unwrap_or(Outcome::Cancelled),
            self.started.elapsed(),
        );
    }
}

/// The engine's sessions, or 503 when the engine cannot be built.
async fn sessions(app: &App) -> Result<Arc<Sessions>, ApiError> {
    app.slot.sessions().await.map_err(|_| ApiError::EngineDown)
}

fn from_run_error(err: RunError) -> ApiError {
    match err {
        RunError::Session(e) => ApiError::Session(e),
        other => ApiError::Run(other),
    }
}
