//! What every engine and front door says about sessions: their errors and their limits.

use crate::files::Attachments;
use crate::json::Json;
use crate::message::{RunReport, RunRequest};
use crate::receipt::SandboxReceipt;
use crate::result::{assemble_result, RunnerResult};
use crate::wire::loggable;
use spr_policy::RunnerPolicy;
use std::time::Duration;

/// How long the harness lets an interrupted cell take to come back before it kills the
/// session (`CELL_INTERRUPT_GRACE_SECONDS` in the harness).
pub const CELL_INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// Idle time after which a session is closed when its creator names none.
pub const DEFAULT_SESSION_TTL_SECONDS: u64 = 600;
/// The longest idle TTL a session may ask for.
pub const MAX_SESSION_TTL_SECONDS: u64 = 86_400;
/// Open sessions an engine allows when its configuration says nothing.
pub const DEFAULT_MAX_SESSIONS: usize = 16;

/// Why a session could not be made, used or closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(
        "too many open sessions: this engine allows {limit}; close one or wait for an idle one to expire"
    )]
    TooMany { limit: usize },
    #[error("unknown session \"{}\": it was never created, was closed, or expired", loggable(.id))]
    Unknown { id: String },
    #[error(
        "session \"{}\" was lost (its process was killed or died) and its state is gone; create a new session",
        loggable(.id)
    )]
    Lost { id: String },
    #[error("\"ttl_seconds\" must be between 1 and {max}, got {got}")]
    BadTtl { got: u64, max: u64 },
    #[error("could not start the session: {0}")]
    Start(String),
}

impl SessionError {
    /// The same error, naming the session it is about (engines do not know the ids the
    /// front doors give their sessions).
    pub fn for_session(self, id: &str) -> SessionError {
        match self {
            SessionError::Unknown { .. } => SessionError::Unknown { id: id.into() },
            SessionError::Lost { .. } => SessionError::Lost { id: id.into() },
            other => other,
        }
    }
}

/// What a session's receipt says differently from a run's: its process has no CPU-time
/// rlimit (that would count the whole session); each cell is bounded by its deadline.
pub fn session_receipt(receipt: &mut crate::SandboxReceipt) {
    if let Some(rlimits) = receipt.rlimits.as_mut() {
        rlimits.cpu_seconds = None;
    }
}

/// What every engine's session does around one cell, apart from moving the frames: the
/// request, the host's backstop, and the result (sans-IO, so both engines share it).
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    /// The session's policy, fixed at creation (`config_path` already resolved).
    pub policy: &'a RunnerPolicy,
    /// What the session's worker applies, from its creation.
    pub receipt: &'a SandboxReceipt,
}

impl Cell<'_> {
    /// The request of cell `id`, or the refusal of its attachments (a result with exit
    /// code 2: the session goes on).
    pub fn request(
        &self,
        id: u64,
        code: &str,
        input_data: &Json,
        attachments: &Attachments,
    ) -> Result<RunRequest, Box<RunnerResult>> {
        attachments.validate(self.policy).map_err(|e| {
            Box::new(RunnerResult::invalid_request(format!(
                "Refused attachments: {e}"
            )))
        })?;
        Ok(RunRequest {
            id,
            code: code.to_string(),
            input_data: input_data.clone(),
            policy: self.policy.clone(),
            files: attachments.files.clone(),
            collect: attachments.collect.clone(),
        })
    }

    /// How long the host waits for a cell's report before it gives up on the worker:
    /// the cell's timeout, the interrupt's grace and the engine's own `grace`.
    pub fn backstop(&self, grace: Duration) -> Duration {
        Duration::from_secs(self.policy.timeout_seconds) + CELL_INTERRUPT_GRACE + grace
    }

    /// The result of a cell its worker reported on, and whether the session is lost
    /// with it (the worker must then be discarded).
    pub fn reported(&self, report: &RunReport) -> (RunnerResult, bool) {
        let mut result = assemble_result(report, self.policy);
        let lost = report.session_lost || report.retire;
        result.session_lost = lost;
        let mut receipt = self.receipt.clone();
        receipt.setup_ms = report.setup_us.map(|us| us as f64 / 1000.0);
        (self.finish(result, receipt), lost)
    }

    /// The result of a cell whose worker stopped answering within the backstop: a
    /// timeout, and the session lost. `what` names the worker ("worker", "container").
    pub fn unresponsive(&self, waited: Duration, what: &str) -> RunnerResult {
        let mut result = RunnerResult::timeout(self.policy, waited);
        result.error = Some(format!(
            "Execution timed out after {}s (the session's {what} stopped responding: it was killed and its state is lost)",
            self.policy.timeout_seconds
        ));
        result.session_lost = true;
        self.finish(result, self.receipt.clone())
    }

    /// The result of a cell whose worker failed (`why`): the session lost.
    pub fn failed(&self, what: &str, why: impl std::fmt::Display) -> RunnerResult {
        let mut result = RunnerResult::infrastructure_error(format!(
            "The session's {what} failed during the run: {why}; its state is lost"
        ));
        result.session_lost = true;
        self.finish(result, self.receipt.clone())
    }

    fn finish(&self, mut result: RunnerResult, receipt: SandboxReceipt) -> RunnerResult {
        result.sandbox = Some(receipt);
        result.value.get_or_insert_with(Json::null);
        result
    }
}

