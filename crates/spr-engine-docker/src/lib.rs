//! DockerEngine for spr: a hardened, warm container pool over the Docker API.
//!
//! Each pooled container runs the harness as its main process, attached over the Docker
//! API (bollard, never the docker CLI), so a warm run is one frame round trip and a fresh
//! forked process inside the container. See docs/BACKENDS.md for the semantics.

mod admin;
mod config;
mod endpoint;
mod image;
mod isolation;
mod owner;
mod pool;
mod session;
mod worker;

pub use config::{env_hash, should_rotate, validate_pinned_packages, PoolSettings};
pub use endpoint::{context_endpoint, parse_context_meta, Endpoint};
pub use image::DEFAULT_IMAGE;
pub use session::DockerSession;

use crate::endpoint::Connection;
use crate::image::{ImageRef, LABEL_ENGINE, LABEL_MANAGED, LABEL_OWNER, LABEL_POOL};
use crate::isolation::IsolationError;
use crate::pool::Pool;
use crate::worker::{ContainerSpec, RunFailure, SpawnError, Worker};
use bollard::Docker;
use spr_policy::RunnerPolicy;
use spr_protocol::{
    assemble_result, Attachments, CgroupReceipt, FilesystemReceipt, Json, MissingProtection,
    NamespacesReceipt, RlimitsReceipt, RunRequest, RunnerResult, SandboxReceipt, SeccompReceipt,
};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of a Docker engine. `None` means the documented default; a count or a
/// duration of 0 is refused by `DockerEngine::new` (as in the local engine's
/// configuration), never read as the default.
#[derive(Debug, Clone, Default)]
pub struct DockerEngineConfig {
    /// Image to run (the original's `container_registry`). Default: the runtime image
    /// built by `cargo xtask image`.
    pub image: Option<String>,
    /// Pinned `name==version` specs baked into a derived, cached image.
    pub packages: Vec<String>,
    /// Namespace for the derived image's content hash.
    pub name: Option<String>,
    /// Containers kept warm; default [`spr_protocol::default_pool_size`], `min(cores, 4)`.
    pub pool_size: Option<usize>,
    /// Runs a container serves before it is replaced; default 25.
    pub max_runs: Option<u32>,
    /// Seconds from a container's creation until it is replaced; default 600.
    pub ttl_seconds: Option<u64>,
    /// Seconds a run waits for a free container; default: its timeout (at least 1) + 2.
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
    /// Sessions that may be open at once (each holds a container of its own, outside
    /// the pool); default [`spr_protocol::DEFAULT_MAX_SESSIONS`].
    pub max_sessions: Option<usize>,
    /// Modules the harness of every container imports before any request (dotted
    /// names, from the image or its derived `packages`): runs fork with them loaded,
    /// each with its own copy-on-write copy. Checked by `DockerEngine::new`.
    pub preload: Vec<String>,
    /// Python the harness of every container runs after the preload, before any
    /// request: what the modules set up on first use is then in every run's process,
    /// and the memory it writes is copied while each run's process waits. Operator
    /// code, never a caller's. Checked by `DockerEngine::new`.
    pub warmup: Option<String>,
    /// What the names of the engine's containers begin with (default `spr`; the Python
    /// package's `safe_py_runner` uses `safe-py-runner`, the original's). Ownership is
    /// the managed label's, never the name's.
    pub container_prefix: Option<String>,
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
    /// The message already says that Docker is not reachable, where and what to do.
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Api(String),
    /// A new container's harness failed in the engine's `preload` or `warmup`: every
    /// container this engine starts would fail the same way.
    #[error("{0}")]
    Preload(String),
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

/// What container names begin with unless `container_prefix` says otherwise.
pub const DEFAULT_CONTAINER_PREFIX: &str = "spr";

/// Time past the policy's timeout before the host gives up on a worker that has not
/// reported (the harness enforces the timeout itself; this is the backstop).
const BACKSTOP_GRACE: Duration = Duration::from_secs(5);

/// The Docker engine. Cheap to clone: clones share one pool and one connection.
#[derive(Debug, Clone)]
pub struct DockerEngine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: DockerEngineConfig,
    /// Validated, sorted and deduplicated package specs.
    packages: Vec<String>,
    pool: Pool,
    conn: tokio::sync::Mutex<Option<Connection>>,
    /// The resolved image, per endpoint (cached like the original's per-instance cache).
    image: tokio::sync::Mutex<Option<(String, ImageRef)>>,
    next_id: AtomicU64,
    prewarm_started: AtomicBool,
    hostname: String,
    /// The owner label of this engine's containers (`pid:starttime@hostname`).
    owner: String,
    /// Endpoints whose containers of dead owners this engine has already removed.
    swept: std::sync::Mutex<HashSet<String>>,
    /// One permit per open session: the engine's cap.
    sessions: Arc<tokio::sync::Semaphore>,
}

