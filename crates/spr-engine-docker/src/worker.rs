//! One warm container: the harness is its main process, attached over the Docker API,
//! and every run is a frame round trip to it.
//!
//! A reader task owns the attach output stream: it decodes stdout frames into messages
//! and flags the worker dead when the stream ends, so an idle container that crashed or
//! was removed is noticed before the next run is sent to it.

use crate::isolation::{self, IsolationError};
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;
use spr_protocol::seccomp::Arch;
use spr_protocol::{
    encode_frame, FatalCause, FrameDecoder, HostMessage, PreloadCost, RunIsolation, RunReport,
    RunRequest, StartStage, WorkerMessage,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Where the harness lives in the runtime image.
pub(crate) const HARNESS_PATH: &str = "/opt/spr/spr_harness.py";
/// The unprivileged user every container runs as ("nobody").
pub(crate) const CONTAINER_USER: &str = "65534:65534";
pub(crate) const PIDS_LIMIT: i64 = 256;
pub(crate) const TMPFS_SIZE_MB: u64 = 64;
/// The size-limited tmpfs the harness makes each run's scratch directory in: the
/// container's whole `/tmp`, so a run writes `/tmp/x` as it would on the local engine.
pub(crate) const SCRATCH_BASE: &str = "/tmp";
/// The container's /dev/shm: a size-limited tmpfs of its own (POSIX semaphores and
/// shared memory, which multiprocessing needs), emptied and checked after every run.
pub(crate) const DEV_SHM: &str = "/dev/shm";
pub(crate) const DEV_SHM_SIZE_MB: u64 = 64;
/// Memory beyond the policy's per-run limit, for the worker itself (some 25 MiB, and the
/// harness's own ~18 MiB a run may write on top of its policy's memory) and the tmpfs.
/// The pages of the scratch and /dev/shm tmpfs mounts count against the container's
/// memory limit: a run that fills them and its memory ends its container, not another's.
pub(crate) const MEMORY_HEADROOM_MB: u64 = 96;
pub(crate) const MIN_CONTAINER_MEMORY_MB: u64 = 128;
/// More headroom for containers whose harness preloads modules: they stay resident in
/// the container's memory for its life (the data stack: about 80 MiB for pandas, 150
/// MiB with matplotlib and scipy), and a run may still allocate its policy's memory on
/// top of them (the harness raises each run's RLIMIT_DATA and RLIMIT_AS by what they map).
pub(crate) const PRELOAD_HEADROOM_MB: u64 = 256;
/// How long a new container may take to greet (gVisor in ptrace mode is slow to start).
const HELLO_TIMEOUT: Duration = Duration::from_secs(60);
const STDERR_TAIL: usize = 4096;
/// How often, and how far apart, a container that died starting is looked at for an
/// out-of-memory kill.
const OOM_CHECK_TRIES: usize = 10;
const OOM_CHECK_PAUSE: Duration = Duration::from_millis(50);

/// Everything that shapes a container. Two runs can share a container only when these
/// are equal; the pool key is made from them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ContainerSpec {
    pub endpoint: String,
    /// Image ID (not the tag), so a rebuilt tag never reuses old containers.
    pub image_id: String,
    pub memory_mb: u64,
    pub runtime: Option<String>,
    pub nano_cpus: i64,
    /// The image's architecture (it follows from `image_id`, so the key leaves it out):
    /// the runs' seccomp filter is built for it.
    pub arch: Arch,
    /// Modules the harness imports before any request (the plan's `preload`).
    pub preload: Vec<String>,
    /// Code the harness runs once after the preload (the plan's `warmup`).
    pub warmup: Option<String>,
    /// The containers' names begin with it (`container_prefix`; not part of the key:
    /// a name says nothing of what a container runs).
    pub name_prefix: String,
}

impl ContainerSpec {
    /// Short stable hash of the spec, for the `dev.spr.pool` label.
    pub fn key_hash(&self) -> String {
        let mut text = format!(
            "{}|{}|{}|{}|{}|{}",
            self.endpoint,
            self.image_id,
            self.memory_mb,
            self.runtime.as_deref().unwrap_or(""),
            self.nano_cpus,
            self.preload.join(",")
        );
        // Only with a warm-up, so that the keys of the containers without one stay as
        // they were.
        if let Some(code) = &self.warmup {
            text.push('|');
            text.push_str(&crate::config::sha256_hex(code.as_bytes()));
        }
        crate::config::sha256_hex(text.as_bytes())[..16].to_string()
    }
}

