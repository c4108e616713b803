//! The engine behind a server, built in the background and rebuilt after a failure, and
//! the one log line every served run gets.

use crate::engine_opts::{self, DockerConnOpts, EngineOpts};
use crate::error::CliError;
use crate::retry::Retrying;
use spr_core::{Engine, RunnerPolicy, RunnerResult, Sessions};
use std::sync::Arc;
use std::time::Duration;

/// How long after a failed engine build the next request may try again. Requests in
/// between get the failure at once, so a flood of requests starts at most one build
/// every two seconds (plus the build's own time).
pub const ENGINE_RETRY_BACKOFF: Duration = Duration::from_secs(2);

/// How long a server whose engine is unusable waits for its connections to close (a
/// client holding one open does not hold the exit).
pub const UNUSABLE_GRACE: Duration = Duration::from_secs(2);

/// The engine, built in the background so that a server answers bad requests at once
/// even while a venv is being created. Every run waits on the same build; a failed build
/// is retried by a later request once [`ENGINE_RETRY_BACKOFF`] has passed, so the server
/// recovers by itself when the cause goes away.
#[derive(Debug)]
pub struct EngineSlot {
    engine: Retrying<Arc<dyn Engine>, CliError>,
    /// The engine's sessions, made with the engine.
    sessions: tokio::sync::OnceCell<Arc<Sessions>>,
    opts: EngineOpts,
    conn: DockerConnOpts,
    /// The policy of the server's default profile: its runs' pool is the one warmed up
    /// (a Docker container's size is its policy's).
    warm_policy: RunnerPolicy,
    /// Set when the engine's workers failed in the operator's `--preload` or `--warmup`:
    /// no worker started with these options can serve, so the server stops (see
    /// [`EngineSlot::stopping`]) rather than fail every request.
    unusable: tokio::sync::watch::Sender<Option<String>>,
}

impl EngineSlot {
    pub fn new(
        opts: EngineOpts,
        conn: DockerConnOpts,
        warm_policy: RunnerPolicy,
    ) -> Arc<EngineSlot> {
        Arc::new(EngineSlot {
            engine: Retrying::new(ENGINE_RETRY_BACKOFF),
            sessions: tokio::sync::OnceCell::new(),
            opts,
            conn,
            warm_policy,
            unusable: tokio::sync::watch::Sender::new(None),
        })
    }

    /// Resolves on SIGINT or SIGTERM, or when the engine turned out unusable: what a
    /// server's loop stops on.
    pub async fn stopping(&self) {
        let mut unusable = self.unusable.subscribe();
        tokio::select! {
            () = crate::interrupted() => {}
            _ = unusable.wait_for(Option::is_some) => {}
        }
    }

    /// What ends a server's drain early: a second SIGINT or SIGTERM, or, when the
    /// engine is unusable (and so no operator is about to send one), a grace of
    /// [`UNUSABLE_GRACE`] for the answers in flight.
    pub async fn drain_cut_short(&self) {
        let mut unusable = self.unusable.subscribe();
        tokio::select! {
            () = crate::interrupted() => {}
            () = async {
                let _ = unusable.wait_for(Option::is_some).await;
                tokio::time::sleep(UNUSABLE_GRACE).await;
            } => {}
        }
    }

    /// The error a server that stopped because its engine is unusable exits with.
    pub fn unusable(&self) -> Option<CliError> {
        let message = self.unusable.borrow().clone()?;
        Some(CliError::infrastructure(format!(
            "the server stopped: {message}"
        )))
    }

    /// Start building now, in the background.
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let slot = self.clone();
        tokio::spawn(async move {
            let _ = slot.get().await;
        })
    }

    /// The engine: built, being built (wait for it), or failed recently (that failure).
    pub async fn get(&self) -> Result<Arc<dyn Engine>, Arc<CliError>> {
        self.engine
            .get(|last| async move {
                match self.opts.build(&self.conn, None).await {
                    Ok(engine) => {
                        if self.opts.warms_up() {
                            if let Err(err) = engine_opts::warm_up(&*engine, &self.warm_policy).await {
                                self.unusable.send_replace(Some(err.one_line()));
                                return Err(err);
                            }
                        }
                        if last.is_some() {
                            tracing::info!("the engine started after an earlier failure");
                        }
                        Ok(engine)
                    }
                    Err(err) => {
                        // Once per distinct error: a cause that persists would otherwise
                        // log a line at every retry.
                        let message = err.one_line();
                        if last.is_none_or(|last| last.one_line() != message) {
                            tracing::warn!(
                                "the engine failed to start (a request retries it after {} s): {message}",
                                ENGINE_RETRY_BACKOFF.as_secs()
                            );
                        }
                        Err(err)
                    }
                }
            })
            .await
    }

    /// The engine's sessions (building the engine first if need be).
    pub async fn sessions(&self) -> Result<Arc<Sessions>, Arc<CliError>> {
        let engine = self.get().await?;
        Ok(self
            .sessions
            .get_or_init(|| async move { Sessions::new(engine) })
            .await
            .clone())
    }

    /// Sessions open now (0 before the first).
    pub fn open_sessions(&self) -> usize {
        self.sessions.get().map_or(0, |s| s.len())
    }

    /// The engine if it is built.
    pub fn ready(&self) -> Option<Arc<dyn Engine>> {
        self.engine.ready()
    }

    /// The engine kind runs go to ("local", "docker").
    pub fn kind(&self) -> &'static str {
        self.opts.engine.name()
    }

    /// Runs that may execute at once.
    pub fn capacity(&self) -> usize {
        self.opts.concurrency()
    }

    /// Close the sessions and stop the engine's workers, if it was built.
    pub async fn shutdown(&self) {
        if let Some(sessions) = self.sessions.get() {
            sessions.close_all().await;
        }
        if let Some(engine) = self.ready() {
            engine.shutdown().await;
        }
    }
}

