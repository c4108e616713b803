//! LocalEngine: a managed venv, a pool of warm Python workers, a fresh forked process per run.

mod config;
mod engine;
mod pool;
mod venv;
mod worker;

pub use config::{LocalEngineConfig, VenvManager};
pub use engine::{LocalEngine, LocalEngineError};