/// Container memory for a policy: the per-run limit (enforced per run by RLIMIT_DATA in
/// the harness, on top of what the run's process is forked with) plus headroom (more
/// with preloaded modules), at least 128 MiB, rounded up to a power of two so that
/// policies with nearby limits share containers.
pub(crate) fn memory_class_mb(policy_mb: u64, preload: bool) -> u64 {
    let headroom = MEMORY_HEADROOM_MB + if preload { PRELOAD_HEADROOM_MB } else { 0 };
    (policy_mb.saturating_add(headroom))
        .max(MIN_CONTAINER_MEMORY_MB)
        .next_power_of_two()
}

/// The Docker create body of a hardened worker container.
pub(crate) fn create_body(
    spec: &ContainerSpec,
    labels: HashMap<String, String>,
) -> Result<ContainerCreateBody, IsolationError> {
    let mut plan = isolation::harness_plan(spec.arch, SCRATCH_BASE, DEV_SHM)?;
    plan.preload = spec.preload.clone();
    plan.warmup = spec.warmup.clone();
    let memory = (spec.memory_mb * 1024 * 1024) as i64;
    // The only writable places are this tmpfs (the harness's scratch base, /tmp) and
    // /dev/shm; the harness empties and checks both after every run, so nothing a run
    // writes anywhere survives into the next run.
    let mut tmpfs = HashMap::new();
    tmpfs.insert(
        SCRATCH_BASE.to_string(),
        format!("rw,noexec,nosuid,nodev,size={TMPFS_SIZE_MB}m,mode=1777"),
    );
    tmpfs.insert(
        DEV_SHM.to_string(),
        format!("rw,noexec,nosuid,nodev,size={DEV_SHM_SIZE_MB}m,mode=1777"),
    );
    Ok(ContainerCreateBody {
        image: Some(spec.image_id.clone()),
        // Set explicitly rather than trusting the image's entrypoint, so any image that
        // carries the harness works the same way.
        entrypoint: Some(vec!["python3".into(), "-I".into(), HARNESS_PATH.into()]),
        cmd: Some(vec!["--plan".into(), plan.to_arg()]),
        user: Some(CONTAINER_USER.into()),
        // Not the tmpfs itself: Docker re-creates a working directory mount point with
        // mode 0755, which would lock the unprivileged harness out of its scratch base.
        working_dir: Some("/tmp".into()),
        env: Some(vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "LANG=C.UTF-8".into(),
            "PYTHONDONTWRITEBYTECODE=1".into(),
        ]),
        labels: Some(labels),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        // When the host's attach connection goes away (host crash), stdin closes, the
        // harness exits and the container stops: nothing keeps running unowned.
        stdin_once: Some(true),
        tty: Some(false),
        network_disabled: Some(true),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            readonly_rootfs: Some(true),
            tmpfs: Some(tmpfs),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(PIDS_LIMIT),
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: Some(spec.nano_cpus),
            runtime: spec.runtime.clone(),
            // Own IPC namespace without Docker's /dev/shm (SysV IPC is refused by the
            // runs' filter); /dev/shm is the tmpfs above, emptied after every run.
            ipc_mode: Some("none".into()),
            auto_remove: Some(true),
            init: Some(false),
            // The container's stdout is the protocol: every report (tenants' output and
            // results) would otherwise be kept in a log file on the daemon's disk and
            // shown by `docker logs`. The engine reads the attach stream, not logs.
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Why a run did not produce a report.
#[derive(Debug)]
pub(crate) enum RunFailure {
    /// The run was never delivered (the worker was already gone); safe to retry.
    NotDelivered(String),
    /// The worker died or broke the protocol during the run.
    Died(String),
    /// No report within the backstop: the worker is wedged and must be discarded.
    Wedged,
    /// The request did not fit in a frame: nothing was sent, the worker is unharmed.
    TooLarge(String),
}

pub(crate) struct Worker {
    pub id: String,
    pub name: String,
    pub created: Instant,
    pub runs: u32,
    /// What the harness applies to every run here (from its greeting).
    pub isolation: RunIsolation,
    /// How many system calls the runs' seccomp filter denies (for receipts).
    pub seccomp_denied: u32,
    /// What the harness's preloaded modules cost (each run's memory limits are the
    /// policy's plus this; from its greeting).
    pub preload: Option<Box<PreloadCost>>,
    /// The harness's own private memory besides the preload's (from its greeting), in KiB.
    pub base_data_kb: u64,
    input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    messages: mpsc::Receiver<WorkerMessage>,
    alive: Arc<AtomicBool>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("runs", &self.runs)
            .field("alive", &self.is_alive())
            .finish_non_exhaustive()
    }
}

/// Why a container did not become a worker.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// Its harness failed in the engine's `preload` or `warmup` (its fatal frame says
    /// so): every container of this engine would fail the same way.
    Preload(String),
    /// Anything else: the daemon, the container, a harness that died or greeted wrongly.
    Other(String),
}

