//! A value built on first use whose failed build is tried again later, one attempt at a time.
//!
//! `spr serve` builds its engine this way: a cause that goes away (a full TMPDIR, a venv
//! folder that could not be created) must not fail every later request, yet a flood of
//! requests must not start a flood of builds either.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Builds a `T` when first asked, keeps it once built, and after a failed build answers with
/// that failure until `backoff` has passed, then lets the next caller try again.
#[derive(Debug)]
pub struct Retrying<T, E> {
    // An async mutex held across the build: callers that arrive during a build wait for
    // its outcome instead of starting their own, so at most one build is in flight.
    state: Mutex<State<T, E>>,
    backoff: Duration,
}

#[derive(Debug)]
enum State<T, E> {
    Unbuilt,
    Ready(T),
    Failed { error: Arc<E>, at: Instant },
}

impl<T: Clone, E> Retrying<T, E> {
    pub fn new(backoff: Duration) -> Self {
        Retrying {
            state: Mutex::new(State::Unbuilt),
            backoff,
        }
    }

    /// The value: the built one, else the last failure while it is more recent than the
    /// backoff, else the outcome of a build started now. `build` is given the last failure,
    /// if any, so that it can tell a new error from a repeated one.
    ///
    /// The backoff counts from the end of the failed build, so builds never follow each
    /// other more closely than `backoff`, however long each one takes.
    pub async fn get<F, Fut>(&self, build: F) -> Result<T, Arc<E>>
    where
        F: FnOnce(Option<Arc<E>>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut state = self.state.lock().await;
        let last = match &*state {
            State::Ready(value) => return Ok(value.clone()),
            State::Failed { error, at } if at.elapsed() < self.backoff => return Err(error.clone()),
            State::Failed { error, .. } => Some(error.clone()),
            State::Unbuilt => None,
        };
        match build(last).await {
            Ok(value) => {
                *state = State::Ready(value.clone());
                Ok(value)
            }
            Err(error) => {
                let error = Arc::new(error);
                *state = State::Failed {
                    error: error.clone(),
                    at: Instant::now(),
                };
                Err(error)
            }
        }
    }

    /// The value if it has been built, without waiting for a build in flight (which then
    /// has nothing to hand back yet).
    pub fn ready(&self) -> Option<T> {
        match &*self.state.try_lock().ok()? {
            State::Ready(value) => Some(value.clone()),
            State::Unbuilt | State::Failed { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A build that fails while `failing` holds and counts its attempts.
    async fn build(
        attempts: &AtomicUsize,
        failing: bool,
        last: Option<Arc<String>>,
    ) -> Result<u32, String> {
        let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if failing {
            Err(format!("attempt {n} (last: {last:?})"))
        } else {
            Ok(42)
        }
    }

    #[tokio::test]
    async fn a_failure_is_answered_during_the_backoff_and_retried_after_it() {
        let cell = Retrying::<u32, String>::new(Duration::from_millis(200));
        let attempts = AtomicUsize::new(0);
        let err = cell.get(|last| build(&attempts, true, last)).await;
        assert_eq!(*err.unwrap_err(), "attempt 1 (last: None)");
        // Within the backoff: the last error, no new build.
        for _ in 0..5 {
            let err = cell.get(|last| build(&attempts, false, last)).await;
            assert_eq!(*err.unwrap_err(), "attempt 1 (last: None)");
        }
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(cell.ready(), None);

        tokio::time::sleep(Duration::from_millis(250)).await;
        let err = cell.get(|last| build(&attempts, true, last)).await;
        assert_eq!(
            *err.unwrap_err(),
            "attempt 2 (last: Some(\"attempt 1 (last: None)\"))"
        );

        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(cell.get(|last| build(&attempts, false, last)).await, Ok(42));
        assert_eq!(cell.ready(), Some(42));
        // Built: kept, never rebuilt.
        assert_eq!(cell.get(|last| build(&attempts, true, last)).await, Ok(42));
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_build() {
        let cell = Arc::new(Retrying::<u32, String>::new(Duration::from_secs(60)));
        let attempts = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (cell, attempts) = (cell.clone(), attempts.clone());
            tasks.spawn(async move {
                cell.get(|last| async move { build(&attempts, true, last).await })
                    .await
                    .unwrap_err()
            });
        }
        while let Some(err) = tasks.join_next().await {
            assert_eq!(*err.unwrap(), "attempt 1 (last: None)");
        }
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }
}
