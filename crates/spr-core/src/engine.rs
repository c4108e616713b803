//! The `Engine` trait, implemented here for every engine type behind its feature.
//!
//! The trait lives in core and the impls too: engines cannot depend on core (core
//! depends on them), so they expose inherent `run` methods that these impls forward to.

use spr_policy::RunnerPolicy;
use spr_protocol::{Json, RunnerResult, SessionError};
use std::future::Future;
use std::pin::Pin;

/// The future an engine returns for one run.
pub type EngineFuture<'a> = Pin<Box<dyn Future<Output = RunnerResult> + Send + 'a>>;
/// The future of opening a session.
pub type OpenSessionFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Box<dyn EngineSession>, SessionError>> + Send + 'a>>;
/// The future of one run in a session (`Err` when the session cannot run it).
pub type CellFuture<'a> =
    Pin<Box<dyn Future<Output = Result<RunnerResult, SessionError>> + Send + 'a>>;

/// An open session of an engine: one sandboxed interpreter whose globals, imports and
/// files persist from one run to the next. Dropping it ends it.
pub trait EngineSession: Send + Sync {
    /// Run `code` in the session. Its `RunnerResult` has `value` (the last expression's);
    /// `Err(SessionError::Lost)` once an earlier run lost the session.
    fn run<'a>(&'a self, code: &'a str, input_data: &'a Json) -> CellFuture<'a>;

    /// True once the session cannot run again.
    fn is_lost(&self) -> bool;

    /// End the session (after the run in flight, if any).
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Something that runs code under a policy. Infrastructure failures come back as a
/// `RunnerResult` with `exit_code` 125, never as a panic.
pub trait Engine: Send + Sync {
    /// A short name for receipts and logs ("local", "docker").
    fn name(&self) -> &'static str;

    /// Run `code` with `input_data` (a JSON object, passed to Python as written) under an
    /// already-resolved `policy`.
    fn execute<'a>(
        &'a self,
        code: &'a str,
        input_data: &'a Json,
        policy: &'a RunnerPolicy,
    ) -> EngineFuture<'a>;

    /// Open a session under an already-resolved `policy`, fixed for its life.
    fn open_session<'a>(&'a self, policy: &'a RunnerPolicy) -> OpenSessionFuture<'a>;
}

/// Every engine type has the same inherent `run` and `open_session`, and its session
/// type the same `run`, `is_lost` and `close`; the traits only forward to them.
macro_rules! forward_engine {
    ($ty:ty, $session:ty, $name:literal) => {
        impl Engine for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn execute<'a>(
                &'a self,
                code: &'a str,
                input_data: &'a Json,
                policy: &'a RunnerPolicy,
            ) -> EngineFuture<'a> {
                Box::pin(self.run(code, input_data, policy))
            }

            fn open_session<'a>(&'a self, policy: &'a RunnerPolicy) -> OpenSessionFuture<'a> {
                Box::pin(async move {
                    let session = <$ty>::open_session(self, policy).await?;
                    Ok(Box::new(session) as Box<dyn EngineSession>)
                })
            }
        }

        impl EngineSession for $session {
            fn run<'a>(&'a self, code: &'a str, input_data: &'a Json) -> CellFuture<'a> {
                Box::pin(<$session>::run(self, code, input_data))
            }

            fn is_lost(&self) -> bool {
                <$session>::is_lost(self)
            }

            fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
                Box::pin(<$session>::close(self))
            }
        }
    };
}

#[cfg(feature = "local")]
forward_engine!(
    spr_engine_local::LocalEngine,
    spr_engine_local::LocalSession,
    "local"
);
#[cfg(feature = "docker")]
forward_engine!(
    spr_engine_docker::DockerEngine,
    spr_engine_docker::DockerSession,
    "docker"
);

impl<E: Engine + ?Sized> Engine for std::sync::Arc<E> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn execute<'a>(
        &'a self,
        code: &'a str,
        input_data: &'a Json,
        policy: &'a RunnerPolicy,
    ) -> EngineFuture<'a> {
        (**self).execute(code, input_data, policy)
    }

    fn open_session<'a>(&'a self, policy: &'a RunnerPolicy) -> OpenSessionFuture<'a> {
        (**self).open_session(policy)
    }
}