impl From<String> for SpawnError {
    fn from(message: String) -> Self {
        SpawnError::Other(message)
    }
}

impl From<SpawnError> for String {
    fn from(err: SpawnError) -> Self {
        match err {
            SpawnError::Preload(message) | SpawnError::Other(message) => message,
        }
    }
}

impl Worker {
    /// Create, attach and start a container, then check the harness's greeting.
    pub async fn spawn(
        docker: &Docker,
        spec: &ContainerSpec,
        labels: HashMap<String, String>,
    ) -> Result<Worker, SpawnError> {
        let name = format!("{}-{}", spec.name_prefix, crate::unique_suffix());
        let body = create_body(spec, labels).map_err(|e| e.to_string())?;
        let seccomp_denied = isolation::run_filter(spec.arch)
            .map(|p| p.denied)
            .map_err(|e| e.to_string())?;
        let created = docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| format!("Failed to create Docker container: {e}"))?;
        let id = created.id;
        match Self::attach_and_start(docker, &id, &name).await {
            Ok(mut w) => {
                w.seccomp_denied = seccomp_denied;
                Ok(w)
            }
            Err(e) => {
                remove(docker, &id).await;
                Err(e)
            }
        }
    }

    async fn attach_and_start(docker: &Docker, id: &str, name: &str) -> Result<Worker, SpawnError> {
        // Attach before starting, so the greeting cannot be missed.
        let attached = docker
            .attach_container(
                id,
                Some(
                    AttachContainerOptionsBuilder::default()
                        .stdin(true)
                        .stdout(true)
                        .stderr(true)
                        .stream(true)
                        .logs(false)
                        .build(),
                ),
            )
            .await
            .map_err(|e| format!("Failed to attach to Docker container: {e}"))?;
        let (tx, rx) = mpsc::channel(4);
        let alive = Arc::new(AtomicBool::new(true));
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let reader = tokio::spawn(read_loop(
            attached.output,
            tx,
            alive.clone(),
            stderr_tail.clone(),
        ));
        let mut worker = Worker {
            id: id.to_string(),
            name: name.to_string(),
            created: Instant::now(),
            runs: 0,
            isolation: RunIsolation::default(),
            preload: None,
            base_data_kb: 0,
            seccomp_denied: 0,
            input: attached.input,
            messages: rx,
            alive,
            stderr_tail,
            reader,
        };
        docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| format!("Failed to start Docker container: {e}"))?;
        let mut preloading = false;
        let greeting = async {
            loop {
                match worker.messages.recv().await {
                    Some(WorkerMessage::Stage { stage }) => {
                        preloading = stage == StartStage::Preload
                    }
                    other => return other,
                }
            }
        };
        // A harness too slow to greet is not told apart by its stage: a preload slowed by
        // a loaded machine would otherwise stop a server for good.
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, greeting).await {
            Err(_) => {
                return Err(format!(
                    "The container's harness did not greet within {} s{}",
                    HELLO_TIMEOUT.as_secs(),
                    worker.stderr_note()
                )
                .into())
            }
            // A warm-up calling os._exit, a module crashing the interpreter, a memory
            // limit the preload does not fit in: every container would do the same.
            Ok(None) if preloading => {
                return Err(SpawnError::Preload(format!(
                    "The container's harness died in the preload or warm-up{}{}",
                    oom_note(docker, id).await,
                    worker.stderr_note()
                )))
            }
            Ok(None) => {
                return Err(format!(
                    "The container exited before its harness greeted{}",
                    worker.stderr_note()
                )
                .into())
            }
            Ok(Some(m)) => m,
        };
        match hello {
            WorkerMessage::Hello(h) => {
                if h.protocol_version != spr_protocol::PROTOCOL_VERSION
                    || h.harness_hash != spr_protocol::harness_hash()
                {
                    return Err(format!(
                        "The image's harness is stale (protocol {}, harness {}; this build needs protocol {}, harness {}). Rebuild the image with `cargo xtask image`",
                        h.protocol_version,
                        h.harness_hash,
                        spr_protocol::PROTOCOL_VERSION,
                        spr_protocol::harness_hash()
                    )
                    .into());
                }
                isolation::check(&h.isolation).map_err(|e| {
                    format!("The container was refused: {e}{}", worker.stderr_note())
                })?;
                worker.isolation = h.isolation;
                worker.preload = h.preload.map(Box::new);
                worker.base_data_kb = h.base_data_kb;
            }
            // The harness's message names the module or the warm-up's exception; its
            // traceback on stderr would only repeat it.
            WorkerMessage::Fatal {
                message,
                cause: Some(FatalCause::Preload),
            } => {
                return Err(SpawnError::Preload(format!(
                    "The container's harness could not start: {message}"
                )))
            }
            WorkerMessage::Fatal { message, .. } => {
                return Err(format!(
                    "The container's harness could not start: {message}{}",
                    worker.stderr_note()
                )
                .into())
            }
            other => {
                return Err(
                    format!("The container's harness sent {other:?} instead of a greeting").into(),
                )
            }
        }
        worker.created = Instant::now();
        Ok(worker)
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst) && !self.reader.is_finished()
    }

    fn stderr_note(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&tail).trim().to_string();
        if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        }
    }

    /// One run: send the request, wait for its report (at most `backstop`).
    pub async fn run(
        &mut self,
        request: RunRequest,
        backstop: Duration,
    ) -> Result<RunReport, RunFailure> {
        let id = request.id;
        self.exchange(HostMessage::Run(request), id, backstop).await
    }

    /// One cell of this container's session (the first makes the session's process).
    pub async fn cell(
        &mut self,
        request: RunRequest,
        backstop: Duration,
    ) -> Result<RunReport, RunFailure> {
        let id = request.id;
        self.exchange(HostMessage::Cell(request), id, backstop)
            .await
    }

    async fn exchange(
        &mut self,
        message: HostMessage,
        id: u64,
        backstop: Duration,
    ) -> Result<RunReport, RunFailure> {
        if !self.is_alive() {
            return Err(RunFailure::NotDelivered("the container is gone".into()));
        }
        let frame = encode_frame(&message).map_err(|e| RunFailure::TooLarge(e.to_string()))?;
        let write = async {
            self.input.write_all(&frame).await?;
            self.input.flush().await
        };
        if let Err(e) = write.await {
            return Err(RunFailure::NotDelivered(format!(
                "the container is gone: {e}"
            )));
        }
        self.runs += 1;
        let deadline = tokio::time::Instant::now() + backstop;
        loop {
            match tokio::time::timeout_at(deadline, self.messages.recv()).await {
                Err(_) => return Err(RunFailure::Wedged),
                Ok(None) => {
                    return Err(RunFailure::Died(format!(
                        "the container stopped during the run (killed, removed or out of memory){}",
                        self.stderr_note()
                    )))
                }
                Ok(Some(WorkerMessage::Report(r))) if r.id == id => return Ok(r),
                // A late report of an earlier run cannot happen (runs are sequential and
                // a worker that missed its backstop is discarded), but skip it if it does.
                Ok(Some(WorkerMessage::Report(_))) => continue,
                Ok(Some(WorkerMessage::Fatal { message, .. })) => {
                    return Err(RunFailure::Died(format!("the harness failed: {message}")))
                }
                Ok(Some(other)) => {
                    return Err(RunFailure::Died(format!("unexpected message {other:?}")))
                }
            }
        }
    }

    /// Stop and remove the container (force: the harness may be wedged).
    pub async fn discard(self, docker: &Docker) {
        self.reader.abort();
        remove(docker, &self.id).await;
    }
}

