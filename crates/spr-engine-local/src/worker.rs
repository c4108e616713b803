//! One warm Python worker process and the frame exchange with it.

use crate::sandbox::{self, Layout, SandboxMode, WorkerSandbox};
use spr_protocol::MissingProtection;
use spr_protocol::{
    encode_frame, harness_hash, FrameDecoder, FrameError, Hello, HostMessage, RunReport,
    RunRequest, WorkerMessage, PROTOCOL_VERSION,
};
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a new worker may take to greet (interpreter start and preloads).
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// The tail of a worker's own stderr kept for error messages.
const STDERR_TAIL: usize = 4096;

/// What it takes to start a worker.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    pub python: PathBuf,
    pub harness: PathBuf,
    pub scratch: PathBuf,
    pub sandbox: Arc<sandbox::Context>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerError {
    #[error("could not start {python}: {source}")]
    Spawn {
        python: String,
        #[source]
        source: std::io::Error,
    },
    #[error("worker did not greet within {0:?}{1}")]
    HelloTimeout(Duration, String),
    #[error("worker speaks protocol {got}, this host speaks {PROTOCOL_VERSION}")]
    ProtocolMismatch { got: u32 },
    #[error("worker runs harness {got}, expected {expected}")]
    HarnessMismatch { got: String, expected: String },
    #[error("worker exited unexpectedly{0}")]
    Exited(String),
    #[error("worker reported a fatal error: {0}")]
    Fatal(String),
    #[error("worker sent a bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error("worker sent an unexpected message")]
    Unexpected,
    #[error("worker did not answer within the deadline")]
    Unresponsive,
    #[error("i/o with the worker failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Sandbox(String),
}

#[derive(Debug)]
pub(crate) struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    decoder: FrameDecoder,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    pub hello: Hello,
    /// What the sandbox applied to this worker (and so to each of its runs).
    pub sandbox: WorkerSandbox,
    /// This worker's own host directory (removed when the worker is dropped).
    _dir: Option<WorkerDir>,
}

/// A worker's host directory: the mount point of its new root, or its scratch when
/// it has no namespaces.
#[derive(Debug)]
struct WorkerDir(PathBuf);

impl Drop for WorkerDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Worker {
    /// Start a worker shaped by `layout`, with as much of the sandbox as the engine's
    /// mode and this machine allow. In `auto` mode a worker whose namespace set-up
    /// fails is started without namespaces, and its receipts say why.
    pub(crate) async fn spawn(spec: &WorkerSpec, layout: &Layout) -> Result<Worker, WorkerError> {
        let ctx = &spec.sandbox;
        if !ctx.active() {
            let mut worker = Worker::start(spec, None).await?;
            worker.sandbox.missing = ctx.missing();
            return Ok(worker);
        }
        let namespaced = ctx.namespaces();
        match Worker::start(spec, Some((layout, namespaced))).await {
            Err(e) if namespaced && ctx.mode == SandboxMode::Auto => {
                let mut worker = Worker::start(spec, Some((layout, false))).await?;
                for name in ["namespaces", "filesystem"] {
                    worker.sandbox.missing.push(MissingProtection {
                        name: name.into(),
                        reason: e.to_string(),
                    });
                }
                Ok(worker)
            }
            other => other,
        }
    }

