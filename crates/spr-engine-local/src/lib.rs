//! LocalEngine: a managed venv, a pool of warm Python workers, a fresh forked process per run.

mod config;
mod engine;
mod pool;
mod sandbox;
mod scratch;
mod session;
mod venv;
mod worker;

pub use config::{LocalEngineConfig, SandboxMode, VenvManager, DEFAULT_SCRATCH_TMPFS_MB};
pub use engine::{LocalEngine, LocalEngineError};
pub use sandbox::{probe, ProtectionSupport, SandboxSupport};
pub use session::LocalSession;