/// ": out of memory (...)" when the daemon says the container was killed for memory,
/// else nothing. Its state is read once the daemon has seen it stop (moments after its
/// attach stream ends).
async fn oom_note(docker: &Docker, id: &str) -> String {
    for _ in 0..OOM_CHECK_TRIES {
        let Ok(c) = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        else {
            return String::new();
        };
        let state = c.state.unwrap_or_default();
        if state.running == Some(true) {
            tokio::time::sleep(OOM_CHECK_PAUSE).await;
            continue;
        }
        if state.oom_killed != Some(true) {
            return String::new();
        }
        return match c.host_config.and_then(|h| h.memory) {
            Some(bytes) if bytes > 0 => format!(
                ": out of memory (the container's limit is {} MiB)",
                bytes >> 20
            ),
            _ => ": out of memory".to_string(),
        };
    }
    String::new()
}

pub(crate) async fn remove(docker: &Docker, id: &str) {
    let _ = force_remove(docker, id, false).await;
}

/// Force-remove a container, thawing it first when it is (or may be) paused: Docker
/// 20.10 can refuse to kill or remove a paused container. Thawed, its harness finds
/// its host gone and exits; the removal kills whatever is left.
pub(crate) async fn force_remove(
    docker: &Docker,
    id: &str,
    paused: bool,
) -> Result<(), bollard::errors::Error> {
    let options = || Some(RemoveContainerOptionsBuilder::default().force(true).build());
    if paused {
        let _ = docker.unpause_container(id).await;
    }
    match docker.remove_container(id, options()).await {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) if !paused => {
            let _ = docker.unpause_container(id).await;
            docker.remove_container(id, options()).await
        }
        other => other,
    }
}

