//! The Linux sandbox of the local engine: what this machine supports ([`probe`]),
//! how a worker is placed in its own namespaces with a read-only view, Landlock,
//! seccomp and cgroups (`child.rs` does it between fork and exec), and the receipt
//! of what was applied to each run.
//!
//! The Python policy is the friendly inner guardrail; this is the boundary. Set-up is
//! paid once per worker: a run is a fork of a worker that is already inside.

mod cgroup;
mod child;
mod landlock;
mod plan;
mod seccomp;

use serde::{Deserialize, Serialize};
use spr_policy::RunnerPolicy;
use spr_protocol::{
    CgroupReceipt, FilesystemReceipt, MissingProtection, NamespacesReceipt, RlimitsReceipt,
    SandboxReceipt, SeccompReceipt,
};
use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub(crate) use cgroup::WorkerCgroup;
pub(crate) use child::{install, report_pipe, ChildPlan};

/// How much of the sandbox the engine applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    /// Apply everything this machine supports; say in each receipt what was missing.
    #[default]
    Auto,
    /// Apply nothing beyond the harness's own limits (rlimits, audit hooks).
    Off,
    /// Refuse to start unless every protection is available.
    Require,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SandboxMode::Auto),
            "off" => Ok(SandboxMode::Off),
            "require" => Ok(SandboxMode::Require),
            other => Err(format!(
                "sandbox must be 'auto', 'off' or 'require', got '{other}'"
            )),
        }
    }
}

/// Whether one protection can be applied on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectionSupport {
    /// A name of `spr_policy::PROTECTION_NAMES`.
    pub name: String,
    pub available: bool,
    /// e.g. "ABI 7", "v1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Why it is not available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What this machine supports, from [`probe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxSupport {
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    pub protections: Vec<ProtectionSupport>,
}

impl SandboxSupport {
    pub fn get(&self, name: &str) -> Option<&ProtectionSupport> {
        self.protections.iter().find(|p| p.name == name)
    }

    pub fn available(&self, name: &str) -> bool {
        self.get(name).is_some_and(|p| p.available)
    }

    /// The protections that are not available, with reasons.
    pub fn missing(&self) -> Vec<MissingProtection> {
        self.protections
            .iter()
            .filter(|p| !p.available)
            .map(|p| MissingProtection {
                name: p.name.clone(),
                reason: p.reason.clone().unwrap_or_else(|| "not available".into()),
            })
            .collect()
    }

    fn landlock_abi(&self) -> Option<u32> {
        self.get("landlock")
            .filter(|p| p.available)
            .and_then(|p| p.detail.as_deref())
            .and_then(|d| d.strip_prefix("ABI "))
            .and_then(|n| n.parse().ok())
    }

    fn namespaces(&self) -> bool {
        [
            "user_namespace",
            "mount_namespace",
            "pid_namespace",
            "ipc_namespace",
            "uts_namespace",
        ]
        .iter()
        .all(|n| self.available(n))
    }
}

fn support(name: &str, result: Result<Option<String>, String>) -> ProtectionSupport {
    match result {
        Ok(detail) => ProtectionSupport {
            name: name.into(),
            available: true,
            detail,
            reason: None,
        },
        Err(reason) => ProtectionSupport {
            name: name.into(),
            available: false,
            detail: None,
            reason: Some(reason),
        },
    }
}

