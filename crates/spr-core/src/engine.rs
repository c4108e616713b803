//! The `Engine` trait, implemented here for every engine type behind its feature.
//!
//! The trait lives in core and the impls too: engines cannot depend on core (core
//! depends on them), so they expose inherent `run` methods that these impls forward to.

use spr_policy::RunnerPolicy;
use spr_protocol::{Attachments, Json, RunnerResult};
use std::future::Future;
use std::pin::Pin;

/// The future an engine returns for one run.
pub type EngineFuture<'a> = Pin<Box<dyn Future<Output = RunnerResult> + Send + 'a>>;

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
}

/// Every engine type has the same inherent `run`; the trait only forwards to it.
macro_rules! forward_engine {
    ($ty:ty, $name:literal) => {
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
        }
    };
}

#[cfg(feature = "local")]
forward_engine!(spr_engine_local::LocalEngine, "local");
#[cfg(feature = "docker")]
forward_engine!(spr_engine_docker::DockerEngine, "docker");

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