impl DockerEngine {
    /// Validate the options (no IO: the daemon is contacted on first use).
    pub fn new(config: DockerEngineConfig) -> Result<Self, DockerEngineError> {
        let packages = config::validate(&config)?;
        let settings = PoolSettings::from_config(&config);
        let host = hostname();
        Ok(DockerEngine {
            inner: Arc::new(Inner {
                packages,
                pool: Pool::new(settings),
                conn: tokio::sync::Mutex::new(None),
                image: tokio::sync::Mutex::new(None),
                next_id: AtomicU64::new(1),
                prewarm_started: AtomicBool::new(false),
                owner: owner::label_for_this_process(&host),
                hostname: host,
                swept: std::sync::Mutex::new(HashSet::new()),
                sessions: Arc::new(tokio::sync::Semaphore::new(
                    config
                        .max_sessions
                        .unwrap_or(spr_protocol::DEFAULT_MAX_SESSIONS),
                )),
                config,
            }),
        })
    }

    pub fn config(&self) -> &DockerEngineConfig {
        &self.inner.config
    }

    /// The pool settings after defaults.
    pub fn pool_settings(&self) -> PoolSettings {
        self.inner.pool.settings
    }

    /// The daemon this engine talks to (reads the Docker context store if configured).
    pub fn endpoint(&self) -> Result<Endpoint, DockerEngineError> {
        endpoint::resolve(&self.inner.config).map_err(DockerEngineError::Invalid)
    }

    /// Connect and check the daemon answers; returns the endpoint's canonical name.
    pub async fn ping(&self) -> Result<String, DockerAdminError> {
        let (docker, endpoint) = self
            .inner
            .client()
            .await
            .map_err(DockerAdminError::Unreachable)?;
        docker.ping().await.map_err(|e| {
            DockerAdminError::Unreachable(format!("Docker is not reachable at {endpoint}: {e}"))
        })?;
        Ok(endpoint)
    }

    /// Names of the idle pooled containers (diagnostics and tests).
    pub fn idle_containers(&self) -> Vec<String> {
        self.inner.pool.idle_names()
    }

    /// Start containers for `policy`'s pool key until the pool is full. Returns how many
    /// were started.
    pub async fn prewarm(&self, policy: &RunnerPolicy) -> Result<usize, DockerAdminError> {
        let (docker, endpoint) = self
            .inner
            .client()
            .await
            .map_err(DockerAdminError::Unreachable)?;
        let image = self
            .inner
            .image(&docker, &endpoint)
            .await
            .map_err(DockerAdminError::Api)?;
        let spec = self
            .inner
            .spec(&endpoint, image, policy)
            .map_err(|e| DockerAdminError::Api(e.to_string()))?;
        let labels = self.inner.labels(&spec);
        self.inner
            .pool
            .fill(&docker, &spec, &labels)
            .await
            .map_err(|e| match e {
                SpawnError::Preload(message) => DockerAdminError::Preload(message),
                SpawnError::Other(message) => DockerAdminError::Api(message),
            })
    }