/// What this machine supports of the sandbox, and why anything is missing. Cheap
/// (one fork, a few files); `spr doctor` prints it.
pub fn probe() -> SandboxSupport {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let mut protections = Vec::new();
    let ns = child::probe_namespaces();
    let user_reason = |errno: i32| {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
        };
        if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
            "disabled by sysctl kernel.unprivileged_userns_clone=0".to_string()
        } else if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
            "disabled by sysctl user.max_user_namespaces=0".to_string()
        } else if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref()
            == Some("1")
        {
            "restricted by AppArmor (kernel.apparmor_restrict_unprivileged_userns=1)".to_string()
        } else {
            format!(
                "unshare(CLONE_NEWUSER) failed: {}",
                std::io::Error::from_raw_os_error(errno)
            )
        }
    };
    let names = [
        "mount_namespace",
        "pid_namespace",
        "network_namespace",
        "ipc_namespace",
        "uts_namespace",
    ];
    match ns {
        Ok(bits) => {
            protections.push(support("user_namespace", Ok(None)));
            for (i, name) in names.iter().enumerate() {
                let ok = bits & (2 << i) != 0;
                protections.push(support(
                    name,
                    if ok {
                        Ok(None)
                    } else {
                        Err("unshare failed inside a new user namespace".into())
                    },
                ));
            }
        }
        Err(errno) => {
            let why = user_reason(errno);
            protections.push(support("user_namespace", Err(why.clone())));
            for name in names {
                protections.push(support(name, Err(format!("needs a user namespace: {why}"))));
            }
        }
    }
    let fs = if ns.is_ok_and(|b| b & 0b11 == 0b11) {
        Ok(Some("read-only binds, tmpfs scratch".into()))
    } else {
        Err("needs user and mount namespaces".to_string())
    };
    protections.push(support("filesystem", fs));
    protections.push(support(
        "landlock",
        landlock::abi().map(|v| Some(format!("ABI {v}"))),
    ));
    protections.push(support(
        "seccomp",
        seccomp::available()
            .and_then(|()| seccomp::Filter::build())
            .map(|f| Some(format!("deny-list of {} syscalls", f.denied))),
    ));
    protections.push(support("rlimits", Ok(None)));
    let pids_by_rlimit = ns.is_ok_and(|b| b & 1 == 1);
    let cg = cgroup::detect();
    let (memory, pids) = match &cg {
        Ok(cgroup::Layout::V1 { memory, pids }) => (
            memory
                .as_ref()
                .map(|_| Some("v1".to_string()))
                .ok_or_else(|| "cgroup v1 memory hierarchy not writable".to_string()),
            pids.as_ref()
                .map(|_| Some("v1".to_string()))
                .ok_or_else(|| "cgroup v1 pids hierarchy not writable".to_string()),
        ),
        Ok(cgroup::Layout::V2 { .. }) => (Ok(Some("v2".into())), Ok(Some("v2".into()))),
        Err(why) => (Err(why.clone()), Err(why.clone())),
    };
    let process_limit = match (&pids, pids_by_rlimit) {
        (Ok(_), _) => Ok(Some("cgroup pids.max".into())),
        (Err(_), true) => Ok(Some("RLIMIT_NPROC in a private user namespace".into())),
        (Err(why), false) => Err(format!(
            "no writable pids cgroup ({why}) and no user namespace to make RLIMIT_NPROC per run"
        )),
    };
    protections.push(support("cgroup_memory", memory));
    protections.push(support("cgroup_pids", pids));
    protections.push(support("process_limit", process_limit));
    SandboxSupport {
        os: std::env::consts::OS.into(),
        kernel,
        protections,
    }
}

/// The per-worker shape of the sandbox that a run's policy decides: workers are
/// matched to runs by it (a worker's namespaces and mounts are fixed at start).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct Layout {
    pub network: bool,
    pub extra_read: Vec<PathBuf>,
    pub extra_write: Vec<PathBuf>,
}

impl Layout {
    pub(crate) fn of(policy: &RunnerPolicy) -> Layout {
        let sb = &policy.sandbox;
        Layout {
            network: sb.network,
            extra_read: sb.extra_read_paths.iter().map(PathBuf::from).collect(),
            extra_write: sb.extra_write_paths.iter().map(PathBuf::from).collect(),
        }
    }
}

/// Engine-wide sandbox context: the mode, what the machine supports, and the paths
/// a worker's view is made of.
#[derive(Debug)]
pub(crate) struct Context {
    pub mode: SandboxMode,
    pub support: Option<SandboxSupport>,
    /// Host directories of the Python installation(s) and the venv.
    python_dirs: Vec<PathBuf>,
    venv: PathBuf,
    harness: PathBuf,
    scratch_root: PathBuf,
    pub scratch_mb: u64,
    cgroups: Option<cgroup::Layout>,
    seccomp: Option<seccomp::Filter>,
}

