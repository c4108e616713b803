//! `spr._native.Session`: one sandboxed interpreter whose state persists between cells.

use crate::convert::{attachments, object_input, result_parts};
use crate::errors::{closed_error, session_error};
use crate::runtime::{block_on, check_process, runtime};
use crate::task::{submit, PyTask};
use pyo3::prelude::*;
use spr_core::{Attachments, EngineSession, Json, RunnerResult, SessionError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Shared = Arc<Box<dyn EngineSession>>;

/// An open session. Closing it (or dropping it) ends its process.
#[pyclass(frozen, name = "Session", module = "spr._native")]
pub(crate) struct PySession {
    session: Mutex<Option<Shared>>,
    /// Names the session in its errors (engines do not know the names callers give).
    id: String,
    /// The process whose engine opened it (see `PyEngine::pid`).
    pid: u32,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl PySession {
    pub(crate) fn new(session: Box<dyn EngineSession>, pid: u32) -> Self {
        PySession {
            session: Mutex::new(Some(Arc::new(session))),
            id: format!("py-{}-{}", pid, NEXT_ID.fetch_add(1, Ordering::Relaxed)),
            pid,
        }
    }

    fn open(&self) -> PyResult<Shared> {
        check_process(self.pid)?;
        self.session
            .lock()
            .expect("session lock")
            .clone()
            .ok_or_else(closed_error)
    }

    fn named(&self, e: SessionError) -> PyErr {
        session_error(&e.for_session(&self.id))
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

#[pymethods]
impl PySession {
    /// Run a cell; its `RunnerResult` as `(record, result, value)` JSON texts (`value`
    /// is the last expression's).
    #[pyo3(signature = (code, input_json = None, files = Vec::new(), collect = Vec::new()))]
    fn run(
        &self,
        py: Python<'_>,
        code: String,
        input_json: Option<&str>,
        files: Vec<(String, Vec<u8>)>,
        collect: Vec<String>,
    ) -> PyResult<(String, String, Option<String>)> {
        let future = cell(
            self.open()?,
            code,
            object_input(input_json)?,
            attachments(files, collect),
        );
        match block_on(py, future)? {
            Ok(result) => Ok(result_parts(result)),
            Err(e) => Err(self.named(e)),
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
        let id = self.id.clone();
        let future = cell(
            self.open()?,
            code,
            object_input(input_json)?,
            attachments(files, collect),
        );
        let finish = move |py: Python<'_>, output: Result<RunnerResult, SessionError>| {
            let result = output.map_err(|e| session_error(&e.for_session(&id)))?;
            Ok(result_parts(result).into_pyobject(py)?.into_any().unbind())
        };
        submit(future, finish, callback)
    }

    /// The name the session's errors give it.
    #[getter]
    fn id(&self) -> &str {
        &self.id
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
        check_process(self.pid)?;
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
        let Some(session) = self.session.get_mut().expect("session lock").take() else {
            return;
        };
        if let (true, Ok(runtime)) = (self.pid == std::process::id(), runtime()) {
            runtime.spawn(async move { session.close().await });
        } else {
            // A forked child's copy: the session's worker is the parent's.
            std::mem::forget(session);
        }
    }
}
