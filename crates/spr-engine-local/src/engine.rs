//! `LocalEngine`: prepares the venv, owns the worker pool, turns runs into results.

use crate::config::LocalEngineConfig;
use crate::pool::Pool;
use crate::sandbox::{self, Layout};
use crate::scratch::{self, ScratchRoot};
use crate::venv;
use crate::worker::{WorkerError, WorkerSpec};
use spr_policy::{PackageSpecError, RunnerPolicy};
use spr_protocol::{assemble_result, Json, MissingProtection, RunRequest, RunnerResult};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long past the policy timeout the host waits for a worker's report before it
/// declares the worker wedged. The worker enforces the timeout itself; this only
/// covers a worker that stopped answering.
const BACKSTOP_GRACE: Duration = Duration::from_secs(5);

/// Why a local engine could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum LocalEngineError {
    #[error("LocalEngine requires a non-empty 'venv_dir'")]
    EmptyVenvDir,
    #[error("pool_size must be at least 1")]
    ZeroPoolSize,
    #[error(transparent)]
    InvalidPackage(#[from] PackageSpecError),
    #[error(
        "Python was not found ({looked_for}); install python3 or set the interpreter explicitly"
    )]
    PythonNotFound { looked_for: String },
    #[error("uv was not found on PATH; install uv or use venv_manager \"python\"")]
    UvNotFound,
    #[error("Failed to create venv with {manager}: {stderr}")]
    CreateVenv {
        manager: &'static str,
        stderr: String,
    },
    #[error("Failed to install local packages: {stderr}")]
    InstallPackages { stderr: String },
    #[error("{} is not a usable venv (no bin/python after creation)", path.display())]
    VenvBroken { path: PathBuf },
    #[error("could not {what} at {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start a Python worker")]
    Worker(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `SandboxMode::Require` on a machine that lacks a protection.
    #[error("the sandbox is required but this machine cannot apply: {}", list_missing(.missing))]
    SandboxUnavailable { missing: Vec<MissingProtection> },
}