/// A served run's outcome in one word, for its log line and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The code ran and succeeded.
    Ok,
    /// The code ran and failed (an exception, a policy violation, a non-zero exit).
    Error,
    Timeout,
    /// A memory, output or process limit was hit.
    Resource,
    /// The engine could not run it.
    EngineError,
    /// The request was refused before running (bad request, policy widening).
    Refused,
    /// The caller gave up on the run (an MCP cancellation, a dropped connection); the
    /// run was stopped and its worker freed.
    Cancelled,
}

impl Outcome {
    pub const ALL: [Outcome; 7] = [
        Outcome::Ok,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::Resource,
        Outcome::EngineError,
        Outcome::Refused,
        Outcome::Cancelled,
    ];

    /// The outcome of a run that was attempted.
    pub fn of(result: &RunnerResult) -> Outcome {
        match result {
            r if r.ok => Outcome::Ok,
            r if r.timed_out => Outcome::Timeout,
            r if r.resource_exceeded => Outcome::Resource,
            r if r.exit_code == spr_core::EXIT_INFRASTRUCTURE => Outcome::EngineError,
            _ => Outcome::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Resource => "resource",
            Outcome::EngineError => "engine_error",
            Outcome::Refused => "refused",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// The one info line of a served run: never the code, its input or its output.
pub fn log_run(door: &str, id: &spr_core::Json, profile: &str, outcome: Outcome, took: Duration) {
    tracing::info!(
        door,
        id = %crate::front::loggable(id.get()),
        profile = %crate::front::loggable(profile),
        outcome = outcome.as_str(),
        ms = (took.as_secs_f64() * 1e6).round() / 1e3,
        "run"
    );
}

/// The one info line of a session's creation or closing (its runs get [`log_run`]'s).
/// The id is a capability (who holds it may run code in the session), so only its first
/// characters are logged: enough to tell sessions apart, far too few to use one.
pub fn log_session(
    door: &str,
    op: &str,
    session: Option<&str>,
    profile: &str,
    outcome: Outcome,
    took: Duration,
) {
    tracing::info!(
        door,
        op,
        session = %crate::front::loggable(&session_prefix(session.unwrap_or("-"))),
        profile = %crate::front::loggable(profile),
        outcome = outcome.as_str(),
        ms = (took.as_secs_f64() * 1e6).round() / 1e3,
        "session"
    );
}

/// `text` with every session id in it (`ses_` and hex digits) cut to its
/// [`session_prefix`]: an id is what lets a client into a session, so a log line never
/// carries one whole (a request path, an error naming the session).
pub fn redact_session_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("ses_") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 4..];
        let hex = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        out.push_str(&session_prefix(&rest[at..at + 4 + hex]));
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
}

/// The first 12 characters of a session id (`ses_` and 8 hex digits: 32 of its 128
/// random bits), followed by `…` when there was more.
pub fn session_prefix(id: &str) -> String {
    const SHOWN: usize = 12;
    if id.chars().count() <= SHOWN {
        return id.to_string();
    }
    let mut shown: String = id.chars().take(SHOWN).collect();
    shown.push('…');
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_cut_wherever_they_are_in_a_line() {
        let id = "ses_0123456789abcdef0123456789abcdef";
        assert_eq!(
            redact_session_ids(&format!("/v1/sessions/{id}/runs")),
            "/v1/sessions/ses_01234567…/runs"
        );
        assert_eq!(
            redact_session_ids(&format!("unknown session \"{id}\": gone; {id}")),
            "unknown session \"ses_01234567…\": gone; ses_01234567…"
        );
        assert_eq!(redact_session_ids("ses_12 and no id"), "ses_12 and no id");
        assert_eq!(redact_session_ids("plain"), "plain");
    }
}
