//! `LocalEngine`: the public face of the local engine.

use crate::config::LocalEngineConfig;
use spr_policy::RunnerPolicy;
use spr_protocol::RunnerResult;

/// Why a local engine could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum LocalEngineError {
    #[error("{0}")]
    Setup(String),
}

#[derive(Debug)]
pub struct LocalEngine {
    config: LocalEngineConfig,
}

impl LocalEngine {
    pub fn new(config: LocalEngineConfig) -> Result<Self, LocalEngineError> {
        Ok(LocalEngine { config })
    }

    pub fn config(&self) -> &LocalEngineConfig {
        &self.config
    }

    pub async fn run(
        &self,
        _code: &str,
        _input_data: &serde_json::Value,
        _policy: &RunnerPolicy,
    ) -> RunnerResult {
        RunnerResult::infrastructure_error("not implemented yet")
    }
}