    /// Open a session under `policy`: a container of its own (outside the pool, with
    /// the same hardening and labels), whose one process keeps the session's globals,
    /// imports and files from one cell to the next. Counts against `max_sessions`.
    pub async fn open_session(
        &self,
        policy: &RunnerPolicy,
    ) -> Result<DockerSession, spr_protocol::SessionError> {
        use spr_protocol::SessionError;
        let permit = self
            .inner
            .sessions
            .clone()
            .try_acquire_owned()
            .map_err(|_| SessionError::TooMany {
                limit: self.max_sessions(),
            })?;
        let policy = policy
            .resolve()
            .map_err(|e| SessionError::Start(format!("Cannot load the policy: {e}")))?;
        let inner = &self.inner;
        let (docker, endpoint) = inner.client().await.map_err(SessionError::Start)?;
        let image = inner
            .image(&docker, &endpoint)
            .await
            .map_err(SessionError::Start)?;
        let spec = inner
            .spec(&endpoint, image, &policy)
            .map_err(|e| SessionError::Start(e.to_string()))?;
        let labels = inner.labels(&spec);
        let worker = Worker::spawn(&docker, &spec, labels)
            .await
            .map_err(|e| SessionError::Start(e.into()))?;
        let mut receipt = inner.receipt(&spec, &worker, &policy);
        spr_protocol::session_receipt(&mut receipt);
        Ok(DockerSession::new(docker, worker, policy, receipt, permit))
    }

    fn max_sessions(&self) -> usize {
        self.inner
            .config
            .max_sessions
            .unwrap_or(spr_protocol::DEFAULT_MAX_SESSIONS)
    }

    /// Sessions open now.
    pub fn open_sessions(&self) -> usize {
        self.max_sessions() - self.inner.sessions.available_permits()
    }

    /// Run code in a warm container with `input_data` (a JSON object, sent as written).
    /// Engine failures come back as `ok=false`, `exit_code=125` with an error that says
    /// what to do; there is no fallback.
    pub async fn run(&self, code: &str, input_data: &Json, policy: &RunnerPolicy) -> RunnerResult {
        self.run_with(code, input_data, policy, &Attachments::default())
            .await
    }

