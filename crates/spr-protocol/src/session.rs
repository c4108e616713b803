//! What every engine and front door says about sessions: their errors and their limits.

use crate::wire::loggable;

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
