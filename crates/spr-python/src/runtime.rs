//! The one tokio runtime of the process, and blocking on it from Python threads.
//!
//! Engines are bound to the runtime that started their workers, so every engine of the
//! process shares this one. Blocking callers release the GIL and wake every 100 ms to
//! let Python deliver signals: Ctrl-C during a run cancels the run (its future is
//! dropped, which kills the run's process) and raises `KeyboardInterrupt`.

use pyo3::prelude::*;
use std::future::Future;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("spr-runtime")
            .enable_all()
            .build()
            .expect("spr cannot start its tokio runtime")
    })
}

const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Run `future` on the runtime with the GIL released; `Err` only for a Python signal
/// (the future is cancelled then).
pub(crate) fn block_on<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let handle = runtime().spawn(async move {
        let _ = tx.send(future.await);
    });
    let mut rx = rx;
    loop {
        // The receiver moves in and out: a shared reference to it is not `Send`.
        let (back, received) = py.detach(move || {
            let received = rx.recv_timeout(SIGNAL_CHECK);
            (rx, received)
        });
        rx = back;
        match received {
            Ok(output) => return Ok(output),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    handle.abort();
                    return Err(e);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "spr's runtime dropped a call before it finished",
                ))
            }
        }
    }
}
