//! How spr's errors become Python exceptions.
//!
//! Refused arguments are `ValueError` (the original's choice, and what Python callers
//! catch), a policy file that is not there `FileNotFoundError`, failures of the machinery
//! `RuntimeError`. Session errors are classes of `spr._errors`, defined in Python so that
//! they pickle and name their module as users import it.

use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use spr_core::{PolicyError, RunError, SessionError};

pub(crate) use spr_core::message_with_causes as chain;

pub(crate) fn value_error(e: &dyn std::error::Error) -> PyErr {
    PyValueError::new_err(chain(e))
}

pub(crate) fn runtime_error(e: &dyn std::error::Error) -> PyErr {
    PyRuntimeError::new_err(chain(e))
}

/// An instance of `spr._errors.<class>` carrying `message`.
fn spr_error(class: &str, message: String) -> PyErr {
    Python::attach(|py| {
        let made = py
            .import("spr._errors")
            .and_then(|m| m.getattr(class))
            .and_then(|cls| cls.call1((message,)));
        match made {
            Ok(exception) => PyErr::from_value(exception),
            Err(e) => e,
        }
    })
}

pub(crate) fn closed_error() -> PyErr {
    spr_error("SessionClosedError", "the session is closed".into())
}

pub(crate) fn session_error(e: &SessionError) -> PyErr {
    let message = chain(e);
    match e {
        SessionError::Lost { .. } => spr_error("SessionLostError", message),
        SessionError::TooMany { .. } => spr_error("TooManySessionsError", message),
        SessionError::Unknown { .. } => spr_error("SessionClosedError", message),
        SessionError::BadTtl { .. } => PyValueError::new_err(message),
        SessionError::Start(_) => spr_error("SessionError", message),
    }
}

pub(crate) fn policy_error(e: &PolicyError) -> PyErr {
    match e {
        PolicyError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(chain(e))
        }
        _ => value_error(e),
    }
}

/// A refused run: a session's own errors keep their classes, a missing policy file is
/// `FileNotFoundError`, the rest are bad arguments.
pub(crate) fn run_error(e: &RunError) -> PyErr {
    match e {
        RunError::Session(s) => session_error(s),
        RunError::Policy(p) => policy_error(p),
        other => value_error(other),
    }
}
