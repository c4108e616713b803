//! A fixed-size pool of warm workers: one run per worker at a time, dead ones replaced.

use crate::sandbox::Layout;
use crate::worker::{Worker, WorkerError, WorkerSpec};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug)]
pub(crate) struct Pool {
    spec: WorkerSpec,
    size: usize,
    idle: Mutex<Vec<Worker>>,
    permits: Arc<Semaphore>,
}

/// A worker checked out for one run, with the permit that bounds concurrency.
///
/// A lease dropped without [`Pool::release`] or [`Pool::discard`] is a run its caller
/// gave up on (a client that disconnected, a cancelled task): the worker may be in the
/// middle of it, so it is killed, and a replacement is started in the background.
#[derive(Debug)]
pub(crate) struct Lease {
    worker: Option<Worker>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    pub(crate) fn worker(&mut self) -> &mut Worker {
        self.worker
            .as_mut()
            .expect("a lease holds its worker until it ends")
    }

    pub(crate) fn worker_ref(&self) -> &Worker {
        self.worker
            .as_ref()
            .expect("a lease holds its worker until it ends")
    }

    fn take(mut self) -> Worker {
        self.worker
            .take()
            .expect("a lease holds its worker until it ends")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(worker) = self.worker.take() else {
            return;
        };
        worker.kill();
        // Dropped outside a runtime (the engine itself going away): nothing to refill.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            runtime.spawn(async move {
                pool.top_up(1).await;
            });
        }
    }
}

impl Pool {
    pub(crate) fn new(spec: WorkerSpec, size: usize) -> Arc<Pool> {
        Arc::new(Pool {
            spec,
            size,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Wait for a free slot, then take a live idle worker of this layout or start one.
    pub(crate) async fn acquire(self: &Arc<Self>, layout: &Layout) -> Result<Lease, WorkerError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the pool semaphore is never closed");
        loop {
            let candidate = {
                let mut idle = self.idle.lock().expect("pool lock");
                idle.iter()
                    .rposition(|w| w.sandbox.layout == *layout)
                    .map(|i| idle.remove(i))
            };
            match candidate {
                Some(mut worker) => {
                    if worker.is_alive() {
                        return Ok(Lease {
                            worker: Some(worker),
                            pool: self.clone(),
                            _permit: permit,
                        });
                    }
                    worker.kill();
                }
                None => break,
            }
        }
        let worker = Worker::spawn(&self.spec, layout).await?;
        Ok(Lease {
            worker: Some(worker),
            pool: self.clone(),
            _permit: permit,
        })
    }

    /// A worker of `layout` to keep outside the pool (a session's): an idle one, replaced
    /// in the background, or a new one. It takes no slot: sessions have their own cap.
    pub(crate) async fn take(self: &Arc<Self>, layout: &Layout) -> Result<Worker, WorkerError> {
        loop {
            let candidate = {
                let mut idle = self.idle.lock().expect("pool lock");
                idle.iter()
                    .rposition(|w| w.sandbox.layout == *layout)
                    .map(|i| idle.remove(i))
            };
            let Some(mut worker) = candidate else {
                return Worker::spawn(&self.spec, layout).await;
            };
            if !worker.is_alive() {
                worker.kill();
                continue;
            }
            let pool = self.clone();
            tokio::spawn(async move {
                pool.top_up(1).await;
            });
            return Ok(worker);
        }
    }

    /// Return a healthy worker after its run.
    pub(crate) fn release(&self, lease: Lease) {
        let worker = lease.take();
        let mut idle = self.idle.lock().expect("pool lock");
        idle.push(worker);
        // Over the size (workers of other layouts accumulate): drop the oldest.
        while idle.len() > self.size {
            idle.remove(0).kill();
        }
    }

    /// Throw a worker away (wedged, dead or confused) and start a replacement in the
    /// background so the next run does not pay for the interpreter start.
    pub(crate) fn discard(self: &Arc<Self>, lease: Lease) {
        lease.take().kill();
        let pool = self.clone();
        tokio::spawn(async move {
            pool.top_up(1).await;
        });
    }

    /// Start workers until `wanted` more are idle (bounded by the pool size).
    pub(crate) async fn top_up(self: &Arc<Self>, wanted: usize) -> Option<WorkerError> {
        let mut tasks = Vec::new();
        for _ in 0..wanted {
            let spec = self.spec.clone();
            tasks.push(tokio::spawn(async move {
                Worker::spawn(&spec, &Layout::default()).await
            }));
        }
        let mut first_error = None;
        let mut started = 0;
        for task in tasks {
            match task.await {
                Ok(Ok(worker)) => {
                    started += 1;
                    let mut idle = self.idle.lock().expect("pool lock");
                    if idle.len() < self.size {
                        idle.push(worker);
                    } else {
                        worker.kill();
                    }
                }
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {}
            }
        }
        // A worker that started with the same options shows the others' failure was
        // not the options': not one to stop a server on.
        if started > 0 {
            first_error = first_error.map(WorkerError::by_chance);
        }
        first_error
    }

    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().expect("pool lock").len()
    }

    /// Stop every idle worker.
    pub(crate) async fn shutdown(&self) {
        let workers: Vec<Worker> = std::mem::take(&mut *self.idle.lock().expect("pool lock"));
        for worker in workers {
            worker.shutdown().await;
        }
    }
}
