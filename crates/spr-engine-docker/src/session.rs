//! A session of the Docker engine: a container of its own whose one run process keeps
//! the session's globals, imports and files from one cell to the next.

use crate::worker::{RunFailure, Worker};
use crate::BACKSTOP_GRACE;
use bollard::Docker;
use spr_policy::RunnerPolicy;
use spr_protocol::{Attachments, Cell, Json, RunnerResult, SandboxReceipt, SessionError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::{Mutex, OwnedSemaphorePermit};

/// An open session. Cells run one at a time, in the order they arrive.
///
/// Dropping it (or a run future in flight) removes its container. A session whose
/// process was killed or died is lost: its later runs are refused.
#[derive(Debug)]
pub struct DockerSession {
    docker: Docker,
    policy: RunnerPolicy,
    receipt: SandboxReceipt,
    worker: Mutex<Option<Held>>,
    next_id: AtomicU64,
}

/// The session's container; removed when dropped (a session closed, dropped or lost, or
/// a cell abandoned mid-run).
#[derive(Debug)]
struct Held {
    docker: Docker,
    worker: Option<Worker>,
    /// The session's place under the engine's cap, given back as soon as the container
    /// goes (closed, lost, or dropped with a cell in flight).
    _place: OwnedSemaphorePermit,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            let docker = self.docker.clone();
            // Without a runtime (it is going away) the owner sweep of the next engine
            // removes the container.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { worker.discard(&docker).await });
            }
        }
    }
}

impl DockerSession {
    pub(crate) fn new(
        docker: Docker,
        worker: Worker,
        policy: RunnerPolicy,
        receipt: SandboxReceipt,
        permit: OwnedSemaphorePermit,
    ) -> DockerSession {
        DockerSession {
            worker: Mutex::new(Some(Held {
                docker: docker.clone(),
                worker: Some(worker),
                _place: permit,
            })),
            docker,
            policy,
            receipt,
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
        let cell = Cell {
            policy: &self.policy,
            receipt: &self.receipt,
        };
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
        // Held by this future alone from here: dropped mid-cell, the container goes with
        // it and the slot stays empty, i.e. lost.
        let mut held = slot
            .take()
            .ok_or(SessionError::Lost { id: String::new() })?;
        let started = Instant::now();
        let outcome = held
            .worker
            .as_mut()
            .expect("a held session has its container")
            .cell(request, cell.backstop(BACKSTOP_GRACE))
            .await;
        // A lost session's container is removed when `held` is dropped.
        let result = match outcome {
            Ok(report) => {
                let (result, lost) = cell.reported(&report);
                if !lost {
                    *slot = Some(held);
                }
                result
            }
            Err(RunFailure::Wedged) => cell.unresponsive(started.elapsed(), "container"),
            Err(RunFailure::TooLarge(e)) => {
                // Nothing was sent: the session goes on as it was.
                *slot = Some(held);
                RunnerResult::invalid_request(format!("Refused: the run's code, input_data and files together are too large to send: {e}"))
            }
            Err(RunFailure::NotDelivered(why) | RunFailure::Died(why)) => {
                cell.failed("container", why)
            }
        };
        Ok(result)
    }

    /// True once the session cannot run another cell (lost), false while a cell runs.
    pub fn is_lost(&self) -> bool {
        match self.worker.try_lock() {
            Ok(slot) => slot.is_none(),
            Err(_) => false,
        }
    }

    /// End the session (after the cell in flight, if any): its container is removed.
    /// Later runs are refused as lost.
    pub async fn close(&self) {
        let held = self.worker.lock().await.take();
        if let Some(mut held) = held {
            if let Some(worker) = held.worker.take() {
                worker.discard(&self.docker).await;
            }
        }
    }
}
