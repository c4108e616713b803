//! The `Engine` trait, implemented here for every engine type behind its feature.
//!
//! The trait lives in core and the impls too: engines cannot depend on core (core
//! depends on them), so they expose inherent `run` methods that these impls forward to.

use spr_policy::RunnerPolicy;
use spr_protocol::{Attachments, Json, RunnerResult, SessionError};
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

/// The future of warming an engine up.
pub type WarmUpFuture<'a> = Pin<Box<dyn Future<Output = Result<(), WarmUpError>> + Send + 'a>>;
/// The future of shutting an engine down.
pub type ShutdownFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Why [`Engine::warm_up`] failed. Nothing is lost by it: the engine stays usable and
/// its runs report the same failure in their own results (exit code 125).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WarmUpError {
    /// The local engine could not be prepared (Python, the venv, its packages, the
    /// engine's directory, the sandbox); [`spr_engine_local::LocalEngine::prepare`]
    /// tries again on the next call.
    #[cfg(feature = "local")]
    #[error("the local engine could not be prepared")]
    Prepare(#[source] spr_engine_local::LocalEngineError),
    /// The local engine is prepared but its warm workers did not start.
    #[cfg(feature = "local")]
    #[error("the local engine's workers could not start")]
    Workers(#[source] spr_engine_local::LocalEngineError),
    /// The Docker engine could not resolve or build its image, or start its pool.
    #[cfg(feature = "docker")]
    #[error("the Docker engine's pool could not start")]
    Docker(#[source] spr_engine_docker::DockerAdminError),
    /// Another engine's failure.
    #[error("the engine could not warm up")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl WarmUpError {
    /// Whether the engine's workers failed in the operator's `preload` or `warmup`: no
    /// worker started with these options can serve, so a server should not start.
    pub fn is_preload_failure(&self) -> bool {
        match self {
            #[cfg(feature = "local")]
            WarmUpError::Workers(e) => e.is_preload_failure(),
            #[cfg(feature = "docker")]
            WarmUpError::Docker(spr_engine_docker::DockerAdminError::Preload(_)) => true,
            _ => false,
        }
    }
}

/// An open session of an engine: one sandboxed interpreter whose globals, imports and
/// files persist from one run to the next. Dropping it ends it.
pub trait EngineSession: Send + Sync {
    /// Run `code` in the session. Its `RunnerResult` has `value` (the last expression's);
    /// `Err(SessionError::Lost)` once an earlier run lost the session.
    fn run<'a>(
        &'a self,
        code: &'a str,
        input_data: &'a Json,
        attachments: &'a Attachments,
    ) -> CellFuture<'a>;

    /// True once the session cannot run again.
    fn is_lost(&self) -> bool;

    /// The policy every run of the session runs under.
    fn policy(&self) -> &RunnerPolicy;

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
    ) -> EngineFuture<'a> {
        static NONE: Attachments = Attachments {
            files: Vec::new(),
            collect: Vec::new(),
        };
        self.execute_with(code, input_data, policy, &NONE)
    }

    /// [`Engine::execute`] with files written into the run's scratch directory before
    /// the code runs and `collect` globs returned after (already validated with
    /// [`Attachments::validate`]).
    fn execute_with<'a>(
        &'a self,
        code: &'a str,
        input_data: &'a Json,
        policy: &'a RunnerPolicy,
        attachments: &'a Attachments,
    ) -> EngineFuture<'a>;

    /// Open a session under an already-resolved `policy`, fixed for its life.
    fn open_session<'a>(&'a self, policy: &'a RunnerPolicy) -> OpenSessionFuture<'a>;

    /// Do now what the first runs would otherwise wait for: the local engine prepares
    /// itself and starts its pool of workers, the Docker engine resolves (or builds) its
    /// image and starts its pool of containers for the default policy. Engines do all of
    /// it lazily without this; the default does nothing.
    fn warm_up(&self) -> WarmUpFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    /// [`Engine::warm_up`] for the runs of `policy` (the one most runs will use, such as
    /// a server's default): the Docker engine sizes and keys its containers by a run's
    /// policy, so it fills the pool those runs take from. The local engine's workers
    /// serve every policy; the default ignores `policy`.
    fn warm_up_for<'a>(&'a self, policy: &'a RunnerPolicy) -> WarmUpFuture<'a> {
        let _ = policy;
        self.warm_up()
    }

    /// Stop the engine's idle workers (containers) and what it holds open. The engine
    /// stays usable: a later run starts new ones. The default does nothing.
    fn shutdown(&self) -> ShutdownFuture<'_> {
        Box::pin(async {})
    }
}

