//! `spr._native.Session`: one sandboxed interpreter whose state persists between cells.

use crate::convert::{attachments, input, result_json};
use crate::errors::{session_error, SessionClosedError};
use crate::runtime::{block_on, runtime};
use crate::task::{submit, PyTask};
use pyo3::prelude::*;
use spr_core::{Attachments, EngineSession, Json, RunnerResult, SessionError};
use std::sync::{Arc, Mutex};

type Shared = Arc<Box<dyn EngineSession>>;

/// An open session. Closing it (or dropping it) ends its process.
#[pyclass(frozen, name = "Session", module = "spr._native")]
pub(crate) struct PySession {
    session: Mutex<Option<Shared>>,
}

impl PySession {
    pub(crate) fn new(session: Box<dyn EngineSession>) -> Self {
        PySession {
            session: Mutex::new(Some(Arc::new(session))),
        }
    }

    fn open(&self) -> PyResult<Shared> {
        self.session
            .lock()
            .expect("session lock")
            .clone()
            .ok_or_else(|| SessionClosedError::new_err("the session is closed"))
    }
}

async fn cell(
    session: Shared,
    code: String,
    input: Json,
    attachments: Attachments,
) -> Result<RunnerResult, SessionError> {
    session.run(&code, &input, &attachments).await
}

fn finish_cell(py: Python<'_>, output: Result<RunnerResult, SessionError>) -> PyResult<Py<PyAny>> {
    match output {
        Ok(result) => Ok(result_json(&result).into_pyobject(py)?.into_any().unbind()),
        Err(e) => Err(session_error(&e)),
    }
}

fn cell_input(text: Option<&str>) -> PyResult<Json> {
    Ok(input(text)?.unwrap_or_else(|| "{}".parse().expect("an empty object is JSON")))
}

#[pymethods]
impl PySession {
    /// Run a cell; its `RunnerResult` as JSON text (with `value`, the last expression's).
    #[pyo3(signature = (code, input_json = None, files = Vec::new(), collect = Vec::new()))]
    fn run(
        &self,
        py: Python<'_>,
        code: String,
        input_json: Option<&str>,
        files: Vec<(String, Vec<u8>)>,
        collect: Vec<String>,
    ) -> PyResult<String> {
        let future = cell(
            self.open()?,
            code,
            cell_input(input_json)?,
            attachments(files, collect),
        );
        match block_on(py, future)? {
            Ok(result) => Ok(result_json(&result)),
            Err(e) => Err(session_error(&e)),
        }
    }

    /// [`PySession::run`] without blocking, as `Engine.submit`.
    #[pyo3(signature = (callback, code, input_json = None, files = Vec::new(), collect = Vec::new()))]
    fn submit(
        &self,
        callback: Py<PyAny>,
        code: String,
        input_json: Option<&str>,
        files: Vec<(String, Vec<u8>)>,
        collect: Vec<String>,
    ) -> PyResult<PyTask> {
        let future = cell(
            self.open()?,
            code,
            cell_input(input_json)?,
            attachments(files, collect),
        );
        Ok(submit(future, finish_cell, callback))
    }

    /// True once a cell lost the session (later cells raise `SessionLostError`).
    #[getter]
    fn lost(&self) -> bool {
        self.open().map(|s| s.is_lost()).unwrap_or(false)
    }

    /// True once `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.session.lock().expect("session lock").is_none()
    }

    /// The session's policy, as JSON.
    #[getter]
    fn policy_json(&self) -> PyResult<String> {
        let session = self.open()?;
        Ok(serde_json::to_string(session.policy()).expect("a policy always serializes"))
    }

    /// End the session (after the cell in flight, if any). Closing twice is harmless.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(session) = self.session.lock().expect("session lock").take() else {
            return Ok(());
        };
        block_on(py, async move { session.close().await })
    }
}

impl Drop for PySession {
    fn drop(&mut self) {
        // Ending a session talks to its worker; that belongs on the runtime, not on
        // whichever thread the garbage collector happened to run.
        if let Some(session) = self.session.get_mut().expect("session lock").take() {
            runtime().spawn(async move { session.close().await });
        }
    }
}
