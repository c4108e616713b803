//! `LocalEngine`: prepares the venv, owns the worker pool, turns runs into results.

use crate::config::LocalEngineConfig;
use crate::pool::Pool;
use crate::sandbox::{self, Layout};
use crate::scratch::{self, ScratchRoot};
use crate::session::LocalSession;
use crate::venv;
use crate::worker::Worker;
use crate::worker::{WorkerError, WorkerSpec};
use spr_policy::{PackageSpecError, RunnerPolicy};
use spr_protocol::{
    assemble_result, validate_preload, Attachments, Json, MissingProtection, PreloadError,
    RunRequest, RunnerResult, SandboxReceipt, SessionError,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long past the policy timeout the host waits for a worker's report before it
/// declares the worker wedged. The worker enforces the timeout itself; this only
/// covers a worker that stopped answering.
pub(crate) const BACKSTOP_GRACE: Duration = Duration::from_secs(5);

/// Why a local engine could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum LocalEngineError {
    #[error("LocalEngine requires a non-empty 'venv_dir'")]
    EmptyVenvDir,
    #[error("pool_size must be at least 1")]
    ZeroPoolSize,
    #[error("max_sessions must be at least 1")]
    ZeroMaxSessions,
    #[error(transparent)]
    InvalidPackage(#[from] PackageSpecError),
    #[error(transparent)]
    InvalidPreload(#[from] PreloadError),
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

/// `Err` naming what `policy` requires of the sandbox that `receipt` lacks.
fn requirements_met(policy: &RunnerPolicy, receipt: &SandboxReceipt) -> Result<(), String> {
    let unmet = sandbox::unmet_requirements(policy, receipt);
    if unmet.is_empty() {
        return Ok(());
    }
    Err(format!(
        "The policy requires sandbox protections this engine did not apply: {}",
        list_missing(&unmet)
    ))
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
    /// One permit per open session: the engine's cap.
    sessions: Arc<tokio::sync::Semaphore>,
}

impl LocalEngine {
    /// Prepare the venv (create it, install packages) and the harness. Workers start
    /// lazily on first use, or eagerly with [`LocalEngine::warm_up`].
    pub fn new(config: LocalEngineConfig) -> Result<Self, LocalEngineError> {
        if config.pool_size == 0 {
            return Err(LocalEngineError::ZeroPoolSize);
        }
        if config.max_sessions == 0 {
            return Err(LocalEngineError::ZeroMaxSessions);
        }
        validate_preload(&config.preload)?;
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
            preload: config.preload.clone(),
        };
        Ok(LocalEngine {
            pool: Pool::new(spec, config.pool_size),
            sessions: Arc::new(tokio::sync::Semaphore::new(config.max_sessions)),
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
        self.run_with(code, input_data, policy, &Attachments::default())
            .await
    }

    /// [`LocalEngine::run`] with files written into the run's scratch before the code
    /// runs and the files matching `collect` returned after. Refused attachments (see
    /// [`Attachments::validate`]) are the run's error, before any worker is used.
    pub async fn run_with(
        &self,
        code: &str,
        input_data: &Json,
        policy: &RunnerPolicy,
        attachments: &Attachments,
    ) -> RunnerResult {
        if let Err(e) = attachments.validate(policy) {
            return RunnerResult::invalid_request(format!("Refused attachments: {e}"));
        }
        let mut wire_policy = policy.clone();
        wire_policy.config_path = None;
        let request = RunRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            code: code.to_string(),
            input_data: input_data.clone(),
            policy: wire_policy,
            files: attachments.files.clone(),
            collect: attachments.collect.clone(),
        };
        let layout = match self.layout_for(policy) {
            Ok(layout) => layout,
            Err(message) => return RunnerResult::infrastructure_error(message),
        };
        let lease = match self.pool.acquire(&layout).await {
            Ok(lease) => lease,
            Err(e) => {
                return RunnerResult::infrastructure_error(format!(
                    "Could not start a Python worker: {e}"
                ))
            }
        };
        let mut receipt = self.receipt_for(lease.worker_ref(), policy);
        if let Err(message) = requirements_met(policy, &receipt) {
            self.pool.release(lease);
            let mut result = RunnerResult::infrastructure_error(message);
            result.sandbox = Some(receipt);
            return result;
        }
        let backstop = Duration::from_secs(policy.timeout_seconds) + BACKSTOP_GRACE;
        let (mut result, setup_us) = self.execute(lease, &request, backstop, policy).await;
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

    /// The worker layout `policy` needs (its extra paths), or why it cannot have one.
    fn layout_for(&self, policy: &RunnerPolicy) -> Result<Layout, String> {
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
                return Err(format!(
                    "sandbox.{key}: {} does not exist on this machine",
                    p.display()
                ));
            }
        }
        Ok(layout)
    }

    /// What `worker` applies to a run under `policy` (setting its cgroup's limits).
    fn receipt_for(&self, worker: &Worker, policy: &RunnerPolicy) -> SandboxReceipt {
        let mut receipt = if self.sandbox.active() {
            let ws = &worker.sandbox;
            let preload_kb = worker.hello.preload.as_ref().map_or(0, |p| p.rss_kb);
            let limits = ws.cgroup.as_ref().map(|cg| {
                cg.set_limits(
                    self.sandbox.cgroup_memory_bytes(policy, preload_kb),
                    policy.sandbox.max_processes + sandbox::NAMESPACE_OVERHEAD_TASKS,
                )
            });
            ws.receipt(policy, limits)
        } else {
            sandbox::receipt_off(policy, self.sandbox.missing(), &worker.sandbox.isolation)
        };
        if let (Some(cost), Some(rl)) = (&worker.hello.preload, &mut receipt.rlimits) {
            // The harness gives each run its policy's memory on top of what the
            // preloaded modules map.
            rl.address_space_mb = rl.address_space_mb.map(|mb| mb + cost.vm_kb.div_ceil(1024));
        }
        receipt
    }

    /// Open a session: a sandboxed interpreter of its own whose globals and imports
    /// persist from one run to the next, under `policy` (already resolved) for its whole
    /// life. It takes a worker of its own (an idle one of the pool, replaced in the
    /// background, so opening is quick) and counts against `max_sessions`.
    pub async fn open_session(&self, policy: &RunnerPolicy) -> Result<LocalSession, SessionError> {
        let permit =
            self.sessions
                .clone()
                .try_acquire_owned()
                .map_err(|_| SessionError::TooMany {
                    limit: self.config.max_sessions,
                })?;
        let layout = self.layout_for(policy).map_err(SessionError::Start)?;
        let worker =
            self.pool.take(&layout).await.map_err(|e| {
                SessionError::Start(format!("could not start a Python worker: {e}"))
            })?;
        let mut receipt = self.receipt_for(&worker, policy);
        requirements_met(policy, &receipt).map_err(SessionError::Start)?;
        spr_protocol::session_receipt(&mut receipt);
        let mut wire_policy = policy.clone();
        wire_policy.config_path = None;
        Ok(LocalSession::new(worker, wire_policy, receipt, permit))
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.config.max_sessions - self.sessions.available_permits()
    }

    /// Stop the idle workers cleanly. Dropping the engine also kills them.
    pub async fn shutdown(&self) {
        self.pool.shutdown().await;
    }
}
