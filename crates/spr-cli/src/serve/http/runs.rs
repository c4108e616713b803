//! `POST /v1/runs`: one run request in, its RunnerResult out (200), or a refusal.
//!
//! The order of the checks is the order of their cost: draining and the content type
//! before anything is read, admission before the body (so bodies in memory are bounded
//! by the queue), the body under its cap, the request, its profile and policy, then a
//! wait for a worker and the run. Each request that reaches this handler gets exactly
//! one log line and one `spr_runs_total` count, including one whose client hangs up.
//!
//! A client that hangs up cancels its run: hyper drops this handler's future when it
//! reads end-of-file on a busy connection, which aborts the run's task, and dropping a
//! run's future kills it and frees its worker (the engines' guarantee).

use super::errors::ApiError;
use super::limits::Ticket;
use super::state::App;
use crate::front::body;
use crate::serve::{log_run, Outcome};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use spr_core::{run_code_with, Json, PolicySource, RunnerResult};
use spr_protocol::wire::{run_response_body, Door, RunCall};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

pub async fn create(State(app): State<Arc<App>>, request: Request) -> Response {
    let mut log = RunLog::new(app.clone());
    match handle(&app, request, &mut log).await {
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
            tracing::debug!(status = err.status().as_u16(), "run refused: {err}");
            err.into_response()
        }
    }
}

/// What every run route does before its run: refuse while draining and a body that is
/// not JSON, take a place in the queue (before the body is read), read the body under its
/// cap and parse it as `door` takes it. The ticket holds the place.
pub(super) async fn admit_call(
    app: &App,
    request: Request,
    door: Door,
    log: &mut RunLog,
) -> Result<(Ticket, RunCall), ApiError> {
    if app.limits.draining() {
        return Err(super::limits::Refusal::Draining.into());
    }
    let (parts, body) = request.into_parts();
    require_json(&parts.headers)?;
    let ticket = app.limits.admit()?;
    let bytes = body::read(body, &parts.headers, app.max_body).await?;
    let call = RunCall::parse(&bytes, door)?;
    log.id = call.id.clone();
    Ok((ticket, call))
}

async fn handle(app: &App, request: Request, log: &mut RunLog) -> Result<RunnerResult, ApiError> {
    let (mut ticket, call) = admit_call(app, request, Door::Http, log).await?;
    if let Some(profile) = &call.profile {
        log.profile = profile.clone();
    }
    let policy = app
        .profiles
        .resolve(call.profile.as_deref(), call.policy.as_ref())?;

    // Before the queue: a bad attachment never waits for a worker.
    call.attachments
        .validate(&policy)
        .map_err(|e| ApiError::Run(e.into()))?;
    let queued = Instant::now();
    ticket.start().await?;
    app.metrics.waited_for(queued.elapsed());
    let engine = match app.slot.get().await {
        Ok(engine) => engine,
        // The cause is in the server's log; a client is not told about the host.
        Err(_) => {
            return Ok(RunnerResult::infrastructure_error(
                "the engine failed to start (the server's log says why)",
            ))
        }
    };
    let started = Instant::now();
    // The run gets its own task, so that a panic in it is a 500 for this request only;
    // `AbortOnDrop` keeps the cancellation of this handler reaching the run.
    let run = AbortOnDrop(tokio::spawn(async move {
        run_code_with(
            &call.code,
            &*engine,
            Some(call.input_data),
            PolicySource::Policy(policy),
            &call.attachments,
        )
        .await
    }));
    let result = run.await.map_err(ApiError::Internal)??;
    app.metrics.ran_for(started.elapsed());
    drop(ticket);
    Ok(result)
}

/// Only `application/json` (any parameters) is taken: a web page can send a plain-text
/// or form body to a loopback server without the browser asking it first, a JSON one not.
pub(super) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::NotJson(None));
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::NotJson(Some(text.into_owned())))
    }
}

/// The one log line and count of a run request, written when it is answered, or when
/// its future is dropped unanswered (the client went away: `cancelled`). Runs in a
/// session (`POST /v1/sessions/{sid}/runs`) are counted here too, and once more as
/// session runs.
pub(super) struct RunLog {
    app: Arc<App>,
    started: Instant,
    pub(super) id: Json,
    pub(super) profile: String,
    outcome: Option<Outcome>,
    in_session: bool,
}

impl RunLog {
    pub(super) fn new(app: Arc<App>) -> RunLog {
        RunLog {
            app,
            started: Instant::now(),
            id: Json::null(),
            profile: "default".into(),
            outcome: None,
            in_session: false,
        }
    }

    /// The log of a run in a session (its profile was the session's creator's).
    pub(super) fn in_session(app: Arc<App>) -> RunLog {
        let mut log = RunLog::new(app);
        log.profile = "session".into();
        log.in_session = true;
        log
    }

    pub(super) fn done(&mut self, outcome: Outcome) {
        self.outcome = Some(outcome);
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        let outcome = self.outcome.unwrap_or(Outcome::Cancelled);
        self.app.metrics.run(outcome);
        if self.in_session {
            self.app.metrics.session_run(outcome);
        }
        log_run(
            "http",
            &self.id,
            &self.profile,
            outcome,
            self.started.elapsed(),
        );
    }
}

/// A spawned task that is aborted when its handle is dropped.
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn only_json_bodies_are_taken() {
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, value.parse().unwrap());
            require_json(&h)
        };
        assert!(with("application/json").is_ok());
        assert!(with("Application/JSON; charset=utf-8").is_ok());
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
        ] {
            let err = with(refused).unwrap_err();
            assert_eq!(
                err.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{refused}"
            );
        }
        assert!(require_json(&HeaderMap::new()).is_err());
    }
}
