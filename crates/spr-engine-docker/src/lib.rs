//! DockerEngine for spr: a hardened, warm container pool over the Docker API.
//!
//! This is the public API surface; the implementation lands with the Docker issue.

use spr_policy::RunnerPolicy;
use spr_protocol::RunnerResult;
use std::path::PathBuf;

/// Options of a Docker engine. `None` means the documented default.
#[derive(Debug, Clone, Default)]
pub struct DockerEngineConfig {
    /// Image to run (the original's `container_registry`). Default: the runtime image
    /// built by `cargo xtask image`.
    pub image: Option<String>,
    /// Pinned `name==version` specs baked into a derived, cached image.
    pub packages: Vec<String>,
    /// Namespace for the derived image's content hash.
    pub name: Option<String>,
    pub pool_size: Option<usize>,
    pub max_runs: Option<u32>,
    pub ttl_seconds: Option<u64>,
    pub acquire_timeout_seconds: Option<u64>,
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    pub ssh_host: Option<String>,
    pub ssh_user: Option<String>,
    pub ssh_port: Option<u16>,
    pub ssh_key_path: Option<PathBuf>,
    /// OCI runtime, for example `runsc` (gVisor).
    pub runtime: Option<String>,
    /// CPU quota per container, in cores.
    pub cpus: Option<f64>,
    /// Start `pool_size` containers before the first run.
    pub prewarm: bool,
}

/// Refusals of the engine's configuration (no IO happens in `new`).
#[derive(Debug, thiserror::Error)]
pub enum DockerEngineError {
    #[error("Use either docker_context or docker_host/ssh settings, not both")]
    ContextConflict,
    #[error("{0} requires ssh_host")]
    RequiresSshHost(&'static str),
    #[error("{0}")]
    Invalid(String),
}

/// Failures of the managed-only admin operations.
#[derive(Debug, thiserror::Error)]
pub enum DockerAdminError {
    #[error("Container '{0}' is not managed by spr and cannot be modified")]
    NotManaged(String),
    #[error("Docker is not reachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Api(String),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: String,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageInfo {
    pub id: String,
    pub repository: String,
    pub tag: String,
    pub created_since: String,
    pub size: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CleanupSummary {
    pub removed_containers: u32,
    pub removed_images: u32,
}

#[derive(Debug)]
pub struct DockerEngine {
    config: DockerEngineConfig,
}

impl DockerEngine {
    pub fn new(config: DockerEngineConfig) -> Result<Self, DockerEngineError> {
        Ok(DockerEngine { config })
    }

    pub fn config(&self) -> &DockerEngineConfig {
        &self.config
    }

    pub async fn run(
        &self,
        _code: &str,
        _input_data: &serde_json::Value,
        _policy: &RunnerPolicy,
    ) -> RunnerResult {
        RunnerResult::infrastructure_error("DockerEngine is not implemented yet")
    }

    pub async fn list_containers(
        &self,
        _all_states: bool,
    ) -> Result<Vec<ContainerInfo>, DockerAdminError> {
        Err(DockerAdminError::Api("not implemented yet".into()))
    }

    pub async fn list_images(&self) -> Result<Vec<ImageInfo>, DockerAdminError> {
        Err(DockerAdminError::Api("not implemented yet".into()))
    }

    pub async fn stop_container(
        &self,
        _id: &str,
        _timeout_seconds: u64,
    ) -> Result<(), DockerAdminError> {
        Err(DockerAdminError::Api("not implemented yet".into()))
    }

    pub async fn kill_container(&self, _id: &str) -> Result<(), DockerAdminError> {
        Err(DockerAdminError::Api("not implemented yet".into()))
    }

    pub async fn cleanup_stale(&self) -> Result<CleanupSummary, DockerAdminError> {
        Err(DockerAdminError::Api("not implemented yet".into()))
    }

    /// Remove this engine's pooled containers.
    pub async fn shutdown(&self) {}
}
