//! The warm pool: idle workers per container spec, leased one run at a time.
//!
//! The lock is a plain mutex that is never held across an await; container creation and
//! removal happen outside it, with the slot's count reserved first so concurrent runs
//! never create more than `pool_size` containers for one spec.

use crate::config::{should_rotate, PoolSettings};
use crate::worker::{ContainerSpec, SpawnError, Worker};
use bollard::Docker;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

#[derive(Debug, Default)]
struct Slot {
    idle: Vec<Worker>,
    /// Containers of this spec that exist: idle, leased or being created.
    live: usize,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<ContainerSpec, Slot>,
    closed: bool,
    /// Bumped by every `close`: a container whose creation began before it (a
    /// background replacement or fill) is removed when it arrives, never parked in the
    /// pool of an engine that was shut down and used again.
    generation: u64,
}

#[derive(Debug)]
pub(crate) struct Pool {
    pub settings: PoolSettings,
    state: Mutex<State>,
    released: Notify,
    removals: Mutex<Vec<JoinHandle<()>>>,
}

enum Step {
    Take(Worker),
    Create,
    Wait,
}

impl Pool {
    pub fn new(settings: PoolSettings) -> Self {
        Pool {
            settings,
            state: Mutex::new(State::default()),
            released: Notify::new(),
            removals: Mutex::new(Vec::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent counts (no await inside), so a
        // poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take an idle worker of this spec, or create one if the slot has room, or wait
    /// for a release until `timeout`.
    pub async fn acquire(
        &self,
        docker: &Docker,
        spec: &ContainerSpec,
        labels: &HashMap<String, String>,
        timeout: Duration,
    ) -> Result<Worker, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let (step, stale) = self.next_step(spec)?;
            for w in stale {
                self.remove_later(docker, w);
            }
            match step {
                Step::Take(w) => return Ok(w),
                Step::Create => {
                    return match Worker::spawn(docker, spec, labels.clone()).await {
                        Ok(w) => Ok(w),
                        Err(e) => {
                            self.forget(spec);
                            Err(e.into())
                        }
                    }
                }
                Step::Wait => {
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return Err(format!(
                            "Timed out acquiring Docker container from pool after {}s",
                            timeout.as_secs()
                        ));
                    }
                }
            }
        }
    }