    async fn start(
        spec: &WorkerSpec,
        sandboxed: Option<(&Layout, bool)>,
    ) -> Result<Worker, WorkerError> {
        static NEXT_DIR: AtomicU64 = AtomicU64::new(0);
        let ctx = &spec.sandbox;
        let mut cmd = Command::new(&spec.python);
        let dir;
        let mut setup = None;
        let scratch_arg = match sandboxed {
            None => {
                cmd.arg("-I").arg("-B").arg(&spec.harness);
                // A folder of its own, so the worker may wipe whatever a run left
                // next to its run directory without touching other workers' runs.
                let own = spec
                    .scratch
                    .join(format!("w-{}", NEXT_DIR.fetch_add(1, Ordering::Relaxed)));
                std::fs::create_dir_all(&own)?;
                dir = Some(WorkerDir(own.clone()));
                cmd.arg("--own-scratch");
                own
            }
            Some((layout, namespaced)) => {
                let own = ctx
                    .scratch_root()
                    .join(format!("w-{}", NEXT_DIR.fetch_add(1, Ordering::Relaxed)));
                let new_root = own.join("root");
                std::fs::create_dir_all(&new_root)?;
                dir = Some(WorkerDir(own.clone()));
                let cgroup = ctx.cgroup();
                let (read_end, write_end) = sandbox::report_pipe()?;
                let plan = ctx.child_plan(
                    layout,
                    namespaced,
                    &own,
                    cgroup.as_ref(),
                    write_end.as_raw_fd(),
                );
                let landlock_abi = plan.landlock.as_ref().map(|l| l.abi);
                let seccomp_denied = plan.seccomp.as_ref().map_or(0, |f| f.denied);
                let mount_steps = sandbox::mount_step_names(&plan);
                cmd.arg("-I").arg("-B").arg(ctx.harness_arg(namespaced));
                cmd.current_dir(&own);
                sandbox::install(&mut cmd, plan);
                setup = Some((
                    read_end,
                    write_end,
                    WorkerSandbox {
                        landlock_abi,
                        seccomp_denied,
                        cgroup,
                        scratch_mb: ctx.scratch_mb,
                        layout: layout.clone(),
                        missing: ctx.missing(),
                        ..WorkerSandbox::default()
                    },
                    mount_steps,
                ));
                if namespaced {
                    PathBuf::from("/tmp")
                } else {
                    cmd.arg("--own-scratch");
                    own
                }
            }
        };
        cmd.arg("--scratch")
            .arg(&scratch_arg)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if sandboxed.is_none() {
            cmd.current_dir(&spec.scratch);
        }
        let spawned = cmd.spawn();
        let mut worker_sandbox = WorkerSandbox::default();
        if let Some((mut read_end, write_end, mut ws, mount_steps)) = setup {
            drop(write_end);
            ws.facts = sandbox::Facts::read(&mut read_end);
            if let Some((step, errno)) = ws.facts.failure {
                let _ = spawned.map(|mut c| c.start_kill());
                return Err(WorkerError::Sandbox(sandbox::describe_failure(
                    step,
                    errno,
                    &mount_steps,
                )));
            }
            worker_sandbox = ws;
        }
        let mut child = spawned.map_err(|source| WorkerError::Spawn {
            python: spec.python.display().to_string(),
            source,
        })?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        tokio::spawn(drain_stderr(stderr, stderr_tail.clone()));
        let mut worker = Worker {
            child,
            stdin,
            stdout,
            decoder: FrameDecoder::default(),
            stderr_tail,
            hello: Hello {
                protocol_version: 0,
                harness_hash: String::new(),
                python_version: String::new(),
                pid: 0,
            },
            sandbox: worker_sandbox,
            _dir: dir,
        };
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, worker.read_message()).await {
            Err(_) => {
                return Err(WorkerError::HelloTimeout(
                    HELLO_TIMEOUT,
                    worker.stderr_suffix(),
                ))
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(WorkerMessage::Hello(hello))) => hello,
            Ok(Ok(WorkerMessage::Fatal { message })) => return Err(WorkerError::Fatal(message)),
            Ok(Ok(_)) => return Err(WorkerError::Unexpected),
        };
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(WorkerError::ProtocolMismatch {
                got: hello.protocol_version,
            });
        }
        let expected = harness_hash();
        if hello.harness_hash != expected {
            return Err(WorkerError::HarnessMismatch {
                got: hello.harness_hash,
                expected,
            });
        }
        worker.hello = hello;
        Ok(worker)
    }

    /// Execute one run. `deadline` is the host's backstop: past it the worker is
    /// considered wedged and must be discarded by the caller.
    pub(crate) async fn run(
        &mut self,
        request: &RunRequest,
        deadline: Duration,
    ) -> Result<RunReport, WorkerError> {
        let frame = encode_frame(&HostMessage::Run(request.clone()))?;
        let exchange = async {
            self.stdin.write_all(&frame).await?;
            self.stdin.flush().await?;
            match self.read_message().await? {
                WorkerMessage::Report(report) if report.id == request.id => Ok(report),
                WorkerMessage::Fatal { message } => Err(WorkerError::Fatal(message)),
                _ => Err(WorkerError::Unexpected),
            }
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(WorkerError::Unresponsive),
        }
    }

    async fn read_message(&mut self) -> Result<WorkerMessage, WorkerError> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(message) = self.decoder.next_message::<WorkerMessage>()? {
                return Ok(message);
            }
            let n = self.stdout.read(&mut buf).await?;
            if n == 0 {
                let status = self.child.try_wait().ok().flatten();
                let how = match status {
                    Some(s) => format!(" ({s})"),
                    None => String::new(),
                };
                return Err(WorkerError::Exited(format!(
                    "{how}{}",
                    self.stderr_suffix()
                )));
            }
            self.decoder.push(&buf[..n])?;
        }
    }

    fn stderr_suffix(&self) -> String {
        let tail = self.stderr_tail.lock().expect("stderr tail lock");
        if tail.is_empty() {
            return String::new();
        }
        let bytes: Vec<u8> = tail.iter().copied().collect();
        format!(": {}", String::from_utf8_lossy(&bytes).trim())
    }

    /// Ask the worker to exit; kill it if it does not within a second.
    pub(crate) async fn shutdown(mut self) {
        if let Ok(frame) = encode_frame(&HostMessage::Shutdown) {
            let _ = self.stdin.write_all(&frame).await;
            let _ = self.stdin.flush().await;
        }
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// Kill the worker now (its runs die with it: they hold PR_SET_PDEATHSIG).
    pub(crate) fn kill(mut self) {
        let _ = self.child.start_kill();
    }

    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

async fn drain_stderr(mut stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut tail = tail.lock().expect("stderr tail lock");
        tail.extend(&buf[..n]);
        while tail.len() > STDERR_TAIL {
            tail.pop_front();
        }
    }
}

/// Write the embedded harness where workers can run it.
pub(crate) fn install_harness(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join(spr_protocol::HARNESS_FILE_NAME);
    std::fs::write(&path, spr_protocol::HARNESS_SOURCE)?;
    Ok(path)
}
