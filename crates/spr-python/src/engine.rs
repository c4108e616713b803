//! `spr._native.Engine`: a local or Docker engine, its runs, sessions and administration.

use crate::convert::{attachments, input, policy_source, result_parts};
use crate::errors::{policy_error, run_error, runtime_error, session_error, value_error};
use crate::runtime::{block_on, check_process};
use crate::session::PySession;
use crate::task::{submit, PyTask};
use pyo3::exceptions::PyFileNotFoundError;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use spr_core::{
    run_code_with, Attachments, DockerAdminError, DockerEngine, DockerEngineConfig, Engine, Json,
    LocalEngine, LocalEngineConfig, LocalEngineError, PolicySource, RunError, RunnerResult,
};
use std::path::PathBuf;
use std::sync::Arc;

// One per engine, behind an `Arc`: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Kind {
    Local(LocalEngine),
    Docker(DockerEngine),
}

impl Kind {
    pub(crate) fn engine(&self) -> &dyn Engine {
        match self {
            Kind::Local(e) => e,
            Kind::Docker(e) => e,
        }
    }
}

/// An engine of spr. Cheap to share between threads: every method releases the GIL
/// while it waits, and runs of many threads proceed at once up to the pool's size.
#[pyclass(frozen, name = "Engine", module = "spr._native")]
pub(crate) struct PyEngine {
    pub(crate) kind: Arc<Kind>,
    /// The process that made the engine: its workers and its runtime are that process's,
    /// and a process forked from it cannot use them.
    pub(crate) pid: u32,
}

impl Drop for PyEngine {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // A forked child dropping its copy of the parent's engine: tearing it down
            // would act on the parent's workers from a process with no runtime. The
            // memory goes with the child.
            std::mem::forget(self.kind.clone());
        }
    }
}

impl PyEngine {
    fn new(kind: Kind) -> Self {
        PyEngine {
            kind: Arc::new(kind),
            pid: std::process::id(),
        }
    }