fn list_missing(missing: &[MissingProtection]) -> String {
    missing
        .iter()
        .map(|m| format!("{} ({})", m.name, m.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Runs code in fresh processes forked from warm Python workers.
///
/// Cheap to share: clone the `Arc` or pass `&LocalEngine` to concurrent tasks.
#[derive(Debug)]
pub struct LocalEngine {
    config: LocalEngineConfig,
    python: PathBuf,
    pool: Arc<Pool>,
    sandbox: Arc<sandbox::Context>,
    next_id: AtomicU64,
}

impl LocalEngine {
    /// Prepare the venv (create it, install packages) and the harness. Workers start
    /// lazily on first use, or eagerly with [`LocalEngine::warm_up`].
    pub fn new(config: LocalEngineConfig) -> Result<Self, LocalEngineError> {
        if config.pool_size == 0 {
            return Err(LocalEngineError::ZeroPoolSize);
        }
        let python = venv::prepare(&config)?;
        let parent = config
            .scratch_dir
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        if config.scratch_dir.is_some() {
            std::fs::create_dir_all(&parent).map_err(|source| LocalEngineError::Io {
                what: "create the scratch directory",
                path: parent.clone(),
                source,
            })?;
        }
        // What engines that died (SIGKILL, a crash) left behind is removed now.
        scratch::remove_stale(&parent);
        let root = ScratchRoot::create(&parent).map_err(|source| LocalEngineError::Io {
            what: "create the engine's private directory",
            path: parent.clone(),
            source,
        })?;
        let harness = root
            .write_new(
                spr_protocol::HARNESS_FILE_NAME,
                spr_protocol::HARNESS_SOURCE.as_bytes(),
                0o644,
            )
            .map_err(|source| LocalEngineError::Io {
                what: "write the harness",
                path: root.path().to_path_buf(),
                source,
            })?;
        let venv_dir = python
            .parent()
            .and_then(|bin| bin.parent())
            .unwrap_or(&config.venv_dir)
            .to_path_buf();
        let sandbox = sandbox::Context::new(
            config.sandbox,
            &python,
            &venv_dir,
            &harness,
            config.scratch_tmpfs_mb,
        )
        .map_err(|missing| LocalEngineError::SandboxUnavailable { missing })?;
        let sandbox = Arc::new(sandbox);
        let spec = WorkerSpec {
            python: python.clone(),
            root: Arc::new(root),
            sandbox: sandbox.clone(),
            known_policies: vec![RunnerPolicy::default()],
        };
        Ok(LocalEngine {
            pool: Pool::new(spec, config.pool_size),
            config,
            python,
            sandbox,
            next_id: AtomicU64::new(1),
        })
    }

    pub fn config(&self) -> &LocalEngineConfig {
        &self.config
    }

    /// The venv interpreter the workers run.
    pub fn python(&self) -> &std::path::Path {
        &self.python
    }

    /// What this machine supports of the sandbox (probed when the engine was made;
    /// `None` when the sandbox is off).
    pub fn sandbox_support(&self) -> Option<&crate::SandboxSupport> {
        self.sandbox.support.as_ref()
    }

    pub fn pool_size(&self) -> usize {
        self.pool.size()
    }

    /// Start every worker of the pool now, so the first runs are warm too.
    pub async fn warm_up(&self) -> Result<(), LocalEngineError> {
        let missing = self.pool.size().saturating_sub(self.pool.idle_count());
        match self.pool.top_up(missing).await {
            None => Ok(()),
            Some(e) => Err(LocalEngineError::Worker(Box::new(e))),
        }
    }

    /// Run `code` with `input_data` (a JSON object, sent to the worker as written) under
    /// `policy` (already resolved: its `config_path` is not re-read here).
    pub async fn run(&self, code: &str, input_data: &Json, policy: &RunnerPolicy) -> RunnerResult {
        let mut wire_policy = policy.clone();
        wire_policy.config_path = None;
        let request = RunRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            code: code.to_string(),
            input_data: input_data.clone(),
            policy: wire_policy,
        };
        let layout = if self.sandbox.active() {
            Layout::of(policy)
        } else {
            Layout::default()
        };
        for (key, paths) in [
            ("extra_read_paths", &layout.extra_read),
            ("extra_write_paths", &layout.extra_write),
        ] {
            if let Some(p) = paths.iter().find(|p| !p.exists()) {
                return RunnerResult::infrastructure_error(format!(
                    "sandbox.{key}: {} does not exist on this machine",
                    p.display()
                ));
            }
        }
        let lease = match self.pool.acquire(&layout).await {
            Ok(lease) => lease,
            Err(e) => {
                return RunnerResult::infrastructure_error(format!(
                    "Could not start a Python worker: {e}"
                ))
            }
        };
        let receipt = if self.sandbox.active() {
            let ws = &lease.worker_ref().sandbox;
            let limits = ws.cgroup.as_ref().map(|cg| {
                cg.set_limits(
                    self.sandbox.cgroup_memory_bytes(policy),
                    policy.sandbox.max_processes + sandbox::NAMESPACE_OVERHEAD_TASKS,
                )
            });
            ws.receipt(policy, limits)
        } else {
            sandbox::receipt_off(
                policy,
                self.sandbox.missing(),
                &lease.worker_ref().sandbox.isolation,
            )
        };
        let unmet = sandbox::unmet_requirements(policy, &receipt);
        if !unmet.is_empty() {
            self.pool.release(lease);
            let mut result = RunnerResult::infrastructure_error(format!(
                "The policy requires sandbox protections this engine did not apply: {}",
                list_missing(&unmet)
            ));
            result.sandbox = Some(receipt);
            return result;
        }
        let backstop = Duration::from_secs(policy.timeout_seconds) + BACKSTOP_GRACE;
        let (mut result, setup_us) = self.execute(lease, &request, backstop, policy).await;
        let mut receipt = receipt;
        receipt.setup_ms = setup_us.map(|us| us as f64 / 1000.0);
        result.sandbox = Some(receipt);
        result
    }

    async fn execute(
        &self,
        mut lease: crate::pool::Lease,
        request: &RunRequest,
        backstop: Duration,
        policy: &RunnerPolicy,
    ) -> (RunnerResult, Option<u64>) {
        let started = Instant::now();
        match lease.worker().run(request, backstop).await {
            Ok(report) => {
                if report.retire {
                    // It could not make what this run wrote fresh for the next one.
                    self.pool.discard(lease);
                } else {
                    self.pool.release(lease);
                }
                (assemble_result(&report, policy), report.setup_us)
            }
            Err(WorkerError::Unresponsive) => {
                // Measured before the discard: the time the run held the caller.
                let waited = started.elapsed();
                self.pool.discard(lease);
                let mut result = RunnerResult::timeout(policy, waited);
                result.error = Some(format!(
                    "Execution timed out after {}s (the worker stopped responding and was replaced)",
                    policy.timeout_seconds
                ));
                (result, None)
            }
            Err(e) => {
                self.pool.discard(lease);
                let result = RunnerResult::infrastructure_error(format!(
                    "The Python worker failed during the run and was replaced: {e}"
                ));
                (result, None)
            }
        }
    }

    /// Stop the idle workers cleanly. Dropping the engine also kills them.
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
    }
}
