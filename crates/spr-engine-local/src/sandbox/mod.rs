//! The Linux sandbox of the local engine: what a worker is set up with (namespaces, a
//! read-only view, cgroups, capabilities, seccomp: between fork and exec) and what each
//! of its runs is isolated with before its request exists (fresh mount and IPC
//! namespaces, Landlock, no capabilities, seccomp: by the harness, from the plan built
//! here), and the receipts of both.
//!
//! The Python policy is the friendly inner guardrail; this is the boundary.
//!
//! Modules by job: `support` (what this machine gives a worker, by trial), `idmap` (who
//! a worker is outside its user namespace), `view` (the mount spec and Landlock rules),
//! `plan` (mount steps as data), `steps` (the order of the set-up, over the `Syscall`
//! trait of `syscall`), `sys` (the real system calls), `facts` (the set-up's report),
//! `receipt`, `cgroup`, `landlock`; the harness's plan for a worker is built here.

mod cgroup;
mod facts;
mod idmap;
mod landlock;
mod plan;
mod receipt;
mod steps;
mod support;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(not(target_os = "linux"))]
#[path = "sys_other.rs"]
mod sys;
mod syscall;
mod view;

use serde::{Deserialize, Serialize};
use spr_policy::RunnerPolicy;
use spr_protocol::{HarnessPlan, MissingProtection};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub(crate) use cgroup::WorkerCgroup;
pub(crate) use facts::{describe_failure, Facts};
pub(crate) use receipt::{receipt_off, unmet_requirements, WorkerSandbox};
pub(crate) use steps::ChildPlan;
pub use support::{probe, ProtectionSupport, SandboxSupport};
pub(crate) use sys::{install, pipe};

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

/// Zygotes of a namespaced worker: while a run of one executes, the others hold the next
/// runs' processes ready (isolated, in PID, mount and IPC namespaces of their own). Three,
/// not two: with a large preload, a zygote's reaping of its last run and fork of its next
/// take longer than a short run, and back-to-back runs would wait for them.
const ZYGOTES: u32 = 3;
/// Tasks of a worker's user namespace besides the run's: the harness's monitor, each
/// zygote, and the next runs' processes held by the other zygotes; the harness adds the
/// same to RLIMIT_NPROC.
pub(crate) const NAMESPACE_OVERHEAD_TASKS: u64 = 2 * ZYGOTES as u64;
/// What the monitor's memory layout adds to its worker's resident memory, in KiB: the
/// zeroes its huge pages were filled with, and the pages every run's process waiting in a
/// zygote (and the run itself) copied before its request.
pub(crate) fn memory_layout_kb(layout: &spr_protocol::MemoryLayout) -> u64 {
    layout.huge_pages_filled_kb + layout.prefault_kb * (u64::from(ZYGOTES) + 1)
}

/// Extra host memory a worker's cgroup allows beyond the run's own limit: the harness's
/// monitor and zygote.
const WORKER_OVERHEAD_MB: u64 = 96;
/// Each run's /dev/shm, at most this size (and never more than its scratch).
const SHM_MB: u64 = 64;
/// How far the OOM killer prefers a run's processes over the worker's own.
const RUN_OOM_SCORE_ADJ: i32 = 1000;

/// Engine-wide sandbox context: the mode, what the machine supports, and the paths a
/// worker's view is made of. Decided once: every worker of the engine gets the same
/// protections, or does not start.
#[derive(Debug)]
pub(crate) struct Context {
    pub mode: SandboxMode,
    pub support: Option<SandboxSupport>,
    sources: view::Sources,
    pub scratch_mb: u64,
    cgroups: Option<cgroup::Layout>,
    host_ids: idmap::HostIds,
    landlock_abi: Option<u32>,
    seccomp: bool,
    /// The process filter for the runs whose policy denies processes (`None` where
    /// this kernel takes no seccomp filter: the harness then keeps libraries away from
    /// `_posixsubprocess` instead).
    process_filter: Option<Vec<[u32; 4]>>,
    namespaced: bool,
    fresh_proc: bool,
    workers: AtomicU32,
}

/// What it takes to start one worker.
#[derive(Debug)]
pub(crate) struct WorkerSetup {
    /// Run between fork and exec (`None`: nothing at all, sandbox off).
    pub child: ChildPlan,
    pub plan: HarnessPlan,
    /// The harness as the worker sees it.
    pub harness: PathBuf,
    /// For error messages: the mount steps of the child.
    pub mounts: Vec<plan::Step>,
    pub sandbox: WorkerSandbox,
}

