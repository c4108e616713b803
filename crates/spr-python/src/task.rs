//! A run in flight for an asyncio caller: its result goes to a callback, and it can be
//! cancelled (dropping the run's future kills the run's process).

use pyo3::prelude::*;
use std::future::Future;
use std::sync::Mutex;
use tokio::task::AbortHandle;

/// Handle of a submitted call; `cancel()` stops it, and its callback is then never called.
#[pyclass(frozen, name = "Task", module = "spr._native")]
pub(crate) struct PyTask {
    handle: Mutex<Option<AbortHandle>>,
}

#[pymethods]
impl PyTask {
    /// Stop the call. A call that already finished is not affected.
    fn cancel(&self) {
        if let Some(handle) = self.handle.lock().expect("task lock").take() {
            handle.abort();
        }
    }
}

/// Run `future` on the runtime; when it ends, call `callback(value, None)` with what
/// `finish` made of its output, or `callback(None, exception)`. Python objects are made
/// only in `finish`, with the interpreter attached: a call that ends after the
/// interpreter finalized (a daemon thread's, at exit) is dropped without touching it.
pub(crate) fn submit<F, T, D>(future: F, finish: D, callback: Py<PyAny>) -> PyResult<PyTask>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
    D: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let handle = crate::runtime::runtime()?.spawn(async move {
        let output = future.await;
        Python::try_attach(|py| {
            let args = match finish(py, output) {
                Ok(value) => (value, py.None()),
                Err(e) => (py.None(), e.into_value(py).into_any()),
            };
            if let Err(e) = callback.call1(py, args) {
                // The callback only hands the outcome to the event loop; if even that
                // fails (the loop is closed), nobody is left to tell but the hook.
                e.write_unraisable(py, None);
            }
        });
    });
    Ok(PyTask {
        handle: Mutex::new(Some(handle.abort_handle())),
    })
}
