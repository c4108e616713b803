//! spr-core: the `Engine` trait, `run_code`, and the error facade over spr's engines.
//!
//! ```no_run
//! use spr_core::{run_code, LocalEngine, LocalEngineConfig, PolicySource};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = LocalEngine::new(LocalEngineConfig::new("/tmp/spr-venv"))?;
//! let input = serde_json::json!({"x": 81});
//! let result = run_code("import math\nresult = math.sqrt(x)", &engine, Some(input), PolicySource::Default).await?;
//! assert_eq!(result.result, serde_json::json!(9.0));
//! # Ok(()) }
//! ```

mod engine;
mod run;

pub use engine::{Engine, EngineFuture};
pub use run::{run_code, run_code_blocking, PolicySource, RunError};

pub use spr_policy::{
    check_keys as check_policy_keys, FileKind, Mode, PolicyError, RunnerPolicy, SandboxPolicy,
    Value, MAX_POLICY_FILE_BYTES, PROTECTION_NAMES,
};
pub use spr_protocol::{RunnerResult, SandboxReceipt, EXIT_INFRASTRUCTURE, EXIT_TIMEOUT};

#[cfg(feature = "docker")]
pub use spr_engine_docker::{
    CleanupSummary, ContainerInfo, DockerAdminError, DockerEngine, DockerEngineConfig,
    DockerEngineError, ImageInfo,
};
#[cfg(feature = "local")]
pub use spr_engine_local::{
    probe as local_sandbox_probe, LocalEngine, LocalEngineConfig, LocalEngineError,
    ProtectionSupport, SandboxMode, SandboxSupport, VenvManager,
};