/// The sandbox path of the harness in a namespaced worker.
const HARNESS_IN_SANDBOX: &str = "/spr/spr_harness.py";
/// Tasks of a worker's namespace besides the run's (the supervisor and PID 1); the
/// harness adds the same to RLIMIT_NPROC.
pub(crate) const NAMESPACE_OVERHEAD_TASKS: u64 = 2;
/// Extra host memory a worker's cgroup allows beyond the run's own limit: the worker
/// interpreter itself.
const WORKER_OVERHEAD_MB: u64 = 64;

impl Context {
    pub(crate) fn new(
        mode: SandboxMode,
        python: &Path,
        venv: &Path,
        harness: &Path,
        scratch_root: &Path,
        scratch_mb: u64,
    ) -> Result<Context, Vec<MissingProtection>> {
        let support = (mode != SandboxMode::Off).then(probe);
        if let (SandboxMode::Require, Some(s)) = (mode, &support) {
            let missing = s.missing();
            if !missing.is_empty() {
                return Err(missing);
            }
        }
        let cgroups = support
            .as_ref()
            .filter(|s| s.available("cgroup_memory") || s.available("cgroup_pids"))
            .and_then(|_| cgroup::detect().ok());
        let seccomp = support
            .as_ref()
            .filter(|s| s.available("seccomp"))
            .and_then(|_| seccomp::Filter::build().ok());
        Ok(Context {
            mode,
            support,
            python_dirs: python_dirs(python, venv),
            venv: venv.canonicalize().unwrap_or_else(|_| venv.to_path_buf()),
            harness: harness.to_path_buf(),
            scratch_root: scratch_root.to_path_buf(),
            scratch_mb,
            cgroups,
            seccomp,
        })
    }

    pub(crate) fn active(&self) -> bool {
        self.mode != SandboxMode::Off
    }

    pub(crate) fn namespaces(&self) -> bool {
        self.support
            .as_ref()
            .is_some_and(SandboxSupport::namespaces)
    }

    pub(crate) fn harness_arg(&self, namespaced: bool) -> PathBuf {
        if namespaced {
            PathBuf::from(HARNESS_IN_SANDBOX)
        } else {
            self.harness.clone()
        }
    }

    /// The worker's cgroup, if this machine has writable controllers.
    pub(crate) fn cgroup(&self) -> Option<WorkerCgroup> {
        self.cgroups.as_ref().and_then(WorkerCgroup::create)
    }

    /// Everything the forked child needs for one worker.
    pub(crate) fn child_plan(
        &self,
        layout: &Layout,
        namespaced: bool,
        worker_scratch: &Path,
        cgroup: Option<&WorkerCgroup>,
        report_fd: std::os::fd::RawFd,
    ) -> ChildPlan {
        let abi = self.support.as_ref().and_then(SandboxSupport::landlock_abi);
        let mut bind_sources = Vec::new();
        let (namespaces, landlock) = if namespaced {
            let spec = self.mount_spec(layout, worker_scratch);
            let rules = landlock_rules_in_sandbox(&spec);
            let id = host_id();
            let mut mounts = plan::build(&spec);
            bind_sources = bind_by_descriptor(&mut mounts, report_fd);
            (
                Some(child::NamespacePlan {
                    unshare_net: !layout.network,
                    uid_map: CString::new(format!("0 {id} 1\n")).expect("digits"),
                    gid_map: CString::new(format!("0 {id} 1\n")).expect("digits"),
                    mounts,
                }),
                abi.map(|abi| landlock::Plan {
                    abi,
                    rules,
                    deny_tcp: !layout.network,
                }),
            )
        } else {
            (
                None,
                abi.map(|abi| landlock::Plan {
                    abi,
                    rules: self.landlock_rules_on_host(layout, worker_scratch),
                    deny_tcp: !layout.network,
                }),
            )
        };
        ChildPlan {
            report_fd,
            cgroup_procs: cgroup.map(WorkerCgroup::procs_files).unwrap_or_default(),
            bind_sources,
            namespaces,
            landlock,
            seccomp: self.seccomp.clone(),
        }
    }

