//! Admission of `POST /v1/runs`: at most `capacity` runs execute (one per worker) and at
//! most `queue` more are admitted to wait; anything beyond is refused at once (429), and
//! draining refuses the waiting ones and every new one (503).
//!
//! Admission happens before the request body is read, so the memory that request bodies
//! can hold is bounded by `(capacity + queue) × max body`, whatever the number of
//! connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The run slots and the queue in front of them.
#[derive(Debug)]
pub struct Limits {
    /// One permit per run that may execute; closed when the server drains, which wakes
    /// every waiting request with a refusal while runs that hold a permit go on.
    running: Arc<Semaphore>,
    capacity: usize,
    queue: usize,
    /// Admitted requests: waiting (body, queue) or running.
    admitted: AtomicUsize,
    in_flight: AtomicUsize,
}

/// Why a request is not admitted, or not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every run slot and queue place is taken.
    Full { capacity: usize, queue: usize },
    /// The server is shutting down.
    Draining,
}

impl Limits {
    pub fn new(capacity: usize, queue: usize) -> Arc<Limits> {
        Arc::new(Limits {
            running: Arc::new(Semaphore::new(capacity)),
            capacity,
            queue,
            admitted: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// Take a place for one request, or refuse it without waiting.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, Refusal> {
        if self.running.is_closed() {
            return Err(Refusal::Draining);
        }
        let most = self.capacity + self.queue;
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < most).then_some(n + 1)
            })
            .map_err(|_| Refusal::Full {
                capacity: self.capacity,
                queue: self.queue,
            })?;
        Ok(Ticket {
            limits: self.clone(),
            permit: None,
        })
    }

    /// Stop admitting and starting runs; runs already executing go on.
    pub fn close(&self) {
        self.running.close();
    }

    pub fn draining(&self) -> bool {
        self.running.is_closed()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Runs executing now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Admitted requests not executing yet (reading their body or waiting for a slot).
    /// Read without a lock, so it may be off by one while requests come and go.
    pub fn queued(&self) -> usize {
        self.admitted
            .load(Ordering::Acquire)
            .saturating_sub(self.in_flight())
    }
}

/// One admitted request. Dropping it (answered, refused, or its client gone) frees its
/// place and its run slot.
#[derive(Debug)]
pub struct Ticket {
    limits: Arc<Limits>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Ticket {
    /// Wait for a run slot: first come, first served (tokio's semaphore is fair).
    pub async fn start(&mut self) -> Result<(), Refusal> {
        if self.permit.is_some() {
            return Ok(());
        }
        let permit = self
            .limits
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_closed| Refusal::Draining)?;
        self.permit = Some(permit);
        self.limits.in_flight.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.permit.take().is_some() {
            self.limits.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
        self.limits.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capacity_plus_queue_are_admitted_and_the_rest_refused() {
        let limits = Limits::new(2, 1);
        let mut a = limits.admit().unwrap();
        let mut b = limits.admit().unwrap();
        let c = limits.admit().unwrap();
        assert_eq!(
            limits.admit().unwrap_err(),
            Refusal::Full {
                capacity: 2,
                queue: 1
            }
        );
        a.start().await.unwrap();
        b.start().await.unwrap();
        assert_eq!((limits.in_flight(), limits.queued()), (2, 1));
        drop(a);
        assert_eq!((limits.in_flight(), limits.queued()), (1, 1));
        let d = limits.admit().unwrap();
        drop((b, c, d));
        assert_eq!((limits.in_flight(), limits.queued()), (0, 0));
    }

    #[tokio::test]
    async fn draining_refuses_the_waiting_and_the_new_but_not_the_running() {
        let limits = Limits::new(1, 4);
        let mut running = limits.admit().unwrap();
        running.start().await.unwrap();
        let mut waiting = limits.admit().unwrap();
        let waiter = tokio::spawn(async move { waiting.start().await });
        tokio::task::yield_now().await;
        limits.close();
        assert_eq!(waiter.await.unwrap(), Err(Refusal::Draining));
        assert_eq!(limits.admit().unwrap_err(), Refusal::Draining);
        assert_eq!(limits.in_flight(), 1, "the running one keeps its slot");
        drop(running);
        assert_eq!((limits.in_flight(), limits.queued()), (0, 0));
    }
}