    /// One administration call of the Docker engine, with the GIL released.
    fn admin<T, F, Fut>(&self, py: Python<'_>, call: F) -> PyResult<T>
    where
        F: FnOnce(DockerEngine) -> Fut,
        Fut: std::future::Future<Output = Result<T, DockerAdminError>> + Send + 'static,
        T: Send + 'static,
    {
        let engine = self.docker_engine()?.clone();
        block_on(py, call(engine))?.map_err(admin_error)
    }

    /// The engine, refused in a process forked after it was made.
    fn usable(&self) -> PyResult<&Arc<Kind>> {
        check_process(self.pid)?;
        Ok(&self.kind)
    }
}

/// Errors of making or preparing a local engine: refused options are `ValueError`, a
/// missing interpreter or uv `FileNotFoundError` (as the original's missing uv), the rest
/// `RuntimeError`.
fn local_error(e: &LocalEngineError) -> PyErr {
    match e {
        LocalEngineError::EmptyVenvDir
        | LocalEngineError::ZeroPoolSize
        | LocalEngineError::ZeroMaxSessions
        | LocalEngineError::InvalidPackage(_)
        | LocalEngineError::InvalidPreload(_)
        | LocalEngineError::InvalidWarmup(_)
        | LocalEngineError::TooMany { .. } => value_error(e),
        LocalEngineError::PythonNotFound { .. } | LocalEngineError::UvNotFound => {
            PyFileNotFoundError::new_err(crate::errors::chain(e))
        }
        other => runtime_error(other),
    }
}

async fn run(
    kind: Arc<Kind>,
    code: String,
    input: Option<Json>,
    source: PolicySource,
    attachments: Attachments,
) -> Result<RunnerResult, RunError> {
    run_code_with(&code, kind.engine(), input, source, &attachments).await
}

fn finish_run(py: Python<'_>, output: Result<RunnerResult, RunError>) -> PyResult<Py<PyAny>> {
    match output {
        Ok(result) => Ok(result_parts(result).into_pyobject(py)?.into_any().unbind()),
        Err(e) => Err(run_error(&e)),
    }
}

fn admin_error(e: DockerAdminError) -> PyErr {
    match e {
        DockerAdminError::NotManaged(_) => value_error(&e),
        other => runtime_error(&other),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("admin records always serialize")
}

impl PyEngine {
    fn docker_engine(&self) -> PyResult<&DockerEngine> {
        match &**self.usable()? {
            Kind::Docker(e) => Ok(e),
            Kind::Local(_) => Err(PyRuntimeError::new_err(
                "this is a local engine: container administration needs a Docker engine",
            )),
        }
    }
}

#[pymethods]
impl PyEngine {
    /// A local engine over the venv at `venv_dir` (created, with `packages`, when missing).
    #[staticmethod]
    #[pyo3(signature = (venv_dir, venv_manager = "auto", packages = Vec::new(), pool_size = None,
        preload = Vec::new(), sandbox = None, python = None, max_sessions = None, scratch_dir = None,
        warmup = None))]
    #[allow(clippy::too_many_arguments)]
    fn local(
        venv_dir: PathBuf,
        venv_manager: &str,
        packages: Vec<String>,
        pool_size: Option<usize>,
        preload: Vec<String>,
        sandbox: Option<&str>,
        python: Option<PathBuf>,
        max_sessions: Option<usize>,
        scratch_dir: Option<PathBuf>,
        warmup: Option<String>,
    ) -> PyResult<Self> {
        let mut config = LocalEngineConfig::new(venv_dir);
        config.venv_manager = venv_manager.parse().map_err(PyValueError::new_err)?;
        config.packages = packages;
        config.preload = preload;
        config.warmup = warmup;
        config.pool_size = pool_size;
        if let Some(mode) = sandbox {
            config.sandbox = mode.parse().map_err(PyValueError::new_err)?;
        }
        config.python = python;
        config.max_sessions = max_sessions;
        config.scratch_dir = scratch_dir;
        // Only checks the options: no IO, so no need to let go of the GIL.
        let engine = LocalEngine::new(config).map_err(|e| local_error(&e))?;
        Ok(PyEngine::new(Kind::Local(engine)))
    }

    /// A Docker engine (no IO until its first use).
    #[staticmethod]
    #[pyo3(signature = (image = None, packages = Vec::new(), name = None, pool_size = None,
        max_runs = None, ttl_seconds = None, acquire_timeout_seconds = None, docker_host = None,
        docker_context = None, ssh_host = None, ssh_user = None, ssh_port = None,
        ssh_key_path = None, preload = Vec::new(), max_sessions = None, runtime = None,
        cpus = None, container_prefix = None, warmup = None))]
    #[allow(clippy::too_many_arguments)]
    fn docker(
        image: Option<String>,
        packages: Vec<String>,
        name: Option<String>,
        pool_size: Option<usize>,
        max_runs: Option<u32>,
        ttl_seconds: Option<u64>,
        acquire_timeout_seconds: Option<u64>,
        docker_host: Option<String>,
        docker_context: Option<String>,
        ssh_host: Option<String>,
        ssh_user: Option<String>,
        ssh_port: Option<u16>,
        ssh_key_path: Option<PathBuf>,
        preload: Vec<String>,
        max_sessions: Option<usize>,
        runtime: Option<String>,
        cpus: Option<f64>,
        container_prefix: Option<String>,
        warmup: Option<String>,
    ) -> PyResult<Self> {
        let config = DockerEngineConfig {
            image,
            packages,
            name,
            pool_size,
            max_runs,
            ttl_seconds,
            acquire_timeout_seconds,
            docker_host,
            docker_context,
            ssh_host,
            ssh_user,
            ssh_port,
            ssh_key_path,
            runtime,
            cpus,
            prewarm: false,
            max_sessions,
            preload,
            warmup,
            container_prefix,
        };
        let engine = DockerEngine::new(config).map_err(|e| value_error(&e))?;
        Ok(PyEngine::new(Kind::Docker(engine)))
    }

    /// "local" or "docker".
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.engine().name()
    }

    /// Prepare the local engine now (find Python, create the venv, install its packages):
    /// what the original's constructor did. A no-op for a Docker engine, whose image is
    /// resolved on first use.
    fn prepare(&self, py: Python<'_>) -> PyResult<()> {
        let kind = self.usable()?.clone();
        block_on(py, async move {
            match &*kind {
                Kind::Local(e) => e.prepare().await.map_err(|e| local_error(&e)),
                Kind::Docker(_) => Ok(()),
            }
        })?
    }

    /// Start the warm workers (or containers) now, so the first runs are warm too.
    fn warm_up(&self, py: Python<'_>) -> PyResult<()> {
        let kind = self.usable()?.clone();
        block_on(py, async move {
            kind.engine().warm_up().await.map_err(|e| runtime_error(&e))
        })?
    }

    /// Stop the idle workers (or containers). Runs in flight finish first.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let kind = self.usable()?.clone();
        block_on(py, async move { kind.engine().shutdown().await })
    }

    /// Run `code`; the `RunnerResult` as `(record, result, value)` JSON texts (see
    /// `result_parts`). Refusals (policy, input, files) raise `ValueError`.
    #[pyo3(signature = (code, input_json = None, policy_json = None, policy_file = None,
        files = Vec::new(), collect = Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        code: String,
        input_json: Option<&str>,
        policy_json: Option<&str>,
        policy_file: Option<PathBuf>,
        files: Vec<(String, Vec<u8>)>,
        collect: Vec<String>,
    ) -> PyResult<(String, String, Option<String>)> {
        let kind = self.usable()?.clone();
        let source = policy_source(policy_json, policy_file)?;
        let input = input(input_json)?;
        let future = run(kind, code, input, source, attachments(files, collect));
        match block_on(py, future)? {
            Ok(result) => Ok(result_parts(result)),
            Err(e) => Err(run_error(&e)),
        }
    }

    /// [`PyEngine::run`] without blocking: `callback(result_json, None)` or
    /// `callback(None, exception)` is called from spr's runtime when the run ends.
    #[pyo3(signature = (callback, code, input_json = None, policy_json = None, policy_file = None,
        files = Vec::new(), collect = Vec::new()))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        callback: Py<PyAny>,
        code: String,
        input_json: Option<&str>,
        policy_json: Option<&str>,
        policy_file: Option<PathBuf>,
        files: Vec<(String, Vec<u8>)>,
        collect: Vec<String>,
    ) -> PyResult<PyTask> {
        let kind = self.usable()?.clone();
        let source = policy_source(policy_json, policy_file)?;
        let input = input(input_json)?;
        let future = run(kind, code, input, source, attachments(files, collect));
        submit(future, finish_run, callback)
    }

    /// Open a session under a policy fixed for its life.
    #[pyo3(signature = (policy_json = None, policy_file = None))]
    fn open_session(
        &self,
        py: Python<'_>,
        policy_json: Option<&str>,
        policy_file: Option<PathBuf>,
    ) -> PyResult<PySession> {
        let kind = self.usable()?.clone();
        let source = policy_source(policy_json, policy_file)?;
        let policy = source.resolve().map_err(|e| policy_error(&e))?;
        let session = block_on(py, async move { kind.engine().open_session(&policy).await })?
            .map_err(|e| session_error(&e))?;
        Ok(PySession::new(session, self.pid))
    }

    /// Sessions open now.
    fn open_sessions(&self) -> usize {
        match &*self.kind {
            Kind::Local(e) => e.open_sessions(),
            Kind::Docker(e) => e.open_sessions(),
        }
    }

    /// Managed containers, as JSON (a list of `ContainerInfo` records).
    #[pyo3(signature = (all_states = false))]
    fn list_containers(&self, py: Python<'_>, all_states: bool) -> PyResult<String> {
        self.admin(
            py,
            move |e| async move { e.list_containers(all_states).await },
        )
        .map(|v| to_json(&v))
    }

    /// Managed images, as JSON (a list of `ImageInfo` records).
    fn list_images(&self, py: Python<'_>) -> PyResult<String> {
        self.admin(py, |e| async move { e.list_images().await })
            .map(|v| to_json(&v))
    }

    /// Stop a managed container (`ValueError` for one spr does not manage).
    #[pyo3(signature = (container_id, timeout_seconds = 10))]
    fn stop_container(
        &self,
        py: Python<'_>,
        container_id: String,
        timeout_seconds: u64,
    ) -> PyResult<()> {
        self.admin(py, move |e| async move {
            e.stop_container(&container_id, timeout_seconds).await
        })
    }

    /// Kill a managed container (`ValueError` for one spr does not manage).
    fn kill_container(&self, py: Python<'_>, container_id: String) -> PyResult<()> {
        self.admin(
            py,
            move |e| async move { e.kill_container(&container_id).await },
        )
    }

    /// Remove stopped managed containers and unused managed images; JSON of the counts.
    fn cleanup_stale(&self, py: Python<'_>) -> PyResult<String> {
        self.admin(py, |e| async move { e.cleanup_stale().await })
            .map(|v| to_json(&v))
    }
}
