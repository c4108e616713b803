//! The receipt of a run: what its worker's set-up applied (from the set-up's report)
//! and what the harness applies to every run of that worker (from its greeting), never
//! what was merely intended.

use super::facts::Facts;
use super::steps::{
    APPLIED_CAPS_LIMITED, APPLIED_CGROUP, APPLIED_FILESYSTEM, APPLIED_NAMESPACES,
    APPLIED_NETWORK_NS, APPLIED_PROC, APPLIED_SECCOMP,
};
use super::{Layout, WorkerCgroup};
use spr_policy::RunnerPolicy;
use spr_protocol::{
    CgroupReceipt, FilesystemReceipt, MissingProtection, NamespacesReceipt, RlimitsReceipt,
    RunIsolation, SandboxReceipt, SeccompReceipt,
};

/// What one worker got, kept with the worker for its receipts.
#[derive(Debug, Default)]
pub(crate) struct WorkerSandbox {
    pub facts: Facts,
    /// What the harness applies to each run (its greeting).
    pub isolation: RunIsolation,
    pub seccomp_denied: u32,
    pub cgroup: Option<WorkerCgroup>,
    pub scratch_mb: u64,
    pub layout: Layout,
    /// "distinct", "subordinate" or "own".
    pub user_mapping: Option<String>,
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
        let ns = self.facts.has(APPLIED_NAMESPACES);
        let netns = self.facts.has(APPLIED_NETWORK_NS);
        let iso = &self.isolation;
        let sb = &policy.sandbox;
        let mut missing = self.missing.clone();
        if ns && !self.facts.has(APPLIED_PROC) {
            missing.push(MissingProtection {
                name: "proc".into(),
                reason: "the kernel refused a fresh /proc (the host's /proc is partly masked); the worker has none".into(),
            });
        }
        let seccomp = iso.seccomp || self.facts.has(APPLIED_SECCOMP);
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
                read_only_root: self.facts.has(APPLIED_FILESYSTEM),
                scratch_tmpfs_mb: (iso.scratch == "tmpfs").then_some(self.scratch_mb),
                extra_read_paths: sb.extra_read_paths.clone(),
                extra_write_paths: sb.extra_write_paths.clone(),
            }),
            landlock_abi: iso.landlock_abi,
            seccomp: seccomp.then(|| SeccompReceipt {
                mode: "deny-list".into(),
                denied_syscalls: self.seccomp_denied,
            }),
            rlimits: Some(rlimits(policy, ns)),
            cgroup: self
                .cgroup
                .as_ref()
                .filter(|_| self.facts.has(APPLIED_CGROUP))
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
            user_mapping: self.user_mapping.clone(),
            capabilities_dropped: iso.capabilities_dropped && self.facts.has(APPLIED_CAPS_LIMITED),
            per_run: Some(iso.for_policy(policy)),
            setup_ms: None,
            missing,
            details: Default::default(),
        }
    }
}

/// The rlimits the harness sets in every run's process (it applies them from the same
/// policy); RLIMIT_NPROC only inside a private user namespace. The two memory limits
/// depend on the worker's greeting too: the engine's `receipt_for` sets them.
pub(crate) fn rlimits(policy: &RunnerPolicy, namespaced: bool) -> RlimitsReceipt {
    let sb = &policy.sandbox;
    RlimitsReceipt {
        open_files: Some(sb.max_open_files),
        file_size_mb: Some(sb.max_file_size_mb),
        core_mb: Some(0),
        cpu_seconds: Some(policy.timeout_seconds + 1),
        processes: namespaced.then_some(sb.max_processes),
        ..RlimitsReceipt::default()
    }
}

/// The receipt of a run on an engine whose sandbox is off.
/// `isolation` is the worker's greeting: with the sandbox off a run still gets the
/// process filter where its policy denies processes.
pub(crate) fn receipt_off(
    policy: &RunnerPolicy,
    missing: Vec<MissingProtection>,
    isolation: &RunIsolation,
) -> SandboxReceipt {
    let per_run = isolation.for_policy(policy);
    SandboxReceipt {
        engine: "local".into(),
        rlimits: Some(rlimits(policy, false)),
        network: Some("host".into()),
        audit_hooks: audit_hooks_active(policy),
        per_run: per_run.process_filter.then_some(per_run),
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