impl Context {
    pub(crate) fn new(
        mode: SandboxMode,
        python: &Path,
        venv: &Path,
        harness: &Path,
        scratch_mb: u64,
    ) -> Result<Context, Vec<MissingProtection>> {
        let support = (mode != SandboxMode::Off).then(probe);
        if let (SandboxMode::Require, Some(s)) = (mode, &support) {
            let missing = s.missing();
            if !missing.is_empty() {
                return Err(missing);
            }
        }
        let available = |name: &str| support.as_ref().is_some_and(|s| s.available(name));
        let cgroups = (available("cgroup_memory") || available("cgroup_pids"))
            .then(|| cgroup::detect().ok())
            .flatten();
        let venv = venv.canonicalize().unwrap_or_else(|_| venv.to_path_buf());
        Ok(Context {
            mode,
            namespaced: support.as_ref().is_some_and(SandboxSupport::namespaces),
            fresh_proc: support.as_ref().is_some_and(|s| s.fresh_proc),
            landlock_abi: support.as_ref().and_then(SandboxSupport::landlock_abi),
            seccomp: available("seccomp"),
            process_filter: process_filter(mode, available("seccomp")),
            support,
            sources: view::Sources {
                python_dirs: view::python_dirs(python, &venv),
                venv,
                harness: harness.to_path_buf(),
            },
            scratch_mb,
            cgroups,
            host_ids: idmap::HostIds::read(),
            workers: AtomicU32::new(0),
        })
    }

    pub(crate) fn active(&self) -> bool {
        self.mode != SandboxMode::Off
    }

    /// Whether this engine's workers get their own namespaces (decided by the probe
    /// when the engine was prepared; a worker that cannot is an error, never a fallback).
    pub(crate) fn namespaced(&self) -> bool {
        self.namespaced
    }

    /// The worker's cgroup, if this machine has writable controllers.
    pub(crate) fn cgroup(&self) -> Option<WorkerCgroup> {
        self.cgroups.as_ref().and_then(WorkerCgroup::create)
    }

