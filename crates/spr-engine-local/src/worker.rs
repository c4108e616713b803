//! One warm Python worker process and the frame exchange with it.

use crate::sandbox::{self, Context, Layout, WorkerSandbox};
use crate::scratch::{ScratchRoot, WorkerDir};
use spr_policy::RunnerPolicy;
use spr_protocol::{
    encode_frame, harness_hash, FatalCause, FrameDecoder, FrameError, Freshness, HarnessPlan,
    Hello, HostMessage, RunReport, RunRequest, StartStage, WorkerMessage, PROTOCOL_VERSION,
};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// How long a new worker may take to greet (interpreter start and preloads).
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a worker whose stdout closed is given to exit, for the status its error names.
const EXIT_STATUS_WAIT: Duration = Duration::from_millis(500);
/// The tail of a worker's own stderr kept for error messages.
const STDERR_TAIL: usize = 4096;

/// What it takes to start a worker.
#[derive(Debug, Clone)]
pub(crate) struct WorkerSpec {
    pub python: PathBuf,
    pub root: Arc<ScratchRoot>,
    pub sandbox: Arc<Context>,
    /// The operator's policies, prepared by every worker before any request.
    pub known_policies: Vec<RunnerPolicy>,
    /// Modules every worker imports before it forks its zygotes (validated).
    pub preload: Vec<String>,
    /// Code every worker runs once after the preload (validated).
    pub warmup: Option<String>,
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
    /// The preload or the warm-up failed: every worker started with the same options
    /// fails the same way.
    #[error("worker reported a fatal error: {0}")]
    PreloadFailed(String),
    /// The worker died in the preload or the warm-up, before it could report anything
    /// (a warm-up calling `os._exit`, a module crashing the interpreter, a memory limit
    /// the preload does not fit in): the same options would do it again.
    #[error("the worker died in the preload or warm-up{0}")]
    DiedPreloading(String),
    #[error("worker sent a bad frame: {0}")]
    Frame(#[from] FrameError),
    /// The request did not fit in a frame: nothing was sent, the worker is unharmed.
    #[error("the request is too large to send: {0}")]
    RequestTooLarge(FrameError),
    #[error("worker sent an unexpected message")]
    Unexpected,
    #[error("worker did not answer within the deadline")]
    Unresponsive,
    #[error("i/o with the worker failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Sandbox(String),
}

impl WorkerError {
    fn fatal(message: String, cause: Option<FatalCause>) -> Self {
        match cause {
            Some(FatalCause::Preload) => WorkerError::PreloadFailed(message),
            None => WorkerError::Fatal(message),
        }
    }

