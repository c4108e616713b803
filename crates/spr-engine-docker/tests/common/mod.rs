//! Shared helpers of the Docker integration tests: find a daemon or skip (locally) /
//! fail (under CI=true), and build engines and policies.
#![allow(dead_code)]

use spr_engine_docker::{DockerEngine, DockerEngineConfig};
use spr_policy::RunnerPolicy;

pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip (locally) or fail (under CI) a test that needs something missing.
pub fn missing(what: &str) {
    if under_ci() {
        panic!("CI=true and {what}: the Docker tests must not be skipped under CI (run .ci/docker-setup.sh)");
    }
    eprintln!("SKIPPED: {what} (run .ci/docker-setup.sh to enable the Docker tests)");
}

/// An engine on the default daemon whose image is present, or None when the test must
/// be skipped.
pub async fn engine(config: DockerEngineConfig) -> Option<DockerEngine> {
    let engine = DockerEngine::new(config).expect("valid config");
    if let Err(e) = engine.ping().await {
        missing(&e.to_string());
        return None;
    }
    // Probe the image once; a missing runtime image is the same kind of missing setup.
    let probe = engine
        .run("result = 1", &spr_protocol::Json::null(), &policy())
        .await;
    if !probe.ok {
        let err = probe.error.unwrap_or_default();
        if err.contains("was not found") {
            missing(&format!("the runtime image is missing: {err}"));
            return None;
        }
        panic!("probe run failed: {err}");
    }
    Some(engine)
}

pub fn config(pool_size: usize) -> DockerEngineConfig {
    DockerEngineConfig {
        pool_size: Some(pool_size),
        ..Default::default()
    }
}

pub fn policy() -> RunnerPolicy {
    RunnerPolicy::default()
}

/// A policy that lets tests use `os`, `socket` and `subprocess` to probe the sandbox.
pub fn open_policy() -> RunnerPolicy {
    RunnerPolicy {
        blocked_imports: vec![],
        blocked_builtins: vec![],
        ..RunnerPolicy::default()
    }
}

pub fn container_of(result: &spr_protocol::RunnerResult) -> String {
    result
        .sandbox
        .as_ref()
        .and_then(|s| s["container"].as_str())
        .unwrap_or_default()
        .to_string()
}

pub fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_unix_defaults().expect("docker client")
}
