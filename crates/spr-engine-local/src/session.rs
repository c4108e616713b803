//! A session of the local engine: a worker of its own whose one run process keeps the
//! session's globals, imports and files from one cell to the next.

use crate::engine::BACKSTOP_GRACE;
use crate::worker::{Worker, WorkerError};
use spr_policy::RunnerPolicy;
use spr_protocol::{Attachments, Cell, Json, RunnerResult, SandboxReceipt, SessionError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::{Mutex, OwnedSemaphorePermit};

/// An open session. Cells run one at a time, in the order they arrive.
///
/// Dropping it (or a run future in flight) kills its worker and everything in it. A
/// session whose process was killed or died is lost: its later runs are refused.
#[derive(Debug)]
pub struct LocalSession {
    /// The session's policy, with `config_path` already resolved: fixed at creation.
    policy: RunnerPolicy,
    receipt: SandboxReceipt,
    /// The worker, while the session lives and no cell holds it.
    worker: Mutex<Option<Held>>,
    next_id: AtomicU64,
}

/// The session's worker with its place under the engine's cap: the place is given back
/// as soon as the worker goes (closed, lost, or dropped with a cell in flight), not when
/// the session's id is finally forgotten.
#[derive(Debug)]
struct Held {
    worker: Worker,
    _place: OwnedSemaphorePermit,
}

impl LocalSession {
    pub(crate) fn new(
        worker: Worker,
        policy: RunnerPolicy,
        receipt: SandboxReceipt,
        permit: OwnedSemaphorePermit,
    ) -> LocalSession {
        LocalSession {
            policy,
            receipt,
            worker: Mutex::new(Some(Held {
                worker,
                _place: permit,
            })),
            next_id: AtomicU64::new(1),
        }
    }

    /// The policy every cell runs under.
    pub fn policy(&self) -> &RunnerPolicy {
        &self.policy
    }

    /// Run one cell, with `attachments` written into the session's scratch before it and
    /// collected after it (checked against the session's policy: a refusal is a result
    /// with exit code 2). `Err(SessionError::Lost)` when an earlier cell lost the session.
    pub async fn run(
        &self,
        code: &str,
        input_data: &Json,
        attachments: &Attachments,
    ) -> Result<RunnerResult, SessionError> {
        let cell = self.cell();
        let request = match cell.request(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            code,
            input_data,
            attachments,
        ) {
            Ok(request) => request,
            Err(refused) => return Ok(*refused),
        };
        let mut slot = self.worker.lock().await;
        // Held by this future alone from here: if the future is dropped mid-cell the
        // worker goes with it (killed), and the slot stays empty, i.e. lost.
        let mut held = slot
            .take()
            .ok_or(SessionError::Lost { id: String::new() })?;
        let started = Instant::now();
        let result = match held
            .worker
            .cell(&request, cell.backstop(BACKSTOP_GRACE))
            .await
        {
            Ok(report) => {
                let (result, lost) = cell.reported(&report);
                if lost {
                    held.worker.kill();
                } else {
                    *slot = Some(held);
                }
                result
            }
            Err(WorkerError::Unresponsive) => {
                held.worker.kill();
                cell.unresponsive(started.elapsed(), "worker")
            }
            Err(WorkerError::RequestTooLarge(e)) => {
                // Nothing was sent: the session goes on as it was.
                *slot = Some(held);
                RunnerResult::invalid_request(format!("Refused: the run's code, input_data and files together are too large to send: {e}"))
            }
            Err(e) => {
                held.worker.kill();
                cell.failed("worker", e)
            }
        };
        Ok(result)
    }

    fn cell(&self) -> Cell<'_> {
        Cell {
            policy: &self.policy,
            receipt: &self.receipt,
        }
    }

    /// True once the session cannot run another cell (lost), false while a cell runs.
    pub fn is_lost(&self) -> bool {
        match self.worker.try_lock() {
            Ok(slot) => slot.is_none(),
            Err(_) => false,
        }
    }

    /// End the session (after the cell in flight, if any): its worker is asked to exit
    /// and killed if it does not. Later runs are refused as lost.
    pub async fn close(&self) {
        let held = self.worker.lock().await.take();
        if let Some(held) = held {
            held.worker.shutdown().await;
        }
    }
}