    /// [`DockerEngine::run`] with files written into the run's scratch (the container's
    /// tmpfs) before the code runs and the files matching `collect` returned after.
    pub async fn run_with(
        &self,
        code: &str,
        input_data: &Json,
        policy: &RunnerPolicy,
        attachments: &Attachments,
    ) -> RunnerResult {
        let policy = match policy.resolve() {
            Ok(p) => p,
            Err(e) => {
                return RunnerResult::infrastructure_error(format!("Cannot load the policy: {e}"))
            }
        };
        if let Err(e) = attachments.validate(&policy) {
            return RunnerResult::invalid_request(format!("Refused attachments: {e}"));
        }
        let inner = &self.inner;
        let (docker, endpoint) = match inner.client().await {
            Ok(c) => c,
            Err(e) => return RunnerResult::infrastructure_error(e),
        };
        let image = match inner.image(&docker, &endpoint).await {
            Ok(image) => image,
            Err(e) => return RunnerResult::infrastructure_error(e),
        };
        let spec = match inner.spec(&endpoint, image, &policy) {
            Ok(spec) => spec,
            Err(e) => return RunnerResult::infrastructure_error(e.to_string()),
        };
        let labels = inner.labels(&spec);
        if inner.config.prewarm && !inner.prewarm_started.swap(true, Ordering::SeqCst) {
            let (inner2, docker2, spec2, labels2) = (
                self.inner.clone(),
                docker.clone(),
                spec.clone(),
                labels.clone(),
            );
            tokio::spawn(async move {
                let _ = inner2.pool.fill(&docker2, &spec2, &labels2).await;
            });
        }
        let acquire_timeout = inner
            .pool
            .settings
            .acquire_timeout_for(policy.timeout_seconds);
        let backstop = Duration::from_secs(policy.timeout_seconds) + BACKSTOP_GRACE;
        // A container found dead only when the run is sent to it is replaced once.
        let mut undelivered = String::new();
        for _attempt in 0..2 {
            let worker = match inner
                .pool
                .acquire(&docker, &spec, &labels, acquire_timeout)
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    // The image may have been removed under us: look it up again next time.
                    inner.forget_image().await;
                    return RunnerResult::infrastructure_error(e);
                }
            };
            let request = RunRequest {
                id: inner.next_id.fetch_add(1, Ordering::Relaxed),
                code: code.to_string(),
                input_data: input_data.clone(),
                policy: policy.clone(),
                files: attachments.files.clone(),
                collect: attachments.collect.clone(),
            };
            let mut checkout = pool::Checkout {
                pool: &inner.pool,
                docker: &docker,
                spec: &spec,
                worker: Some(worker),
            };
            // A wedged container has no report to time the run: the host's own clock does.
            let started = Instant::now();
            let outcome = checkout.worker().run(request, backstop).await;
            let waited = started.elapsed();
            let worker = checkout.finish();
            let mut receipt = inner.receipt(&spec, &worker, &policy);
            match outcome {
                Ok(report) => {
                    // A container whose scratch could not be made fresh for the next run
                    // says so (and its harness exits): it is never reused.
                    if inner.pool.release(&docker, &spec, worker, !report.retire) {
                        // Used up (max_runs, ttl): start its successor now, off the
                        // critical path of the next run.
                        let (inner2, docker2, spec2, labels2) = (
                            self.inner.clone(),
                            docker.clone(),
                            spec.clone(),
                            labels.clone(),
                        );
                        tokio::spawn(async move {
                            inner2.pool.replace_one(&docker2, &spec2, &labels2).await;
                        });
                    }
                    let mut result = assemble_result(&report, &policy);
                    receipt.setup_ms = report.setup_us.map(|us| us as f64 / 1000.0);
                    result.sandbox = Some(receipt);
                    return result;
                }
                Err(RunFailure::NotDelivered(why)) => {
                    inner.pool.release(&docker, &spec, worker, false);
                    undelivered = why;
                    continue;
                }
                Err(RunFailure::TooLarge(e)) => {
                    inner.pool.release(&docker, &spec, worker, true);
                    return RunnerResult::invalid_request(format!("Refused: the run's code, input_data and files together are too large to send: {e}"));
                }
                Err(RunFailure::Died(why)) => {
                    inner.pool.release(&docker, &spec, worker, false);
                    return RunnerResult::infrastructure_error(format!(
                        "The run's container failed: {why}. It was discarded; the next run gets a new one"
                    ));
                }
                Err(RunFailure::Wedged) => {
                    // Removing the container kills whatever the run left in it.
                    inner.pool.release(&docker, &spec, worker, false);
                    let mut result = RunnerResult::timeout(&policy, waited);
                    result.error = Some(format!(
                        "Execution timed out after {}s (the container stopped answering and was removed)",
                        policy.timeout_seconds
                    ));
                    return result;
                }
            }
        }
        RunnerResult::infrastructure_error(format!(
            "Could not deliver the run: two containers in a row were gone when it was sent ({undelivered})"
        ))
    }

    pub async fn list_containers(
        &self,
        all_states: bool,
    ) -> Result<Vec<ContainerInfo>, DockerAdminError> {
        let (docker, _) = self
            .inner
            .client()
            .await
            .map_err(DockerAdminError::Unreachable)?;
        admin::list_containers(&docker, all_states).await
    }

    pub async fn list_images(&self) -> Result<Vec<ImageInfo>, DockerAdminError> {
        let (docker, _) = self
            .inner
            .client()
            .await
            .map_err(DockerAdminError::Unreachable)?;
        admin::list_images(&docker).await
    }

    pub async fn stop_container(
        &self,
        id: &str,
        timeout_seconds: u64,
    ) -> Result<(), DockerAdminError> {
        let (docker, _) = self
            .inner
            .client()
            .await
            .map_err(DockerAdminError::Unreachable)?;
        admin::stop_container(&docker, id, timeout_seconds).await
    }

    pub async fn kill_container(&self, id: &str) -> Result<(), DockerAdminError> {
        let (docker, _) = self
            .inner
            .client()
            .await
            .map_err(DockerAdminError::Unreachable)?;
        admin::kill_container(&docker, id).await
    }

    pub async fn cleanup_stale(&self) -> Result<CleanupSummary, DockerAdminError> {
        let (docker, _) = self
            .inner
            .client()
            .await
            .map_err(DockerAdminError::Unreachable)?;
        admin::cleanup_stale(&docker, &self.inner.hostname).await
    }

    /// Remove this engine's pooled containers and stop its SSH tunnel, if any. The engine
    /// stays usable: a later run starts new containers.
    pub async fn shutdown(&self) {
        let docker = {
            let conn = self.inner.conn.lock().await;
            conn.as_ref().map(|c| c.docker.clone())
        };
        self.inner.pool.close(docker.as_ref()).await;
        if let Some(mut conn) = self.inner.conn.lock().await.take() {
            conn.close().await;
        }
        self.inner.forget_image().await;
        self.inner.pool.reopen();
    }
}