    fn mount_spec(&self, layout: &Layout, worker_scratch: &Path) -> plan::MountSpec {
        let ro = |p: &Path, is_file: bool| plan::Bind {
            source: p.to_path_buf(),
            target: p.to_path_buf(),
            writable: false,
            locked_flags: child::locked_mount_flags(p),
            is_file,
        };
        let mut binds = vec![ro(Path::new("/usr"), false)];
        let mut symlinks = Vec::new();
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            let p = Path::new(top);
            match std::fs::symlink_metadata(p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(target) = std::fs::read_link(p) {
                        symlinks.push((p.to_path_buf(), target));
                    }
                }
                Ok(m) if m.is_dir() => binds.push(ro(p, false)),
                _ => {}
            }
        }
        let mut etc = vec!["/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types"];
        if layout.network {
            etc.extend([
                "/etc/resolv.conf",
                "/etc/hosts",
                "/etc/nsswitch.conf",
                "/etc/gai.conf",
            ]);
            for dir in ["/etc/ssl", "/etc/ca-certificates"] {
                if Path::new(dir).is_dir() {
                    binds.push(ro(Path::new(dir), false));
                }
            }
        }
        for f in etc {
            if Path::new(f).is_file() {
                binds.push(ro(Path::new(f), true));
            }
        }
        for dir in self.python_dirs.iter().chain(std::iter::once(&self.venv)) {
            if !binds
                .iter()
                .any(|b| !b.is_file && dir.starts_with(&b.target))
            {
                binds.push(ro(dir, false));
            }
        }
        binds.push(plan::Bind {
            source: self.harness.clone(),
            target: PathBuf::from(HARNESS_IN_SANDBOX),
            writable: false,
            locked_flags: child::locked_mount_flags(&self.harness),
            is_file: true,
        });
        for p in &layout.extra_read {
            binds.push(ro(p, p.is_file()));
        }
        for p in &layout.extra_write {
            binds.push(plan::Bind {
                writable: true,
                ..ro(p, p.is_file())
            });
        }
        plan::MountSpec {
            new_root: worker_scratch.join("root"),
            scratch_mb: self.scratch_mb,
            binds,
            symlinks,
            devices: vec!["null", "zero", "full", "random", "urandom"],
            mount_proc: true,
        }
    }

    /// Landlock rules for a worker without namespaces: host paths, and a scratch
    /// directory of its own.
    fn landlock_rules_on_host(
        &self,
        layout: &Layout,
        worker_scratch: &Path,
    ) -> Vec<(CString, u64)> {
        let mut rules = Vec::new();
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).ok();
        for dir in [
            "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
        ] {
            rules.extend(c(Path::new(dir)).map(|p| (p, landlock::READ_TREE)));
        }
        for f in ["/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types"] {
            rules.extend(c(Path::new(f)).map(|p| (p, landlock::READ_ONE_FILE)));
        }
        for dir in self.python_dirs.iter().chain([&self.venv]) {
            rules.extend(c(dir).map(|p| (p, landlock::READ_TREE)));
        }
        rules.extend(c(&self.harness).map(|p| (p, landlock::READ_ONE_FILE)));
        for dev in ["null", "zero", "full", "random", "urandom"] {
            rules.extend(c(&Path::new("/dev").join(dev)).map(|p| (p, landlock::DEVICES)));
        }
        // The worker's own /proc entry (its sweep reads its children there).
        rules.extend(
            c(Path::new("/proc/self")).map(|p| (p, landlock::READ_FILE | landlock::READ_DIR)),
        );
        rules.extend(c(worker_scratch).map(|p| (p, landlock::WRITE_TREE)));
        for p in &layout.extra_read {
            rules.extend(c(p).map(|p| (p, landlock::READ_TREE)));
        }
        for p in &layout.extra_write {
            rules.extend(c(p).map(|p| (p, landlock::WRITE_TREE)));
        }
        rules
    }

    pub(crate) fn scratch_root(&self) -> &Path {
        &self.scratch_root
    }

    /// Missing protections known before any worker starts.
    pub(crate) fn missing(&self) -> Vec<MissingProtection> {
        match &self.support {
            None => vec![MissingProtection {
                name: "sandbox".into(),
                reason: "the engine was configured with sandbox = off".into(),
            }],
            Some(s) => s.missing(),
        }
    }

    /// The memory limit of the worker's cgroup for a run with `policy`.
    pub(crate) fn cgroup_memory_bytes(&self, policy: &RunnerPolicy) -> u64 {
        (policy.memory_limit_mb + WORKER_OVERHEAD_MB + self.scratch_mb) << 20
    }
}