    /// This failure of one worker, when another started with the same options: it was
    /// chance (memory short for a moment, a signal), not the preload or warm-up.
    pub(crate) fn by_chance(self) -> Self {
        match self {
            WorkerError::PreloadFailed(message) => WorkerError::Fatal(message),
            WorkerError::DiedPreloading(how) => {
                WorkerError::Exited(format!(" in the preload or warm-up{how}"))
            }
            other => other,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Worker {
    /// The supervisor (see `sandbox::steps`): it ends the worker when `lifeline` closes.
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    decoder: FrameDecoder,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    pub hello: Hello,
    /// What the sandbox applied to this worker (and so to each of its runs).
    pub sandbox: WorkerSandbox,
    /// The host's only end of the lifeline: dropping it makes the supervisor kill the
    /// worker and everything it started.
    lifeline: Option<OwnedFd>,
    _dir: WorkerDir,
}

impl Worker {
    /// Start a worker shaped by `layout`, with the protections the engine decided on
    /// when it was made: a worker that cannot get them does not start (the run that
    /// wanted it gets an error saying why), it never falls back to less.
    pub(crate) async fn spawn(spec: &WorkerSpec, layout: &Layout) -> Result<Worker, WorkerError> {
        let ctx = &spec.sandbox;
        let dir = spec.root.worker_dir()?;
        let (report_r, report_w) = sandbox::pipe()?;
        let (lifeline_r, lifeline_w) = sandbox::pipe()?;
        let cgroup = if ctx.active() { ctx.cgroup() } else { None };
        let mut setup = ctx.worker_setup(
            layout,
            dir.path(),
            report_w.as_raw_fd(),
            lifeline_r.as_raw_fd(),
            cgroup.as_ref(),
            spec.known_policies.clone(),
        );
        setup.plan.preload = spec.preload.clone();
        setup.plan.warmup = spec.warmup.clone();
        let mut cmd = Command::new(&spec.python);
        cmd.arg("-I")
            .arg("-B")
            .arg(&setup.harness)
            .arg("--plan")
            .arg(setup.plan.to_arg())
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .current_dir(if ctx.namespaced() && ctx.active() {
                std::path::Path::new("/")
            } else {
                dir.path()
            })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        sandbox::install(&mut cmd, setup.child);
        let spawned = cmd.spawn();
        drop(report_w);
        drop(lifeline_r);
        let mut report = std::fs::File::from(report_r);
        let facts = sandbox::Facts::read(&mut report);
        if let Some((step, errno)) = facts.failure {
            drop(lifeline_w);
            if let Ok(mut child) = spawned {
                let _ = child.start_kill();
            }
            return Err(WorkerError::Sandbox(sandbox::describe_failure(
                step,
                errno,
                &setup.mounts,
            )));
        }
        let mut child = spawned.map_err(|source| WorkerError::Spawn {
            python: spec.python.display().to_string(),
            source,
        })?;
        let mut ws = setup.sandbox;
        ws.facts = facts;
        ws.cgroup = cgroup;
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
                isolation: Default::default(),
                preload: None,
                base_data_kb: 0,
                memory: Default::default(),
            },
            sandbox: ws,
            lifeline: Some(lifeline_w),
            _dir: dir,
        };
        let mut preloading = false;
        let greeting = tokio::time::timeout(HELLO_TIMEOUT, worker.read_greeting(&mut preloading));
        // A worker too slow to greet is not told apart by its stage: a preload slowed
        // by a loaded machine would otherwise stop a server for good.
        let hello = match greeting.await {
            Err(_) => {
                return Err(WorkerError::HelloTimeout(
                    HELLO_TIMEOUT,
                    worker.stderr_suffix(),
                ))
            }
            Ok(Err(WorkerError::Exited(how))) if preloading => {
                return Err(WorkerError::DiedPreloading(how))
            }
            Ok(Err(e)) => return Err(e),
            Ok(Ok(WorkerMessage::Hello(hello))) => hello,
            Ok(Ok(WorkerMessage::Fatal { message, cause })) => {
                return Err(WorkerError::fatal(message, cause))
            }
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
        check_isolation(&setup.plan, &hello)?;
        worker.sandbox.isolation = hello.isolation.clone();
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
        self.exchange(HostMessage::Run(request.clone()), request.id, deadline)
            .await
    }

    /// Execute one cell of this worker's session (the first makes the session's
    /// process). The same backstop as [`Worker::run`].
    pub(crate) async fn cell(
        &mut self,
        request: &RunRequest,
        deadline: Duration,
    ) -> Result<RunReport, WorkerError> {
        self.exchange(HostMessage::Cell(request.clone()), request.id, deadline)
            .await
    }

    async fn exchange(
        &mut self,
        message: HostMessage,
        id: u64,
        deadline: Duration,
    ) -> Result<RunReport, WorkerError> {
        let frame = encode_frame(&message).map_err(WorkerError::RequestTooLarge)?;
        let exchange = async {
            self.stdin.write_all(&frame).await?;
            self.stdin.flush().await?;
            match self.read_message().await? {
                WorkerMessage::Report(report) if report.id == id => Ok(report),
                WorkerMessage::Fatal { message, cause } => Err(WorkerError::fatal(message, cause)),
                _ => Err(WorkerError::Unexpected),
            }
        };
        match tokio::time::timeout(deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(WorkerError::Unresponsive),
        }
    }

    /// The first frame of a new worker that is not a stage of its start; `preloading`
    /// says whether it is in its preload or warm-up (between the two stages).
    async fn read_greeting(&mut self, preloading: &mut bool) -> Result<WorkerMessage, WorkerError> {
        loop {
            match self.read_message().await? {
                WorkerMessage::Stage { stage } => *preloading = stage == StartStage::Preload,
                other => return Ok(other),
            }
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
                // Its stdout closes as it exits: its status is moments away.
                let status = tokio::time::timeout(EXIT_STATUS_WAIT, self.child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok);
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

    /// Ask the worker to exit; end it if it does not within a second.
    pub(crate) async fn shutdown(mut self) {
        if let Ok(frame) = encode_frame(&HostMessage::Shutdown) {
            let _ = self.stdin.write_all(&frame).await;
            let _ = self.stdin.flush().await;
        }
        if tokio::time::timeout(Duration::from_secs(1), self.child.wait())
            .await
            .is_err()
        {
            self.lifeline = None;
            let _ = tokio::time::timeout(Duration::from_secs(1), self.child.wait()).await;
        }
    }

    /// End the worker now: its supervisor kills it and everything it started.
    pub(crate) fn kill(mut self) {
        self.lifeline = None;
    }

    pub(crate) fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The harness must apply to every run what the plan asked for: one that greets with
/// less is refused, never used with a quieter sandbox.
fn check_isolation(plan: &HarnessPlan, hello: &Hello) -> Result<(), WorkerError> {
    let got = &hello.isolation;
    let mut lacking = Vec::new();
    if plan.fresh == Freshness::Namespaces && got.fresh_namespaces.is_empty() {
        lacking.push("fresh namespaces per run");
    }
    if plan.landlock.is_some() && got.landlock_abi.is_none() {
        lacking.push("Landlock");
    }
    if plan.seccomp.is_some() && !got.seccomp {
        lacking.push("seccomp");
    }
    if plan.caps && !got.capabilities_dropped {
        lacking.push("dropping capabilities");
    }
    if plan.process_seccomp.is_some() && !got.process_filter {
        lacking.push("the process filter");
    }
    if lacking.is_empty() {
        Ok(())
    } else {
        Err(WorkerError::Sandbox(format!(
            "the harness cannot apply {} to its runs",
            lacking.join(", ")
        )))
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

#[cfg(test)]
mod tests {
    use super::WorkerError;

    #[test]
    fn a_preload_failure_of_one_worker_among_started_ones_is_chance() {
        let chance =
            WorkerError::PreloadFailed("the warm-up failed: MemoryError".into()).by_chance();
        assert!(matches!(&chance, WorkerError::Fatal(_)), "{chance:?}");
        assert_eq!(
            chance.to_string(),
            "worker reported a fatal error: the warm-up failed: MemoryError"
        );
        let chance = WorkerError::DiedPreloading(" (signal: 9 (SIGKILL))".into()).by_chance();
        assert_eq!(
            chance.to_string(),
            "worker exited unexpectedly in the preload or warm-up (signal: 9 (SIGKILL))"
        );
        let other = WorkerError::Unresponsive.by_chance();
        assert!(matches!(other, WorkerError::Unresponsive));
    }
}
