//! The exceptions the native module raises, and how spr's errors map onto them.
//!
//! Refusals of arguments are `ValueError` (the original's choice, and what Python callers
//! catch); failures of the machinery are `RuntimeError`; session errors get classes of
//! their own so an agent loop can tell "start a new session" from "try again later".

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use spr_core::{RunError, SessionError as Refusal};

create_exception!(
    _native,
    SprError,
    PyException,
    "Base class of spr's own exceptions."
);
create_exception!(
    _native,
    SessionError,
    SprError,
    "A session could not be opened or cannot run."
);
create_exception!(
    _native,
    SessionLostError,
    SessionError,
    "The session's process was killed or died; its state is gone."
);
create_exception!(
    _native,
    TooManySessionsError,
    SessionError,
    "The engine's cap on open sessions is reached."
);
create_exception!(
    _native,
    SessionClosedError,
    SessionError,
    "The session was closed."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SprError", py.get_type::<SprError>())?;
    m.add("SessionError", py.get_type::<SessionError>())?;
    m.add("SessionLostError", py.get_type::<SessionLostError>())?;
    m.add(
        "TooManySessionsError",
        py.get_type::<TooManySessionsError>(),
    )?;
    m.add("SessionClosedError", py.get_type::<SessionClosedError>())?;
    Ok(())
}

/// The message of `e` and its causes, as one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

pub(crate) fn value_error(e: &dyn std::error::Error) -> PyErr {
    PyValueError::new_err(chain(e))
}

pub(crate) fn runtime_error(e: &dyn std::error::Error) -> PyErr {
    PyRuntimeError::new_err(chain(e))
}

pub(crate) fn session_error(e: &Refusal) -> PyErr {
    let message = chain(e);
    match e {
        Refusal::Lost { .. } => SessionLostError::new_err(message),
        Refusal::TooMany { .. } => TooManySessionsError::new_err(message),
        Refusal::Unknown { .. } => SessionClosedError::new_err(message),
        Refusal::BadTtl { .. } => PyValueError::new_err(message),
        Refusal::Start(_) => SessionError::new_err(message),
    }
}

/// A refused run: a session's own errors keep their classes, the rest are bad arguments.
pub(crate) fn run_error(e: &RunError) -> PyErr {
    match e {
        RunError::Session(s) => session_error(s),
        other => value_error(other),
    }
}