/// Rewrite the bind steps to take their source from `/proc/self/fd/N`, and return
/// the (host path, N) pairs the child opens before it leaves the host's namespaces.
/// The numbers are taken from the top of the descriptor limit, far from the ones a
/// process has open.
fn bind_by_descriptor(
    steps: &mut [plan::Step],
    avoid: std::os::fd::RawFd,
) -> Vec<(CString, libc::c_int)> {
    let count = steps
        .iter()
        .filter(|s| matches!(s, plan::Step::Bind { .. }))
        .count() as i32;
    let mut limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    child::get_nofile(&mut limit);
    let top = (limit.rlim_cur.min(4096) as i32) - 1;
    let mut next = top - count;
    let mut sources = Vec::new();
    for step in steps.iter_mut() {
        if let plan::Step::Bind { source, .. } = step {
            if next == avoid {
                next += 1;
            }
            if next <= 2 {
                continue;
            }
            let via = CString::new(format!("/proc/self/fd/{next}")).expect("digits");
            sources.push((std::mem::replace(source, via), next));
            next += 1;
        }
    }
    sources
}

/// Where a venv's interpreter really lives: `home` of pyvenv.cfg and the resolved
/// interpreter, each as the installation prefix (the parent of its `bin`).
fn python_dirs(python: &Path, venv: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut add = |bin_dir: &Path| {
        let prefix = if bin_dir.file_name().is_some_and(|n| n == "bin") {
            bin_dir.parent().unwrap_or(bin_dir)
        } else {
            bin_dir
        };
        let prefix = prefix
            .canonicalize()
            .unwrap_or_else(|_| prefix.to_path_buf());
        if prefix != Path::new("/") && !dirs.contains(&prefix) {
            dirs.push(prefix);
        }
    };
    if let Ok(cfg) = std::fs::read_to_string(venv.join("pyvenv.cfg")) {
        for line in cfg.lines() {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == "home" {
                    add(Path::new(v.trim()));
                }
            }
        }
    }
    if let Ok(real) = python.canonicalize() {
        if let Some(bin) = real.parent() {
            add(bin);
        }
    }
    dirs
}

/// Landlock rules for a namespaced worker, in sandbox paths: each bind as mounted,
/// the scratch tmpfs, the device nodes and /proc.
fn landlock_rules_in_sandbox(spec: &plan::MountSpec) -> Vec<(CString, u64)> {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).ok();
    // Listing directories is harmless in a view that holds only what Python needs.
    let mut rules: Vec<(CString, u64)> = c(Path::new("/"))
        .map(|p| (p, landlock::READ_DIR))
        .into_iter()
        .collect();
    for b in &spec.binds {
        let rights = match (b.writable, b.is_file) {
            (true, _) => landlock::WRITE_TREE,
            (false, true) => landlock::READ_ONE_FILE,
            (false, false) => landlock::READ_TREE,
        };
        rules.extend(c(&b.target).map(|p| (p, rights)));
    }
    rules.extend(c(Path::new(plan::SCRATCH)).map(|p| (p, landlock::WRITE_TREE)));
    rules.extend(c(Path::new("/dev")).map(|p| (p, landlock::DEVICES)));
    rules.extend(c(Path::new("/proc")).map(|p| (p, landlock::READ_FILE | landlock::READ_DIR)));
    rules
}

/// An unprivileged host uid (and gid) for the next worker: distinct per worker, so
/// that nothing of one worker is owned by another, and far above real accounts.
fn host_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let salt = std::process::id() % 50_000;
    1_000_000_000 + ((salt * 1000 + n % 1000) % 100_000_000)
}

