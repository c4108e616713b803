//! The `Engine` trait, implemented here for every engine type behind its feature.
//!
//! The trait lives in core and the impls too: engines cannot depend on core (core
//! depends on them), so they expose inherent `run` methods that these impls forward to.

use spr_policy::RunnerPolicy;
use spr_protocol::{Json, RunnerResult};
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
    ) -> EngineFuture<'a>;
}

/// Every engine type has the same inherent `run`; the trait only forwards to it.
macro_rules! forward_engine {
    ($ty:ty, $name:literal) => {
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
}
