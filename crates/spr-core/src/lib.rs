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
//!
//! Making an engine is cheap, as in wasmtime: `new` only checks the configuration and
//! touches nothing. The local engine prepares itself (Python, the venv, its packages, the
//! sandbox probe) on first use, or when asked: [`LocalEngine::prepare`] for its own error
//! type, [`Engine::warm_up`] (which also starts the pool) through the trait.
//!
//! ```no_run
//! use spr_core::{Engine, LocalEngine, LocalEngineConfig, WarmUpError};
//! use std::sync::Arc;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = LocalEngineConfig::new("/tmp/spr-venv");
//! config.pool_size = Some(2); // None: default_pool_size(), min(cores, 4)
//! let engine: Arc<dyn Engine> = Arc::new(LocalEngine::new(config)?);
//! match engine.warm_up().await {
//!     Ok(()) => {}
//!     // Runs would report the same, as results with exit code 125.
//!     Err(WarmUpError::Prepare(e)) => return Err(e.into()),
//!     Err(e) => eprintln!("the workers will start on first use: {e}"),
//! }
//! engine.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Numbers cross exactly at any size: `result.result` is the JSON text Python wrote, and
//! [`run_code_json`] takes the input as JSON text too.
//!
//! ```no_run
//! use spr_core::{run_code_json, Json, LocalEngine, LocalEngineConfig, PolicySource};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! # let engine = LocalEngine::new(LocalEngineConfig::new("/tmp/spr-venv"))?;
//! let input: Json = r#"{"x": 123456789012345678901234567890}"#.parse()?;
//! let result = run_code_json("result = x + 1", &engine, Some(input), PolicySource::Default).await?;
//! assert_eq!(result.result.get(), "123456789012345678901234567891");
//! # Ok(()) }
//! ```

mod engine;
mod run;
mod session;

pub use engine::{
    CellFuture, Engine, EngineFuture, EngineSession, OpenSessionFuture, ShutdownFuture,
    WarmUpError, WarmUpFuture,
};
pub use run::{
    run_code, run_code_blocking, run_code_json, run_code_json_blocking, run_code_with,
    run_code_with_blocking, PolicySource, RunError, MAX_INPUT_DEPTH,
};
pub use session::Sessions;

pub use spr_policy::{
    check_keys as check_policy_keys, FileKind, Mode, PolicyError, RunnerPolicy, SandboxPolicy,
    Value, MAX_POLICY_FILE_BYTES, PROTECTION_NAMES,
};
pub use spr_protocol::{
    default_pool_size, message_with_causes, AttachmentError, Attachments, FileEncoding, FileIn,
    FileOut, Json, JsonKind, Output, PathProblem, RunnerResult, SandboxReceipt, SessionError,
    ADDRESS_SPACE_HEADROOM_MB, DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_TTL_SECONDS,
    EXIT_INFRASTRUCTURE, EXIT_TIMEOUT, MAX_COLLECT_GLOBS, MAX_FILES_IN, MAX_FILES_IN_BYTES,
    MAX_FILES_OUT, MAX_FILES_OUT_BYTES, MAX_OUTPUTS, MAX_OUTPUTS_BYTES, MAX_SESSION_TTL_SECONDS,
    MAX_WARMUP_BYTES,
};

#[cfg(feature = "docker")]
pub use spr_engine_docker::{
    CleanupSummary, ContainerInfo, DockerAdminError, DockerEngine, DockerEngineConfig,
    DockerEngineError, DockerSession, ImageInfo,
};
#[cfg(feature = "local")]
pub use spr_engine_local::{
    probe as local_sandbox_probe, LocalEngine, LocalEngineConfig, LocalEngineError, LocalSession,
    ProtectionSupport, SandboxMode, SandboxSupport, VenvManager,
};