/// What the child reported after set-up.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    pub applied: u32,
    /// The step that failed and its errno, when set-up failed.
    pub failure: Option<(u32, i32)>,
}

impl Facts {
    pub(crate) fn read(pipe: &mut std::fs::File) -> Facts {
        let mut facts = Facts::default();
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        for rec in buf.chunks_exact(12) {
            let kind = u32::from_le_bytes(rec[..4].try_into().expect("4 bytes"));
            let a = u32::from_le_bytes(rec[4..8].try_into().expect("4 bytes"));
            let b = i32::from_le_bytes(rec[8..].try_into().expect("4 bytes"));
            match kind {
                child::RECORD_APPLIED => facts.applied |= a,
                child::RECORD_FAILED => facts.failure = Some((a, b)),
                _ => {}
            }
        }
        facts
    }

    pub(crate) fn has(&self, bit: u32) -> bool {
        self.applied & bit != 0
    }
}

/// The bits of [`Facts`] the rest of the engine reads.
pub(crate) mod applied {
    pub(crate) use super::child::{
        APPLIED_CGROUP as CGROUP, APPLIED_FILESYSTEM as FILESYSTEM, APPLIED_LANDLOCK as LANDLOCK,
        APPLIED_NAMESPACES as NAMESPACES, APPLIED_NETWORK_NS as NETWORK_NS, APPLIED_PROC as PROC,
        APPLIED_SECCOMP as SECCOMP,
    };
}

/// What one worker got, kept with the worker for its receipts.
#[derive(Debug, Default)]
pub(crate) struct WorkerSandbox {
    pub facts: Facts,
    pub landlock_abi: Option<u32>,
    pub seccomp_denied: u32,
    pub cgroup: Option<WorkerCgroup>,
    pub scratch_mb: u64,
    pub layout: Layout,
    /// Protections missing on this worker, with reasons.
    pub missing: Vec<MissingProtection>,
}

impl WorkerSandbox {
    /// The receipt of a run on this worker under `policy` (cgroup limits as set).
    pub(crate) fn receipt(
        &self,
        policy: &RunnerPolicy,
        cgroup_limits: Option<(Option<u64>, Option<u64>)>,
    ) -> SandboxReceipt {
        let ns = self.facts.has(applied::NAMESPACES);
        let netns = self.facts.has(applied::NETWORK_NS);
        let sb = &policy.sandbox;
        let mut missing = self.missing.clone();
        if ns && !self.facts.has(applied::PROC) {
            missing.push(MissingProtection {
                name: "proc".into(),
                reason: "the kernel refused a fresh /proc (the host's /proc is partly masked); the worker has none".into(),
            });
        }
        SandboxReceipt {
            engine: "local".into(),
            namespaces: Some(NamespacesReceipt {
                user: ns,
                mount: ns,
                pid: ns,
                network: netns,
                ipc: ns,
                uts: ns,
            }),
            filesystem: Some(FilesystemReceipt {
                read_only_root: self.facts.has(applied::FILESYSTEM),
                scratch_tmpfs_mb: self
                    .facts
                    .has(applied::FILESYSTEM)
                    .then_some(self.scratch_mb),
                extra_read_paths: sb.extra_read_paths.clone(),
                extra_write_paths: sb.extra_write_paths.clone(),
            }),
            landlock_abi: self
                .landlock_abi
                .filter(|_| self.facts.has(applied::LANDLOCK)),
            seccomp: self.facts.has(applied::SECCOMP).then(|| SeccompReceipt {
                mode: "deny-list".into(),
                denied_syscalls: self.seccomp_denied,
            }),
            rlimits: Some(rlimits(policy, ns)),
            cgroup: self
                .cgroup
                .as_ref()
                .filter(|_| self.facts.has(applied::CGROUP))
                .map(|cg| {
                    let (memory, pids) = cgroup_limits.unwrap_or((None, None));
                    CgroupReceipt {
                        version: cg.version(),
                        memory_limit_mb: memory.map(|b| b >> 20),
                        pids_max: pids,
                    }
                }),
            network: Some(if netns { "none" } else { "host" }.into()),
            audit_hooks: audit_hooks_active(policy),
            missing,
            details: Default::default(),
        }
    }
}

