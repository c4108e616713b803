//! `LocalEngine`: checks its configuration, prepares the venv once, owns the worker pool,
//! turns runs into results.

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
    assemble_result, validate_preload, validate_warmup, Attachments, Json, MissingProtection,
    PreloadError, RunRequest, RunnerResult, SandboxReceipt, SessionError, WarmupError,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long past the policy timeout the host waits for a worker's report before it
/// declares the worker wedged. The worker enforces the timeout itself; this only
/// covers a worker that stopped answering.
pub(crate) const BACKSTOP_GRACE: Duration = Duration::from_secs(5);

/// Why a local engine refused its configuration (`LocalEngine::new`) or could not be
/// prepared (`LocalEngine::prepare`). Clone, so that every caller waiting on one
/// preparation gets its failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LocalEngineError {
    #[error("LocalEngine requires a non-empty 'venv_dir'")]
    EmptyVenvDir,
    #[error("pool_size must be at least 1 (omit it for the default, min(cores, 4))")]
    ZeroPoolSize,
    #[error(
        "max_sessions must be at least 1 (omit it for the default, {})",
        spr_protocol::DEFAULT_MAX_SESSIONS
    )]
    ZeroMaxSessions,
    #[error("{field} must be at most {max}, got {got}")]
    TooMany {
        field: &'static str,
        max: usize,
        got: usize,
    },
    #[error(transparent)]
    InvalidPackage(#[from] PackageSpecError),
    #[error(transparent)]
    InvalidPreload(#[from] PreloadError),
    #[error(transparent)]
    InvalidWarmup(#[from] WarmupError),
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
        source: Arc<std::io::Error>,
    },
    #[error("could not start a Python worker")]
    Worker(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// `SandboxMode::Require` on a machine that lacks a protection.
    #[error("the sandbox is required but this machine cannot apply: {}", list_missing(.missing))]
    SandboxUnavailable { missing: Vec<MissingProtection> },
    /// The preparation's blocking task panicked or its runtime is shutting down.
    #[error("the preparation of the engine did not finish: {0}")]
    PrepareAborted(String),
}

impl LocalEngineError {
    pub(crate) fn io(what: &'static str, path: PathBuf, source: std::io::Error) -> Self {
        LocalEngineError::Io {
            what,
            path,
            source: Arc::new(source),
        }
    }

    /// Whether a worker failed in its preload or warm-up: every worker of this engine
    /// would fail the same way (the options are wrong, not the moment).
    pub fn is_preload_failure(&self) -> bool {
        match self {
            LocalEngineError::Worker(e) => matches!(
                e.downcast_ref::<crate::worker::WorkerError>(),
                Some(
                    crate::worker::WorkerError::PreloadFailed(_)
                        | crate::worker::WorkerError::DiedPreloading(_)
                )
            ),
            _ => false,
        }
    }

    /// The message with its causes, for a run's `error` (which has no room for a chain).
    pub(crate) fn with_causes(&self) -> String {
        spr_protocol::message_with_causes(self)
    }
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
/// Making one is cheap ([`LocalEngine::new`] only checks the configuration); the venv,
/// the harness and the sandbox are prepared by [`LocalEngine::prepare`], which the
/// first run, session or [`LocalEngine::warm_up`] calls when nobody did before.
/// Cheap to share: clone the `Arc` or pass `&LocalEngine` to concurrent tasks.
#[derive(Debug)]
pub struct LocalEngine {
    config: LocalEngineConfig,
    pool_size: usize,
    max_sessions: usize,
    /// What [`LocalEngine::prepare`] made, once it succeeded.
    prepared: OnceLock<Prepared>,
    /// The preparation in progress (or the last one): every caller that arrives while it
    /// runs waits for it and gets its outcome. A failed one is replaced by a fresh cell,
    /// so the next call tries again.
    attempt: Mutex<Arc<tokio::sync::OnceCell<Result<(), LocalEngineError>>>>,
    next_id: AtomicU64,
    /// One permit per open session: the engine's cap.
    sessions: Arc<tokio::sync::Semaphore>,
}

/// The engine's state once the venv, its private directory and the sandbox are ready.
#[derive(Debug)]
struct Prepared {
    python: PathBuf,
    pool: Arc<Pool>,
    sandbox: Arc<sandbox::Context>,
}

impl LocalEngine {
    /// Check the configuration (the venv folder is named, the sizes are at least 1, the
    /// packages are pinned, the preload names are module names). Nothing is read,
    /// written or started: see [`LocalEngine::prepare`].
    pub fn new(config: LocalEngineConfig) -> Result<Self, LocalEngineError> {
        if config.venv_dir.to_string_lossy().trim().is_empty() {
            return Err(LocalEngineError::EmptyVenvDir);
        }
        if config.pool_size == Some(0) {
            return Err(LocalEngineError::ZeroPoolSize);
        }
        if config.max_sessions == Some(0) {
            return Err(LocalEngineError::ZeroMaxSessions);
        }
        for (field, value, max) in [
            ("pool_size", config.pool_size, spr_protocol::MAX_POOL_SIZE),
            (
                "max_sessions",
                config.max_sessions,
                spr_protocol::MAX_SESSIONS,
            ),
        ] {
            if let Some(got) = value.filter(|n| *n > max) {
                return Err(LocalEngineError::TooMany { field, max, got });
            }
        }
        spr_policy::validate_pinned_packages(&config.packages)?;
        validate_preload(&config.preload)?;
        validate_warmup(config.warmup.as_deref())?;
        let pool_size = config
            .pool_size
            .unwrap_or_else(spr_protocol::default_pool_size);
        let max_sessions = config
            .max_sessions
            .unwrap_or(spr_protocol::DEFAULT_MAX_SESSIONS);
        Ok(LocalEngine {
            pool_size,
            max_sessions,
            prepared: OnceLock::new(),
            attempt: Mutex::new(Arc::new(tokio::sync::OnceCell::new())),
            sessions: Arc::new(tokio::sync::Semaphore::new(max_sessions)),
            config,
            next_id: AtomicU64::new(1),
        })
    }

    pub fn config(&self) -> &LocalEngineConfig {
        &self.config
    }

    /// Prepare the engine: find Python, create the venv when it is missing, install the
    /// pinned packages, make the engine's private directory with the harness in it and
    /// probe the sandbox. Workers start lazily on first use, or eagerly with
    /// [`LocalEngine::warm_up`].
    ///
    /// Idempotent: once it succeeded it returns at once. Callers that arrive while it
    /// runs share that one preparation and its outcome; after a failure, the next call
    /// tries again. The blocking work runs on tokio's blocking pool.
    pub async fn prepare(&self) -> Result<(), LocalEngineError> {
        self.prepared().await.map(|_| ())
    }

    async fn prepared(&self) -> Result<&Prepared, LocalEngineError> {
        if let Some(prepared) = self.prepared.get() {
            return Ok(prepared);
        }
        let attempt = self
            .attempt
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let outcome = attempt
            .get_or_init(|| async {
                let config = self.config.clone();
                let pool_size = self.pool_size;
                let prepared = tokio::task::spawn_blocking(move || prepare(&config, pool_size))
                    .await
                    .map_err(|e| LocalEngineError::PrepareAborted(e.to_string()))??;
                // Only one attempt runs at a time and none starts once one succeeded.
                let _ = self.prepared.set(prepared);
                Ok(())
            })
            .await;
        match outcome {
            Ok(()) => Ok(self
                .prepared
                .get()
                .expect("a successful preparation stored its state")),
            Err(e) => {
                let mut current = self.attempt.lock().unwrap_or_else(|e| e.into_inner());
                if Arc::ptr_eq(&current, &attempt) {
                    *current = Arc::new(tokio::sync::OnceCell::new());
                }
                Err(e.clone())
            }
        }
    }

    /// The venv interpreter the workers run (`None` until the engine is prepared).
    pub fn python(&self) -> Option<&std::path::Path> {
        self.prepared.get().map(|p| p.python.as_path())
    }

    /// What this machine supports of the sandbox, probed by [`LocalEngine::prepare`]
    /// (`None` until then, and when the sandbox is off).
    pub fn sandbox_support(&self) -> Option<&crate::SandboxSupport> {
        self.prepared.get()?.sandbox.support.as_ref()
    }

    /// Whether [`LocalEngine::prepare`] has succeeded.
    pub fn is_prepared(&self) -> bool {
        self.prepared.get().is_some()
    }

    /// The number of warm workers (the configured `pool_size` or its default).
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Prepare the engine if need be, then start every worker of the pool now, so the
    /// first runs are warm too.
    pub async fn warm_up(&self) -> Result<(), LocalEngineError> {
        let pool = &self.prepared().await?.pool;
        let missing = pool.size().saturating_sub(pool.idle_count());
        match pool.top_up(missing).await {
            None => Ok(()),
            Some(e) => Err(LocalEngineError::Worker(Arc::new(e))),
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
        let prepared = match self.prepared().await {
            Ok(prepared) => prepared,
            Err(e) => return RunnerResult::infrastructure_error(e.with_causes()),
        };
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
        let layout = match layout_for(&prepared.sandbox, policy) {
            Ok(layout) => layout,
            Err(message) => return RunnerResult::infrastructure_error(message),
        };
        let pool = &prepared.pool;
        let lease = match pool.acquire(&layout).await {
            Ok(lease) => lease,
            Err(e) => {
                return RunnerResult::infrastructure_error(format!(
                    "Could not start a Python worker: {e}"
                ))
            }
        };
        let mut receipt = receipt_for(&prepared.sandbox, lease.worker_ref(), policy);
        if let Err(message) = requirements_met(policy, &receipt) {
            pool.release(lease);
            let mut result = RunnerResult::infrastructure_error(message);
            result.sandbox = Some(receipt);
            return result;
        }
        let backstop = Duration::from_secs(policy.timeout_seconds) + BACKSTOP_GRACE;
        let (mut result, setup_us) = execute(pool, lease, &request, backstop, policy).await;
        receipt.setup_ms = setup_us.map(|us| us as f64 / 1000.0);
        result.sandbox = Some(receipt);
        result
    }

    /// Open a session: a sandboxed interpreter of its own whose globals and imports
    /// persist from one run to the next, under `policy` (already resolved) for its whole
    /// life. It takes a worker of its own (an idle one of the pool, replaced in the
    /// background, so opening is quick) and counts against `max_sessions`.
    ///
    /// An engine that could not be prepared refuses it with the preparation's error.
    pub async fn open_session(&self, policy: &RunnerPolicy) -> Result<LocalSession, SessionError> {
        let permit =
            self.sessions
                .clone()
                .try_acquire_owned()
                .map_err(|_| SessionError::TooMany {
                    limit: self.max_sessions,
                })?;
        let prepared = self
            .prepared()
            .await
            .map_err(|e| SessionError::Start(e.with_causes()))?;
        let layout = layout_for(&prepared.sandbox, policy).map_err(SessionError::Start)?;
        let worker =
            prepared.pool.take(&layout).await.map_err(|e| {
                SessionError::Start(format!("could not start a Python worker: {e}"))
            })?;
        let mut receipt = receipt_for(&prepared.sandbox, &worker, policy);
        requirements_met(policy, &receipt).map_err(SessionError::Start)?;
        spr_protocol::session_receipt(&mut receipt);
        let mut wire_policy = policy.clone();
        wire_policy.config_path = None;
        Ok(LocalSession::new(worker, wire_policy, receipt, permit))
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.max_sessions - self.sessions.available_permits()
    }

    /// Stop the idle workers cleanly. Dropping the engine also kills them.
    pub async fn shutdown(&self) {
        if let Some(prepared) = self.prepared.get() {
            prepared.pool.shutdown().await;
        }
    }
}

async fn execute(
    pool: &Arc<Pool>,
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
                pool.discard(lease);
            } else {
                pool.release(lease);
            }
            (assemble_result(&report, policy), report.setup_us)
        }
        Err(WorkerError::Unresponsive) => {
            // Measured before the discard: the time the run held the caller.
            let waited = started.elapsed();
            pool.discard(lease);
            let mut result = RunnerResult::timeout(policy, waited);
            result.error = Some(format!(
                "Execution timed out after {}s (the worker stopped responding and was replaced)",
                policy.timeout_seconds
            ));
            (result, None)
        }
        Err(WorkerError::RequestTooLarge(e)) => {
            pool.release(lease);
            (RunnerResult::invalid_request(format!("Refused: the run's code, input_data and files together are too large to send: {e}")), None)
        }
        Err(e) => {
            pool.discard(lease);
            let result = RunnerResult::infrastructure_error(format!(
                "The Python worker failed during the run and was replaced: {e}"
            ));
            (result, None)
        }
    }
}

/// The worker layout `policy` needs (its extra paths), or why it cannot have one.
fn layout_for(sandbox: &sandbox::Context, policy: &RunnerPolicy) -> Result<Layout, String> {
    let layout = if sandbox.active() {
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
fn receipt_for(
    sandbox: &sandbox::Context,
    worker: &Worker,
    policy: &RunnerPolicy,
) -> SandboxReceipt {
    let mut receipt = if sandbox.active() {
        let ws = &worker.sandbox;
        // A run may allocate its policy's memory on top of what its process is forked
        // with, and may also write (and so copy) the harness's own pages.
        let hello = &worker.hello;
        let forked_kb = hello.preload.as_ref().map_or(0, |p| p.rss_kb)
            + hello.base_data_kb
            + sandbox::memory_layout_kb(&hello.memory);
        let limits = ws.cgroup.as_ref().map(|cg| {
            cg.set_limits(
                sandbox.cgroup_memory_bytes(policy, forked_kb),
                policy.sandbox.max_processes + sandbox::NAMESPACE_OVERHEAD_TASKS,
            )
        });
        ws.receipt(policy, limits)
    } else {
        sandbox::receipt_off(policy, sandbox.missing(), &worker.sandbox.isolation)
    };
    if let Some(rl) = &mut receipt.rlimits {
        // The one place the memory limits are set: the harness gives each run its
        // policy's memory on top of what the interpreter, the harness and the preloaded
        // modules map.
        let hello = &worker.hello;
        rl.set_memory(
            policy.memory_limit_mb,
            hello.base_data_kb,
            hello.preload.as_ref(),
        );
    }
    receipt
}

/// The blocking part of [`LocalEngine::prepare`]: the venv, the engine's private
/// directory with the harness, the sandbox probe, and the (empty) pool.
fn prepare(config: &LocalEngineConfig, pool_size: usize) -> Result<Prepared, LocalEngineError> {
    let python = venv::prepare(config)?;
    let parent = config
        .scratch_dir
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    if config.scratch_dir.is_some() {
        std::fs::create_dir_all(&parent).map_err(|source| {
            LocalEngineError::io("create the scratch directory", parent.clone(), source)
        })?;
    }
    // What engines that died (SIGKILL, a crash) left behind is removed now.
    scratch::remove_stale(&parent);
    let root = ScratchRoot::create(&parent).map_err(|source| {
        LocalEngineError::io(
            "create the engine's private directory",
            parent.clone(),
            source,
        )
    })?;
    let harness = root
        .write_new(
            spr_protocol::HARNESS_FILE_NAME,
            spr_protocol::HARNESS_SOURCE.as_bytes(),
            0o644,
        )
        .map_err(|source| {
            LocalEngineError::io("write the harness", root.path().to_path_buf(), source)
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
        warmup: config.warmup.clone(),
    };
    Ok(Prepared {
        pool: Pool::new(spec, pool_size),
        python,
        sandbox,
    })
}