async fn read_loop(
    mut output: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    tx: mpsc::Sender<WorkerMessage>,
    alive: Arc<AtomicBool>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
) {
    let mut decoder = FrameDecoder::default();
    'stream: while let Some(item) = output.next().await {
        let bytes = match item {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => message,
            Ok(LogOutput::StdErr { message }) => {
                // The harness's own stderr (user output goes through pipes, not here):
                // kept for error messages, bounded.
                if let Ok(mut tail) = stderr_tail.lock() {
                    tail.extend_from_slice(&message);
                    if tail.len() > STDERR_TAIL {
                        let cut = tail.len() - STDERR_TAIL;
                        tail.drain(..cut);
                    }
                }
                continue;
            }
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(_) => break,
        };
        if decoder.push(&bytes).is_err() {
            break;
        }
        loop {
            match decoder.next_message::<WorkerMessage>() {
                Ok(Some(m)) => {
                    if tx.send(m).await.is_err() {
                        break 'stream;
                    }
                }
                Ok(None) => break,
                Err(_) => break 'stream,
            }
        }
    }
    alive.store(false, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            endpoint: "unix:///var/run/docker.sock".into(),
            image_id: "sha256:abc".into(),
            memory_mb: 512,
            runtime: None,
            nano_cpus: 1_000_000_000,
            arch: Arch::X86_64,
            preload: Vec::new(),
            warmup: None,
            name_prefix: "spr".into(),
        }
    }

    #[test]
    fn memory_classes() {
        assert_eq!(memory_class_mb(0, false), 128);
        assert_eq!(memory_class_mb(32, false), 128);
        assert_eq!(memory_class_mb(64, false), 256);
        assert_eq!(memory_class_mb(65, false), 256);
        assert_eq!(memory_class_mb(256, false), 512);
        assert_eq!(memory_class_mb(1024, false), 2048);
        // Preloaded modules stay resident: a 256 MiB policy still gets 256 MiB on top.
        assert_eq!(memory_class_mb(256, true), 1024);
    }

    #[test]
    fn pool_key_changes_with_everything_that_shapes_a_container() {
        let base = spec();
        let h = base.key_hash();
        assert_eq!(h, spec().key_hash());
        let variants = [
            ContainerSpec {
                endpoint: "tcp://127.0.0.1:2375".into(),
                ..spec()
            },
            ContainerSpec {
                image_id: "sha256:def".into(),
                ..spec()
            },
            ContainerSpec {
                memory_mb: 256,
                ..spec()
            },
            ContainerSpec {
                runtime: Some("runsc".into()),
                ..spec()
            },
            ContainerSpec {
                nano_cpus: 500_000_000,
                ..spec()
            },
        ];
        for v in variants {
            assert_ne!(v.key_hash(), h, "{v:?}");
            assert_ne!(v, base);
        }
    }

    #[test]
    fn create_body_is_hardened() {
        let b = create_body(&spec(), HashMap::new()).unwrap();
        let cmd = b.cmd.clone().unwrap();
        assert_eq!(cmd[0], "--plan");
        let plan: spr_protocol::HarnessPlan = serde_json::from_str(&cmd[1]).unwrap();
        assert_eq!(
            plan,
            isolation::harness_plan(Arch::X86_64, SCRATCH_BASE, DEV_SHM).unwrap()
        );
        let hc = b.host_config.unwrap();
        assert_eq!(hc.log_config.unwrap().typ.as_deref(), Some("none"));
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(hc.memory, hc.memory_swap);
        assert_eq!(hc.memory, Some(512 * 1024 * 1024));
        assert_eq!(hc.pids_limit, Some(PIDS_LIMIT));
        assert_eq!(hc.nano_cpus, Some(1_000_000_000));
        let tmpfs = hc.tmpfs.unwrap();
        assert!(tmpfs[SCRATCH_BASE].contains("noexec"));
        assert!(tmpfs[DEV_SHM].contains("noexec") && tmpfs[DEV_SHM].contains("size=64m"));
        assert_eq!(b.user.as_deref(), Some(CONTAINER_USER));
    }
}