/// The rlimits the harness sets in every run's process (it applies them from the
/// same policy); RLIMIT_NPROC only inside a private user namespace.
pub(crate) fn rlimits(policy: &RunnerPolicy, namespaced: bool) -> RlimitsReceipt {
    let sb = &policy.sandbox;
    RlimitsReceipt {
        address_space_mb: Some(policy.memory_limit_mb),
        open_files: Some(sb.max_open_files),
        file_size_mb: Some(sb.max_file_size_mb),
        core_mb: Some(0),
        cpu_seconds: Some(policy.timeout_seconds + 1),
        processes: namespaced.then_some(sb.max_processes),
    }
}

/// The receipt of a run on an engine whose sandbox is off.
pub(crate) fn receipt_off(
    policy: &RunnerPolicy,
    missing: Vec<MissingProtection>,
) -> SandboxReceipt {
    SandboxReceipt {
        engine: "local".into(),
        rlimits: Some(rlimits(policy, false)),
        network: Some("host".into()),
        audit_hooks: audit_hooks_active(policy),
        missing,
        ..SandboxReceipt::default()
    }
}

/// Mirrors the harness's `_Denied.any`: the audit hook is installed when the policy
/// withholds any capability (os, subprocess, socket, ctypes, or the `open` builtin).
pub(crate) fn audit_hooks_active(policy: &RunnerPolicy) -> bool {
    let matches = |name: &str, list: &[String]| {
        list.iter()
            .any(|e| name == e || name.starts_with(&format!("{e}.")))
    };
    let allow = policy.mode == spr_policy::Mode::Allow;
    let module_blocked = |name: &str| {
        if allow {
            !matches(name, &policy.allowed_imports)
        } else {
            matches(name, &policy.blocked_imports)
        }
    };
    let open_blocked = if allow {
        !policy.allowed_builtins.iter().any(|b| b == "open")
    } else {
        policy.blocked_builtins.iter().any(|b| b == "open")
    };
    ["os", "posix", "subprocess", "socket", "ctypes"]
        .iter()
        .any(|m| module_blocked(m))
        || open_blocked
}

/// Protections named by `policy.sandbox.require` that `receipt` lacks, with reasons.
pub(crate) fn unmet_requirements(
    policy: &RunnerPolicy,
    receipt: &SandboxReceipt,
) -> Vec<MissingProtection> {
    policy
        .sandbox
        .require
        .iter()
        .filter(|name| !receipt.applied(name))
        .map(|name| {
            let reason = receipt
                .missing
                .iter()
                .find(|m| {
                    &m.name == name || name.starts_with(m.name.as_str()) || m.name == "sandbox"
                })
                .map(|m| m.reason.clone())
                .unwrap_or_else(|| "not applied to this worker".into());
            MissingProtection {
                name: name.clone(),
                reason,
            }
        })
        .collect()
}

/// "sandbox set-up failed: could not <step>: <errno>" for a failure record.
pub(crate) fn describe_failure(step: u32, errno: i32, mount_steps: &[String]) -> String {
    let what = if step >= child::STEP_MOUNT_BASE {
        let i = (step - child::STEP_MOUNT_BASE) as usize;
        mount_steps
            .get(i)
            .cloned()
            .unwrap_or_else(|| format!("complete mount step {i}"))
    } else {
        child::Stage::from_u32(step)
            .map(|s| s.describe().to_string())
            .unwrap_or_else(|| format!("complete step {step}"))
    };
    format!(
        "sandbox set-up failed: could not {what}: {}",
        std::io::Error::from_raw_os_error(errno)
    )
}

/// Descriptions of the mount steps of `plan`, kept by the host for error messages.
pub(crate) fn mount_step_names(plan: &ChildPlan) -> Vec<String> {
    plan.namespaces
        .as_ref()
        .map(|ns| ns.mounts.iter().map(plan::describe).collect())
        .unwrap_or_default()
}
