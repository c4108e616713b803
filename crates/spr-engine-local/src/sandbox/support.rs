//! What this machine gives a worker, found by trial, never guessed: the namespace part
//! is a real run of a worker's set-up (user namespace with the maps this user would
//! get, PID, mount, IPC, UTS and network namespaces, a tmpfs and a fresh /proc) in a
//! forked child; the rest asks the kernel (Landlock ABI, seccomp, cgroups).

use super::idmap::{HostIds, IdMapping};
use super::plan::{MS_NODEV, MS_NOSUID};
use super::steps::{ChildPlan, NamespacePlan, APPLIED_NAMESPACES, APPLIED_PROC};
use super::{cgroup, facts, landlock, plan, sys, view};
use serde::{Deserialize, Serialize};
use spr_protocol::MissingProtection;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

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
    /// How root of a worker's user namespace maps to this host ("distinct",
    /// "subordinate" or "own"), when namespaces work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_mapping: Option<String>,
    /// A worker in its own PID namespace gets a fresh /proc (the kernel refuses one when
    /// the host's /proc is partly masked, as in a default container).
    #[serde(default)]
    pub fresh_proc: bool,
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

    pub(crate) fn landlock_abi(&self) -> Option<u32> {
        self.get("landlock")
            .filter(|p| p.available)
            .and_then(|p| p.detail.as_deref())
            .and_then(|d| d.strip_prefix("ABI "))
            .and_then(|n| n.parse().ok())
    }

    pub(crate) fn namespaces(&self) -> bool {
        NAMESPACES.iter().all(|n| self.available(n))
    }
}

const NAMESPACES: [&str; 6] = [
    "user_namespace",
    "mount_namespace",
    "pid_namespace",
    "network_namespace",
    "ipc_namespace",
    "uts_namespace",
];

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

/// What this machine gives a worker of this user, and why anything is missing. Costs
/// one trial set-up in a forked child (a few milliseconds).
pub fn probe() -> SandboxSupport {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let mut protections = Vec::new();
    let host = HostIds::read();
    let mapping = IdMapping::choose(&host, 0);
    let trial = namespace_trial(&mapping);
    let namespaced = trial.is_ok();
    match &trial {
        Ok(_) => {
            for name in NAMESPACES {
                protections.push(support(name, Ok(None)));
            }
        }
        Err(why) => {
            let why = explain(why);
            for name in NAMESPACES {
                protections.push(support(name, Err(why.clone())));
            }
        }
    }
    protections.push(support(
        "filesystem",
        if namespaced {
            Ok(Some("read-only binds, tmpfs scratch per run".into()))
        } else {
            Err("needs user and mount namespaces".to_string())
        },
    ));
    protections.push(support(
        "landlock",
        landlock::abi().map(|v| Some(format!("ABI {v}"))),
    ));
    protections.push(support(
        "seccomp",
        seccomp_support().map(|denied| Some(format!("deny-list of {denied} syscalls"))),
    ));
    protections.push(support("rlimits", Ok(None)));
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
    let process_limit = match (&pids, namespaced) {
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
        user_mapping: namespaced.then(|| mapping.kind().to_string()),
        fresh_proc: trial.as_ref().is_ok_and(|bits| bits & APPLIED_PROC != 0),
        protections,
    }
}

fn seccomp_support() -> Result<u32, String> {
    sys::seccomp_available()?;
    spr_protocol::seccomp::Program::for_host(spr_protocol::seccomp::Options {
        profile: spr_protocol::seccomp::Profile::Run,
        network: false,
        private_ipc: true,
    })
    .map(|p| p.denied)
    .map_err(|e| e.to_string())
}

/// A worker's namespace set-up, for real, in a forked child: the new root is a tmpfs
/// with a fresh /proc, nothing is exec'd.
fn namespace_trial(mapping: &IdMapping) -> Result<u32, String> {
    let (report_r, report_w) = sys::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (lifeline_r, lifeline_w) = sys::pipe().map_err(|e| format!("pipe: {e}"))?;
    let root = PathBuf::from(view::ASSEMBLY_POINT);
    let proc_dir = root.join("proc");
    let mounts = vec![
        plan::Step::MakeRootPrivate,
        plan::Step::Tmpfs {
            target: view::c_path(&root),
            flags: MS_NOSUID | MS_NODEV,
            data: c"size=64k,mode=0755".to_owned(),
        },
        plan::Step::Mkdir(view::c_path(&proc_dir)),
        // A masked host /proc (a default container) refuses a fresh one.
        plan::Step::Proc(view::c_path(&proc_dir)),
    ];
    let plan = ChildPlan {
        report_fd: report_w.as_raw_fd(),
        lifeline_fd: lifeline_r.as_raw_fd(),
        cgroup_procs: Vec::new(),
        namespaces: Some(NamespacePlan {
            unshare_net: true,
            ids: mapping.writer(),
            bind_sources: Vec::new(),
            mounts: mounts.clone(),
        }),
        seccomp: None,
        drop_caps: false,
    };
    let exit = sys::trial(&plan);
    drop(report_w);
    drop(lifeline_w);
    let mut report = std::fs::File::from(report_r);
    let f = facts::Facts::read(&mut report);
    if let Some((step, errno)) = f.failure {
        return Err(facts::describe_failure(step, errno, &mounts));
    }
    match exit {
        Ok(super::syscall::Exit::Code(0)) if f.has(APPLIED_NAMESPACES) => {}
        other => return Err(format!("the trial set-up ended with {other:?}")),
    }
    Ok(f.applied)
}

/// Why the trial failed, with the sysctl or policy that usually causes it.
fn explain(why: &str) -> String {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    let hint = if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        " (disabled by sysctl kernel.unprivileged_userns_clone=0)"
    } else if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        " (disabled by sysctl user.max_user_namespaces=0)"
    } else if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1")
    {
        " (restricted by AppArmor: kernel.apparmor_restrict_unprivileged_userns=1)"
    } else {
        ""
    };
    format!("{why}{hint}")
}