/// Checks a requested idle TTL; `None` is the default.
pub fn session_ttl(requested: Option<u64>) -> Result<u64, SessionError> {
    match requested {
        None => Ok(DEFAULT_SESSION_TTL_SECONDS),
        Some(got) if got == 0 || got > MAX_SESSION_TTL_SECONDS => Err(SessionError::BadTtl {
            got,
            max: MAX_SESSION_TTL_SECONDS,
        }),
        Some(got) => Ok(got),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_s_result_always_has_a_value_and_says_when_the_session_is_lost() {
        let policy = RunnerPolicy::default();
        let receipt = SandboxReceipt::default();
        let cell = Cell {
            policy: &policy,
            receipt: &receipt,
        };
        let alive = RunReport {
            cell: true,
            setup_us: Some(1500),
            child_frame: Some(r#"{"outcome":"completed","result":1,"value":2}"#.into()),
            ..RunReport::default()
        };
        let (result, lost) = cell.reported(&alive);
        assert!(result.ok && !lost && !result.session_lost);
        assert_eq!(result.value.unwrap().get(), "2");
        assert_eq!(result.sandbox.unwrap().setup_ms, Some(1.5));
        let dead = RunReport {
            cell: true,
            session_lost: true,
            signal: Some(9),
            ..RunReport::default()
        };
        let (result, lost) = cell.reported(&dead);
        assert!(lost && result.session_lost && !result.ok);
        assert_eq!(result.value.unwrap().get(), "null");
        let failed = cell.failed("worker", "gone");
        assert!(failed.session_lost && failed.value.is_some());
        let refused = cell
            .request(
                1,
                "x",
                &Json::null(),
                &Attachments {
                    files: vec![],
                    collect: vec!["../x".into()],
                },
            )
            .unwrap_err();
        assert_eq!(refused.exit_code, 2);
        assert_eq!(
            cell.backstop(Duration::from_secs(5)),
            Duration::from_secs(policy.timeout_seconds + 7)
        );
    }

    #[test]
    fn errors_name_the_session_and_the_limits() {
        let lost = SessionError::Lost { id: String::new() }.for_session("ses_1");
        assert_eq!(
            lost.to_string(),
            "session \"ses_1\" was lost (its process was killed or died) and its state is gone; create a new session"
        );
        let unknown = SessionError::Unknown { id: "x\"y".into() };
        assert_eq!(
            unknown.to_string(),
            "unknown session \"x\\\"y\": it was never created, was closed, or expired"
        );
        assert_eq!(session_ttl(None).unwrap(), DEFAULT_SESSION_TTL_SECONDS);
        assert_eq!(session_ttl(Some(5)).unwrap(), 5);
        assert_eq!(
            session_ttl(Some(0)).unwrap_err().to_string(),
            "\"ttl_seconds\" must be between 1 and 86400, got 0"
        );
        assert!(session_ttl(Some(MAX_SESSION_TTL_SECONDS + 1)).is_err());
    }
}