impl Inner {
    /// The live client and the endpoint's name, connecting (again) when needed.
    async fn client(&self) -> Result<(Docker, String), String> {
        let mut guard = self.conn.lock().await;
        if let Some(conn) = guard.as_mut() {
            if conn.usable() {
                return Ok((conn.docker.clone(), conn.endpoint.display()));
            }
            conn.close().await;
            *guard = None;
        }
        let endpoint = endpoint::resolve(&self.config)?;
        let name = endpoint.display();
        let conn = Connection::open(endpoint).await.map_err(|e| {
            format!(
                "Docker is not reachable at {name}: {e}. Start the Docker daemon (for example with \
                 .ci/docker-setup.sh) or point docker_host / docker_context / ssh_host at a running one"
            )
        })?;
        let docker = conn.docker.clone();
        *guard = Some(conn);
        self.sweep_once(&docker, &name);
        Ok((docker, name))
    }

    /// On the first connection to a daemon: remove, in the background, the managed
    /// containers this host's dead spr processes left there. A running container stops
    /// by itself when its host dies (its stdin closes), but a paused one cannot notice,
    /// a created one was never started, and older builds' containers may not stop. The
    /// first run does not wait for it.
    fn sweep_once(&self, docker: &Docker, endpoint: &str) {
        let first = self
            .swept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(endpoint.to_string());
        if !first {
            return;
        }
        let (docker, host) = (docker.clone(), self.hostname.clone());
        tokio::spawn(async move {
            let _ = admin::remove_dead_owners(&docker, &host).await;
        });
    }

    async fn image(&self, docker: &Docker, endpoint: &str) -> Result<ImageRef, String> {
        let mut cached = self.image.lock().await;
        if let Some((ep, image)) = cached.as_ref() {
            if ep == endpoint {
                return Ok(image.clone());
            }
        }
        let reference = self.config.image.as_deref().unwrap_or(DEFAULT_IMAGE);
        let mut image = image::check_image(docker, reference, endpoint).await?;
        if !self.packages.is_empty() {
            image = image::ensure_env_image(
                docker,
                &image.id,
                self.config.name.as_deref(),
                &self.packages,
                endpoint,
            )
            .await?;
        }
        *cached = Some((endpoint.to_string(), image.clone()));
        Ok(image)
    }

    async fn forget_image(&self) {
        *self.image.lock().await = None;
    }

