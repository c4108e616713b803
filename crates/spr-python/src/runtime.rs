//! The one tokio runtime of the process, and blocking on it from Python threads.
//!
//! Engines are bound to the runtime that started their workers, so every engine of the
//! process shares this one. Blocking callers release the GIL and wake every 100 ms to
//! let Python deliver signals: Ctrl-C during a run cancels the run (its future is
//! dropped, which kills the run's process) and raises `KeyboardInterrupt`.
//!
//! A process forked from one that had started the runtime (multiprocessing's default on
//! Linux) has none of its threads: it gets a runtime of its own on first use, and the
//! engines it inherited are refused (`check_process`), since their workers are the
//! parent's.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::future::Future;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::runtime::Runtime;

/// One runtime per process, in the slot of the first process of its line to use spr: a
/// child forked from it finds the parent's slot with the parent's pid and takes the next.
/// No lock is held across a fork (a child would wait for ever on a lock held by a thread
/// it does not have); only a fork during the very first use of a slot could leave one
/// half-made.
static RUNTIMES: [OnceLock<(u32, Runtime)>; MAX_FORK_DEPTH] =
    [const { OnceLock::new() }; MAX_FORK_DEPTH];
const MAX_FORK_DEPTH: usize = 16;

pub(crate) fn runtime() -> PyResult<&'static Runtime> {
    try_runtime().ok_or_else(|| {
        PyRuntimeError::new_err(format!(
            "spr cannot start in this process: more than {MAX_FORK_DEPTH} generations of \
             forked processes used it (start processes with multiprocessing's 'spawn' or \
             'forkserver' method)"
        ))
    })
}

fn try_runtime() -> Option<&'static Runtime> {
    let pid = std::process::id();
    for slot in &RUNTIMES {
        let (owner, runtime) = slot.get_or_init(|| (pid, build()));
        if *owner == pid {
            return Some(runtime);
        }
    }
    None
}

fn build() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("spr-runtime")
        .enable_all()
        .build()
        .expect("spr cannot start its tokio runtime")
}

/// Refuse an engine (or session) made in another process: a fork's copy of it shares the
/// parent's workers and has none of the threads that drive them.
pub(crate) fn check_process(owner: u32) -> PyResult<()> {
    let pid = std::process::id();
    if owner == pid {
        return Ok(());
    }
    Err(PyRuntimeError::new_err(format!(
        "this spr engine was made in process {owner} and this process ({pid}) was forked from it: \
         its workers belong to that process. Make a new engine here, or start processes with \
         multiprocessing's 'spawn' or 'forkserver' method"
    )))
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
    let handle = runtime()?.spawn(async move {
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
