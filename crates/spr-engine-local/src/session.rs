//! A session of the local engine: a worker of its own whose one run process keeps the
//! session's globals, imports and files from one cell to the next.

use crate::engine::BACKSTOP_GRACE;
use crate::worker::{Worker, WorkerError};
use spr_policy::RunnerPolicy;
use spr_protocol::{
    assemble_result, Attachments, Json, RunRequest, RunnerResult, SandboxReceipt, SessionError,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedSemaphorePermit};

/// How long the harness lets an interrupted cell take to come back before it kills the
/// session (`CELL_INTERRUPT_GRACE_SECONDS` in the harness).
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

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
        if let Err(e) = attachments.validate(&self.policy) {
            return Ok(RunnerResult::invalid_request(format!(
                "Refused attachments: {e}"
            )));
        }
        let mut slot = self.worker.lock().await;
        // Held by this future alone from here: if the future is dropped mid-cell the
        // worker goes with it (killed), and the slot stays empty, i.e. lost.
        let mut held = slot
            .take()
            .ok_or(SessionError::Lost { id: String::new() })?;
        let worker = &mut held.worker;
        let request = RunRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            code: code.to_string(),
            input_data: input_data.clone(),
            policy: self.policy.clone(),
            files: attachments.files.clone(),
            collect: attachments.collect.clone(),
        };
        let backstop =
            Duration::from_secs(self.policy.timeout_seconds) + INTERRUPT_GRACE + BACKSTOP_GRACE;
        let started = Instant::now();
        let mut receipt = self.receipt.clone();
        let mut result = match worker.cell(&request, backstop).await {
            Ok(report) => {
                let mut result = assemble_result(&report, &self.policy);
                receipt.setup_ms = report.setup_us.map(|us| us as f64 / 1000.0);
                if report.session_lost || report.retire {
                    result.session_lost = true;
                    held.worker.kill();
                } else {
                    *slot = Some(held);
                }
                result
            }
            Err(WorkerError::Unresponsive) => {
                held.worker.kill();
                let mut result = RunnerResult::timeout(&self.policy, started.elapsed());
                result.error = Some(format!(
                    "Execution timed out after {}s (the session stopped responding: it was killed and its state is lost)",
                    self.policy.timeout_seconds
                ));
                result.session_lost = true;
                result
            }
            Err(e) => {
                held.worker.kill();
                let mut result = RunnerResult::infrastructure_error(format!(
                    "The session's worker failed during the run: {e}; its state is lost"
                ));
                result.session_lost = true;
                result
            }
        };
        result.sandbox = Some(receipt);
        result.value.get_or_insert_with(Json::null);
        Ok(result)
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