/// An engine behind `dyn` shows its name (the engines' own `Debug` is what their
/// concrete types print).
impl std::fmt::Debug for dyn Engine + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// Every engine type has the same inherent `run` and `open_session`, and its session
/// type the same `run`, `is_lost` and `close`; the traits only forward to them.
macro_rules! forward_engine {
    ($ty:ty, $session:ty, $name:literal, $warm_up:expr) => {
        impl Engine for $ty {
            fn name(&self) -> &'static str {
                $name
            }

            fn execute_with<'a>(
                &'a self,
                code: &'a str,
                input_data: &'a Json,
                policy: &'a RunnerPolicy,
                attachments: &'a Attachments,
            ) -> EngineFuture<'a> {
                Box::pin(self.run_with(code, input_data, policy, attachments))
            }

            fn open_session<'a>(&'a self, policy: &'a RunnerPolicy) -> OpenSessionFuture<'a> {
                Box::pin(async move {
                    let session = <$ty>::open_session(self, policy).await?;
                    Ok(Box::new(session) as Box<dyn EngineSession>)
                })
            }

            fn warm_up(&self) -> WarmUpFuture<'_> {
                Box::pin(async move { $warm_up(self, &RunnerPolicy::default()).await })
            }

            fn warm_up_for<'a>(&'a self, policy: &'a RunnerPolicy) -> WarmUpFuture<'a> {
                Box::pin($warm_up(self, policy))
            }

            fn shutdown(&self) -> ShutdownFuture<'_> {
                Box::pin(<$ty>::shutdown(self))
            }
        }

        impl EngineSession for $session {
            fn run<'a>(
                &'a self,
                code: &'a str,
                input_data: &'a Json,
                attachments: &'a Attachments,
            ) -> CellFuture<'a> {
                Box::pin(<$session>::run(self, code, input_data, attachments))
            }

            fn is_lost(&self) -> bool {
                <$session>::is_lost(self)
            }

            fn policy(&self) -> &RunnerPolicy {
                <$session>::policy(self)
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
    "local",
    warm_up_local
);
#[cfg(feature = "docker")]
forward_engine!(
    spr_engine_docker::DockerEngine,
    spr_engine_docker::DockerSession,
    "docker",
    warm_up_docker
);

/// Prepare (a failure there is [`WarmUpError::Prepare`]), then start the workers (which
/// serve every policy).
#[cfg(feature = "local")]
async fn warm_up_local(
    engine: &spr_engine_local::LocalEngine,
    _policy: &RunnerPolicy,
) -> Result<(), WarmUpError> {
    engine.prepare().await.map_err(WarmUpError::Prepare)?;
    engine.warm_up().await.map_err(WarmUpError::Workers)
}

/// The image, then a full pool for `policy` (the pool key its runs use).
#[cfg(feature = "docker")]
async fn warm_up_docker(
    engine: &spr_engine_docker::DockerEngine,
    policy: &RunnerPolicy,
) -> Result<(), WarmUpError> {
    engine
        .prewarm(policy)
        .await
        .map(|_| ())
        .map_err(WarmUpError::Docker)
}

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

    fn warm_up(&self) -> WarmUpFuture<'_> {
        (**self).warm_up()
    }

    fn warm_up_for<'a>(&'a self, policy: &'a RunnerPolicy) -> WarmUpFuture<'a> {
        (**self).warm_up_for(policy)
    }

    fn shutdown(&self) -> ShutdownFuture<'_> {
        (**self).shutdown()
    }

    fn execute_with<'a>(
        &'a self,
        code: &'a str,
        input_data: &'a Json,
        policy: &'a RunnerPolicy,
        attachments: &'a Attachments,
    ) -> EngineFuture<'a> {
        (**self).execute_with(code, input_data, policy, attachments)
    }
}