    /// Everything one worker of `layout` needs. `worker_dir` is its own private host
    /// directory (its scratch, when it has no namespaces).
    pub(crate) fn worker_setup(
        &self,
        layout: &Layout,
        worker_dir: &Path,
        report_fd: i32,
        lifeline_fd: i32,
        cgroup: Option<&WorkerCgroup>,
        known_policies: Vec<RunnerPolicy>,
    ) -> WorkerSetup {
        let n = self.workers.fetch_add(1, Ordering::Relaxed);
        let scratch_arg = worker_dir.display().to_string();
        let mut sandbox = WorkerSandbox {
            scratch_mb: self.scratch_mb,
            layout: layout.clone(),
            missing: self.missing(),
            ..WorkerSandbox::default()
        };
        let mut child = ChildPlan {
            report_fd,
            lifeline_fd,
            cgroup_procs: cgroup.map(WorkerCgroup::procs_files).unwrap_or_default(),
            namespaces: None,
            seccomp: None,
            drop_caps: false,
        };
        let mut plan = HarnessPlan {
            scratch: Some(scratch_arg),
            own_scratch: true,
            policies: known_policies,
            // In every mode, the sandbox off included: libraries may import
            // _posixsubprocess, whose fork_exec raises no audit event, so a run whose
            // policy denies processes has the kernel refuse exec and fork.
            process_seccomp: self.process_filter.clone(),
            ..HarnessPlan::default()
        };
        if !self.active() {
            return WorkerSetup {
                child,
                plan,
                harness: self.sources.harness.clone(),
                mounts: Vec::new(),
                sandbox,
            };
        }
        let filter = |profile, private_ipc| {
            self.seccomp
                .then(|| {
                    spr_protocol::seccomp::Program::for_host(spr_protocol::seccomp::Options {
                        profile,
                        network: layout.network,
                        private_ipc,
                    })
                    .ok()
                })
                .flatten()
        };
        plan.oom_score_adj = Some(RUN_OOM_SCORE_ADJ);
        plan.caps = true;
        if self.namespaced {
            let spec = view::mount_spec(&self.sources, layout, self.scratch_mb);
            let mapping = idmap::IdMapping::choose(&self.host_ids, n);
            sandbox.user_mapping = Some(mapping.kind().to_string());
            let mut mounts = plan::build(&spec);
            // Error messages name the host paths, not the descriptors bound from.
            let described = mounts.clone();
            let bind_sources = view::bind_by_descriptor(&mut mounts, &[report_fd, lifeline_fd]);
            child.namespaces = Some(steps::NamespacePlan {
                unshare_net: !layout.network,
                ids: mapping.writer(),
                bind_sources,
                mounts,
            });
            child.seccomp =
                filter(spr_protocol::seccomp::Profile::Zygote, true).map(|p| p.instructions);
            let run_filter = filter(spr_protocol::seccomp::Profile::Run, true);
            sandbox.seccomp_denied = run_filter.as_ref().map_or(0, |p| p.denied);
            plan.seccomp = run_filter.map(|p| p.to_quads());
            plan.fresh = spr_protocol::Freshness::Namespaces;
            plan.scratch = Some(plan::SCRATCH.to_string());
            plan.tmpfs = vec![
                spr_protocol::TmpfsMount {
                    path: plan::SCRATCH.into(),
                    size_mb: self.scratch_mb.max(1),
                    mode: "1777".into(),
                },
                spr_protocol::TmpfsMount {
                    path: view::SHM.into(),
                    size_mb: self.scratch_mb.clamp(1, SHM_MB),
                    mode: "1777".into(),
                },
            ];
            plan.rebind = view::rebinds(&spec);
            plan.zygotes = Some(ZYGOTES);
            plan.pidns = true;
            // Each run's own /proc shows only the processes it may trace: its own, not
            // the harness's monitor and zygote (which are not dumpable).
            plan.procfs = self.fresh_proc.then(|| spr_protocol::ProcMount {
                options: hidepid(self.support.as_ref().and_then(|s| s.kernel.as_deref())),
                rights: landlock::READ_FILE | landlock::READ_DIR,
            });
            plan.nproc = true;
            plan.landlock = self.landlock_abi.map(|abi| spr_protocol::LandlockPlan {
                abi: Some(abi),
                fs: landlock::fs_rights(abi),
                net: landlock::net_rights(abi, layout.network),
                scoped: landlock::scopes(abi),
                rules: view::rules_in_sandbox(&spec),
                fresh_rights: landlock::WRITE_TREE,
            });
            return WorkerSetup {
                child,
                plan,
                harness: PathBuf::from(view::HARNESS_IN_SANDBOX),
                mounts: described,
                sandbox,
            };
        }
        // No namespaces on this machine: the worker still drops every capability and
        // runs under the run filter (SysV IPC and message queues refused: they would
        // outlive the run in the host's IPC namespace), and each run under Landlock.
        child.drop_caps = true;
        let run_filter = filter(spr_protocol::seccomp::Profile::Run, false);
        sandbox.seccomp_denied = run_filter.as_ref().map_or(0, |p| p.denied);
        child.seccomp = run_filter.map(|p| p.instructions);
        plan.landlock = self.landlock_abi.map(|abi| spr_protocol::LandlockPlan {
            abi: Some(abi),
            fs: landlock::fs_rights(abi),
            net: landlock::net_rights(abi, layout.network),
            scoped: landlock::scopes(abi),
            rules: view::rules_on_host(&self.sources, layout, worker_dir),
            fresh_rights: 0,
        });
        WorkerSetup {
            child,
            plan,
            harness: self.sources.harness.clone(),
            mounts: Vec::new(),
            sandbox,
        }
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

    /// The memory limit of the worker's cgroup for a run with `policy`, in a worker
    /// whose preloaded modules take `preload_kb` (the monitor's resident growth over
    /// their import; the runs share those pages until they write them).
    pub(crate) fn cgroup_memory_bytes(&self, policy: &RunnerPolicy, forked_kb: u64) -> u64 {
        ((policy.memory_limit_mb + WORKER_OVERHEAD_MB + self.scratch_mb + SHM_MB) << 20)
            + (forked_kb << 10)
    }
}

/// The process filter's program, where this machine takes seccomp filters (probed here
/// when the sandbox is off and nothing else probed it).
fn process_filter(mode: SandboxMode, seccomp: bool) -> Option<Vec<[u32; 4]>> {
    let usable = if mode == SandboxMode::Off {
        sys::seccomp_available().is_ok()
    } else {
        seccomp
    };
    usable
        .then(|| spr_protocol::seccomp::Program::no_processes_for_host().ok())
        .flatten()
        .map(|p| p.to_quads())
}

/// The procfs option that hides what a run may not trace. `ptraceable` (Linux 5.8+)
/// applies the ptrace check to everyone; `invisible` exempts members of the procfs's
/// group (gid 0, which root mapped to itself in a one-uid namespace belongs to).
fn hidepid(kernel: Option<&str>) -> String {
    let version = kernel
        .and_then(|k| {
            let mut parts = k.split(|c: char| !c.is_ascii_digit());
            Some((
                parts.next()?.parse::<u32>().ok()?,
                parts.next()?.parse::<u32>().ok()?,
            ))
        })
        .unwrap_or((0, 0));
    if version >= (5, 8) {
        "hidepid=ptraceable".into()
    } else {
        "hidepid=invisible".into()
    }
}

#[cfg(test)]
mod tests {
    use super::hidepid;

    #[test]
    fn hidepid_uses_the_ptrace_check_where_the_kernel_has_it() {
        assert_eq!(hidepid(Some("6.18.0-1-amd64")), "hidepid=ptraceable");
        assert_eq!(hidepid(Some("5.8.0")), "hidepid=ptraceable");
        assert_eq!(hidepid(Some("5.4.0-150-generic")), "hidepid=invisible");
        assert_eq!(hidepid(None), "hidepid=invisible");
    }
}