    fn spec(
        &self,
        endpoint: &str,
        image: ImageRef,
        policy: &RunnerPolicy,
    ) -> Result<ContainerSpec, IsolationError> {
        let cpus = self.config.cpus.unwrap_or(config::DEFAULT_CPUS);
        let reference = self.config.image.as_deref().unwrap_or(DEFAULT_IMAGE);
        Ok(ContainerSpec {
            endpoint: endpoint.to_string(),
            arch: isolation::image_arch(reference, image.arch.as_deref())?,
            image_id: image.id,
            memory_mb: worker::memory_class_mb(
                policy.memory_limit_mb,
                !self.config.preload.is_empty() || self.config.warmup.is_some(),
            ),
            runtime: self.config.runtime.clone(),
            nano_cpus: (cpus * 1e9).round() as i64,
            preload: self.config.preload.clone(),
            warmup: self.config.warmup.clone(),
            name_prefix: self
                .config
                .container_prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTAINER_PREFIX.to_string()),
        })
    }

    fn labels(&self, spec: &ContainerSpec) -> HashMap<String, String> {
        let mut labels = HashMap::new();
        labels.insert(LABEL_MANAGED.to_string(), "true".to_string());
        labels.insert(LABEL_ENGINE.to_string(), "docker".to_string());
        labels.insert(LABEL_OWNER.to_string(), self.owner.clone());
        labels.insert(LABEL_POOL.to_string(), spec.key_hash());
        labels
    }

    /// What protected this run, for `RunnerResult::sandbox`: what the container was
    /// created with (the daemon applies it or refuses to start the container) and what
    /// its harness applies to every run (its greeting; a run whose isolation fails never
    /// executes).
    fn receipt(
        &self,
        spec: &ContainerSpec,
        worker: &Worker,
        policy: &RunnerPolicy,
    ) -> SandboxReceipt {
        let mut details = std::collections::BTreeMap::new();
        let mut put = |k: &str, v: serde_json::Value| {
            details.insert(k.to_string(), v);
        };
        put("endpoint", spec.endpoint.clone().into());
        put("container", worker.name.clone().into());
        put(
            "runtime",
            spec.runtime.as_deref().unwrap_or("default").into(),
        );
        put("cap_drop", "ALL".into());
        put("no_new_privileges", true.into());
        put("user", worker::CONTAINER_USER.into());
        put("container_memory_mb", spec.memory_mb.into());
        put("run_memory_limit_mb", policy.memory_limit_mb.into());
        put("cpus", (spec.nano_cpus as f64 / 1e9).into());
        put("fresh_process", true.into());
        let iso = &worker.isolation;
        let mut missing = vec![MissingProtection {
            name: "user_namespace".into(),
            reason: "Docker containers share the host's user namespace unless dockerd runs with userns-remap; the run is uid 65534 with no capabilities".into(),
        }];
        missing.extend(isolation::missing(iso));
        let sb = &policy.sandbox;
        let mut rlimits = RlimitsReceipt {
            open_files: Some(sb.max_open_files),
            file_size_mb: Some(sb.max_file_size_mb),
            core_mb: Some(0),
            cpu_seconds: Some(policy.timeout_seconds + 1),
            // RLIMIT_NPROC would count every process of uid 65534 on the host: the
            // container's pids limit bounds processes instead.
            processes: None,
            ..RlimitsReceipt::default()
        };
        rlimits.set_memory(
            policy.memory_limit_mb,
            worker.base_data_kb,
            worker.preload.as_deref(),
        );
        SandboxReceipt {
            engine: "docker".into(),
            // Docker's defaults: no user namespace unless the daemon remaps users. The
            // namespaces are the container's, shared by its runs one after another.
            namespaces: Some(NamespacesReceipt {
                user: false,
                mount: true,
                pid: true,
                network: true,
                ipc: true,
                uts: true,
            }),
            filesystem: Some(FilesystemReceipt {
                read_only_root: true,
                scratch_tmpfs_mb: Some(worker::TMPFS_SIZE_MB),
                ..Default::default()
            }),
            landlock_abi: iso.landlock_abi,
            // The runs' own deny-list, on top of Docker's default profile.
            seccomp: iso.seccomp.then(|| SeccompReceipt {
                mode: "deny-list".into(),
                denied_syscalls: worker.seccomp_denied,
            }),
            rlimits: Some(rlimits),
            cgroup: Some(CgroupReceipt {
                version: 0,
                memory_limit_mb: Some(spec.memory_mb),
                pids_max: Some(worker::PIDS_LIMIT as u64),
            }),
            network: Some("none".into()),
            capabilities_dropped: iso.capabilities_dropped,
            per_run: Some(iso.for_policy(policy)),
            missing,
            details,
            ..Default::default()
        }
    }
}

/// This machine's name, for owner labels (`pid:starttime@hostname`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// 12 hex digits unique within this process and very likely across processes.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let text = format!("{}|{n}|{nanos}", std::process::id());
    config::sha256_hex(text.as_bytes())[..12].to_string()
}
