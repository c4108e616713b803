//! Shared set-up for tests that run real Python through the local engine.

#![allow(dead_code)]

use spr_core::{
    run_code, LocalEngine, LocalEngineConfig, PolicySource, RunnerPolicy, RunnerResult, VenvManager,
};
use std::path::PathBuf;

// Paths the tests read or write are looked up at run time first, so the same binaries
// work from a copy: `cargo xtask test` also runs the sandbox tests as an unprivileged
// user, from a nextest archive and a copy of the sources in that user's home, where the
// paths baked in at compile time (a checkout under /root, say) are out of its reach.

/// This crate's directory. cargo and nextest set `CARGO_MANIFEST_DIR` at run time too
/// (nextest to the copy given with `--workspace-remap`); the compile-time value is the
/// fallback for a test binary started by hand.
pub fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The repository root (for tests/attacks/, examples/).
pub fn repo_root() -> PathBuf {
    manifest_dir().join("../..")
}

/// A writable directory for test scratch: `SPR_TEST_TMPDIR`, else `CARGO_TARGET_TMPDIR`.
pub fn target_tmpdir() -> PathBuf {
    std::env::var_os("SPR_TEST_TMPDIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// One venv for the whole test suite (created once, locked against concurrent creation
/// by the engine itself): `SPR_TEST_VENV`, else under the target dir. Another user needs
/// its own, made from a Python it can execute.
pub fn shared_venv() -> PathBuf {
    std::env::var_os("SPR_TEST_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| target_tmpdir().join("spr-test-venv"))
}

pub fn engine() -> LocalEngine {
    let mut config = LocalEngineConfig::new(shared_venv());
    config.venv_manager = VenvManager::Python;
    config.pool_size = Some(2);
    LocalEngine::new(config).expect("the test venv can be prepared")
}

pub async fn run(code: &str) -> RunnerResult {
    run_with(code, None, RunnerPolicy::default()).await
}

pub async fn run_with(
    code: &str,
    input: Option<serde_json::Value>,
    policy: RunnerPolicy,
) -> RunnerResult {
    let engine = engine();
    let result = run_code(code, &engine, input, PolicySource::Policy(policy))
        .await
        .expect("the run is accepted");
    engine.shutdown().await;
    result
}

/// One run on an existing engine (so several runs can share its workers).
pub async fn run_on(engine: &LocalEngine, code: &str, policy: RunnerPolicy) -> RunnerResult {
    run_code(code, engine, None, PolicySource::Policy(policy))
        .await
        .expect("the run is accepted")
}

/// Under CI a missing capability is a failure; locally the test is skipped loudly.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
    {
        panic!("{what} is required under CI but is not available");
    }
    eprintln!("SKIPPED: {what} is not available on this machine");
    false
}

pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether a process whose command line contains `marker` is still alive.
pub fn process_alive_with(marker: &str) -> bool {
    !pids_with(marker).is_empty()
}

/// The processes whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(marker) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Send `signal` (a name such as "STOP") to `pids` with kill(1); processes that are
/// already gone are fine.
pub fn signal(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stderr(std::process::Stdio::null())
        .status();
}