    fn next_step(&self, spec: &ContainerSpec) -> Result<(Step, Vec<Worker>), String> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.closed {
            return Err("The Docker engine was shut down".into());
        }
        let total_live: usize = state.slots.values().map(|s| s.live).sum();
        let mut stale = Vec::new();
        let slot = state.slots.entry(spec.clone()).or_default();
        while let Some(w) = slot.idle.pop() {
            if w.is_alive() && !should_rotate(w.created, w.runs, &self.settings, now) {
                return Ok((Step::Take(w), stale));
            }
            // Dead (crashed, killed, removed) or used up: replaced, never reused.
            slot.live -= 1;
            stale.push(w);
        }
        if slot.live >= self.settings.pool_size {
            return Ok((Step::Wait, stale));
        }
        slot.live += 1;
        // Keep the total near pool_size across specs: make room by retiring an idle
        // container of another spec (policies with other memory classes, say).
        if total_live >= self.settings.pool_size {
            let other = state
                .slots
                .iter_mut()
                .filter(|(k, s)| *k != spec && !s.idle.is_empty())
                .max_by_key(|(_, s)| s.idle.len())
                .map(|(_, s)| s);
            if let Some(s) = other {
                if let Some(w) = s.idle.pop() {
                    s.live -= 1;
                    stale.push(w);
                }
            }
        }
        Ok((Step::Create, stale))
    }

    /// A reserved creation failed: give the place back.
    fn forget(&self, spec: &ContainerSpec) {
        let mut state = self.lock();
        if let Some(slot) = state.slots.get_mut(spec) {
            slot.live = slot.live.saturating_sub(1);
        }
        drop(state);
        self.released.notify_one();
    }

    /// Return a worker after a run. `healthy` is false when the run broke it. Returns
    /// true when the worker was retired (used up, broken or dead) instead of kept.
    pub fn release(
        &self,
        docker: &Docker,
        spec: &ContainerSpec,
        worker: Worker,
        healthy: bool,
    ) -> bool {
        let keep = healthy
            && worker.is_alive()
            && !should_rotate(worker.created, worker.runs, &self.settings, Instant::now());
        let mut state = self.lock();
        let closed = state.closed;
        let slot = state.slots.entry(spec.clone()).or_default();
        if keep && !closed {
            slot.idle.push(worker);
            drop(state);
        } else {
            slot.live = slot.live.saturating_sub(1);
            drop(state);
            self.remove_later(docker, worker);
        }
        self.released.notify_one();
        !keep
    }

    /// Start one container for `spec` if the slot has room, and park it idle. Used
    /// after a retirement so the next run does not pay for a container start.
    pub async fn replace_one(
        &self,
        docker: &Docker,
        spec: &ContainerSpec,
        labels: &HashMap<String, String>,
    ) {
        let generation = {
            let mut state = self.lock();
            if state.closed {
                return;
            }
            let generation = state.generation;
            let slot = state.slots.entry(spec.clone()).or_default();
            if slot.live >= self.settings.pool_size {
                return;
            }
            slot.live += 1;
            generation
        };
        match Worker::spawn(docker, spec, labels.clone()).await {
            Ok(w) => {
                let current = self.lock().generation == generation;
                self.release(docker, spec, w, current);
            }
            Err(_) => self.forget(spec),
        }
    }

    /// Remove a container in the background; `shutdown` waits for these.
    fn remove_later(&self, docker: &Docker, worker: Worker) {
        let docker = docker.clone();
        let handle = tokio::spawn(async move { worker.discard(&docker).await });
        let mut removals = self.removals.lock().unwrap_or_else(|e| e.into_inner());
        removals.retain(|h| !h.is_finished());
        removals.push(handle);
    }

    /// Start containers until the slot holds `pool_size` (concurrently). Returns how
    /// many were started.
    pub async fn fill(
        &self,
        docker: &Docker,
        spec: &ContainerSpec,
        labels: &HashMap<String, String>,
    ) -> Result<usize, SpawnError> {
        let (want, generation) = {
            let mut state = self.lock();
            if state.closed {
                return Ok(0);
            }
            let generation = state.generation;
            let slot = state.slots.entry(spec.clone()).or_default();
            let want = self.settings.pool_size.saturating_sub(slot.live);
            slot.live += want;
            (want, generation)
        };
        let spawns = (0..want).map(|_| Worker::spawn(docker, spec, labels.clone()));
        let results = futures_util::future::join_all(spawns).await;
        let mut started = 0;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(w) => {
                    started += 1;
                    let current = self.lock().generation == generation;
                    self.release(docker, spec, w, current);
                }
                Err(e) => {
                    self.forget(spec);
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if started == 0 => Err(e),
            _ => Ok(started),
        }
    }

    /// Idle workers per spec (for tests and diagnostics).
    pub fn idle_names(&self) -> Vec<String> {
        let state = self.lock();
        state
            .slots
            .values()
            .flat_map(|s| s.idle.iter().map(|w| w.name.clone()))
            .collect()
    }

    /// Remove every idle container and refuse further runs; wait for pending removals.
    pub async fn close(&self, docker: Option<&Docker>) {
        let idle: Vec<Worker> = {
            let mut state = self.lock();
            state.closed = true;
            state.generation += 1;
            state
                .slots
                .values_mut()
                .flat_map(|s| {
                    s.live = s.live.saturating_sub(s.idle.len());
                    std::mem::take(&mut s.idle)
                })
                .collect()
        };
        if let Some(docker) = docker {
            futures_util::future::join_all(idle.into_iter().map(|w| w.discard(docker))).await;
        }
        let pending: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.removals.lock().unwrap_or_else(|e| e.into_inner()));
        for h in pending {
            let _ = h.await;
        }
    }

    /// Allow runs again after `close` (a shut-down engine may be used again).
    pub fn reopen(&self) {
        self.lock().closed = false;
    }
}

/// A container checked out for one run. Dropped before [`Checkout::finish`] (its caller
/// gave up on the run: a client that disconnected, a cancelled task), the run may still
/// be going on in it, so the container is removed and its place in the pool given back.
pub(crate) struct Checkout<'a> {
    pub pool: &'a Pool,
    pub docker: &'a Docker,
    pub spec: &'a ContainerSpec,
    pub worker: Option<Worker>,
}

impl Checkout<'_> {
    pub(crate) fn worker(&mut self) -> &mut Worker {
        self.worker.as_mut().expect("held until finished")
    }

    pub(crate) fn finish(mut self) -> Worker {
        self.worker.take().expect("held until finished")
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            // Removal is spawned on the runtime; without one (the runtime itself is
            // going away) the owner sweep of the next engine removes the container.
            if tokio::runtime::Handle::try_current().is_ok() {
                self.pool.release(self.docker, self.spec, worker, false);
            }
        }
    }
}
