//! `SandboxReceipt`: which protections were actually applied to one run.
//!
//! Engines fill in what they applied, never what they intended: a field is `None` (or a
//! flag `false`) when the protection was not in force, and `missing` says why. Facts
//! that only one engine knows (a container name, a runtime) go in `details`.

use crate::message::PreloadCost;
use crate::plan::RunIsolation;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What protected one run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SandboxReceipt {
    /// The engine that applied the protections ("local", "docker").
    pub engine: String,
    /// Kernel namespaces the worker ran in (local engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespacesReceipt>,
    /// The filesystem view of the run (local engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystem: Option<FilesystemReceipt>,
    /// The Landlock ABI version enforced, if Landlock was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock_abi: Option<u32>,
    /// The seccomp filter, if one was installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompReceipt>,
    /// Resource limits set on the run's process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rlimits: Option<RlimitsReceipt>,
    /// Control-group limits on the worker and its runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupReceipt>,
    /// "none" (an empty network namespace), "host" (the host's network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// PEP 578 audit hooks enforced the policy's capabilities in the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub audit_hooks: bool,
    /// How root of the worker's user namespace maps to the host: "distinct" (an unused
    /// unprivileged id), "subordinate" (an id of the caller's /etc/subuid range) or
    /// "own" (the caller's own uid, where only that one can be mapped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_mapping: Option<String>,
    /// The run held no capability at all (not even inside its namespaces).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub capabilities_dropped: bool,
    /// What the run got of its own, before its request existed: fresh namespaces, a new
    /// scratch tmpfs or a scrubbed one, its Landlock domain, its seccomp filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_run: Option<RunIsolation>,
    /// Milliseconds the run's process spent on its own isolation before its request
    /// existed (off the latency path when it was made while another run executed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_ms: Option<f64>,
    /// Protections this machine could not apply, each with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingProtection>,
    /// Engine-specific facts.
    #[serde(flatten)]
    pub details: BTreeMap<String, serde_json::Value>,
}

/// One flag per namespace the worker was placed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NamespacesReceipt {
    pub user: bool,
    pub mount: bool,
    pub pid: bool,
    pub network: bool,
    pub ipc: bool,
    pub uts: bool,
}

/// The run's view of the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FilesystemReceipt {
    /// Only read-only bind mounts of what Python needs are visible.
    pub read_only_root: bool,
    /// Size of the private tmpfs holding the run's scratch directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch_tmpfs_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_read_paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_write_paths: Vec<String>,
}

/// The seccomp filter installed in the worker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SeccompReceipt {
    /// "deny-list": listed syscalls fail with EPERM, everything else is allowed.
    pub mode: String,
    /// How many syscalls the filter denies.
    pub denied_syscalls: u32,
}

/// Address space a run may map beyond its memory limit, in MiB: room for the code and
/// read-only data of the libraries it loads (the harness's `ADDRESS_SPACE_HEADROOM_MB`).
pub const ADDRESS_SPACE_HEADROOM_MB: u64 = 256;

/// Resource limits of the run's process (`None`: not set).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RlimitsReceipt {
    /// RLIMIT_DATA, the run's memory: the policy's `memory_limit_mb`, plus the private
    /// memory every run's process is forked with (the interpreter's and harness's, the
    /// hello's `base_data_kb`, and the preloaded modules').
    #[serde(default)]
    pub data_mb: Option<u64>,
    /// RLIMIT_AS, a backstop [`ADDRESS_SPACE_HEADROOM_MB`] above the policy's memory (plus
    /// the preload's address space): it bounds the shared mappings RLIMIT_DATA does not
    /// count.
    pub address_space_mb: Option<u64>,
    pub open_files: Option<u64>,
    pub file_size_mb: Option<u64>,
    pub core_mb: Option<u64>,
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_NPROC; only set where it counts the run alone (a private user namespace).
    pub processes: Option<u64>,
}

impl RlimitsReceipt {
    /// Sets the two memory limits the harness derives from a policy's
    /// `memory_limit_mb`, the worker's own memory besides the preload's (`base_data_kb`,
    /// from its greeting) and its preload.
    pub fn set_memory(
        &mut self,
        memory_limit_mb: u64,
        base_data_kb: u64,
        preload: Option<&PreloadCost>,
    ) {
        let (data_kb, vm_kb) = preload.map_or((0, 0), |p| (p.data_kb, p.vm_kb));
        let data_kb = data_kb.saturating_add(base_data_kb);
        self.data_mb = Some(memory_limit_mb.saturating_add(data_kb.div_ceil(1024)));
        self.address_space_mb = Some(
            memory_limit_mb
                .saturating_add(ADDRESS_SPACE_HEADROOM_MB)
                .saturating_add(vm_kb.div_ceil(1024)),
        );
    }
}

/// Control-group limits (`None`: that controller was not available).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CgroupReceipt {
    /// 1 or 2.
    pub version: u8,
    pub memory_limit_mb: Option<u64>,
    pub pids_max: Option<u64>,
}

/// A protection that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingProtection {
    pub name: String,
    pub reason: String,
}

impl SandboxReceipt {
    /// Whether the named protection (a name of `spr_policy::PROTECTION_NAMES`) was applied.
    pub fn applied(&self, name: &str) -> bool {
        let ns = self.namespaces.unwrap_or_default();
        match name {
            "user_namespace" => ns.user,
            "mount_namespace" => ns.mount,
            "pid_namespace" => ns.pid,
            "network_namespace" => ns.network,
            "ipc_namespace" => ns.ipc,
            "uts_namespace" => ns.uts,
            "namespaces" => ns.user && ns.mount && ns.pid && ns.ipc && ns.uts,
            "filesystem" => self.filesystem.as_ref().is_some_and(|f| f.read_only_root),
            "landlock" => self.landlock_abi.is_some(),
            "seccomp" => self.seccomp.is_some(),
            "rlimits" => self.rlimits.is_some(),
            "process_limit" => {
                self.rlimits.as_ref().is_some_and(|r| r.processes.is_some())
                    || self.cgroup.as_ref().is_some_and(|c| c.pids_max.is_some())
            }
            "cgroup_memory" => self
                .cgroup
                .as_ref()
                .is_some_and(|c| c.memory_limit_mb.is_some()),
            "cgroup_pids" => self.cgroup.as_ref().is_some_and(|c| c.pids_max.is_some()),
            "audit_hooks" => self.audit_hooks,
            _ => false,
        }
    }
}

/// Engines that describe their protections as loose JSON (a map of facts) convert
/// here: `engine` becomes the typed field, every other key lands in `details`.
impl From<serde_json::Value> for SandboxReceipt {
    fn from(value: serde_json::Value) -> Self {
        let mut receipt = SandboxReceipt::default();
        if let serde_json::Value::Object(map) = value {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("engine", serde_json::Value::String(s)) => receipt.engine = s,
                    (_, value) => {
                        receipt.details.insert(key, value);
                    }
                }
            }
        }
        receipt
    }
}

/// `receipt["key"]` reads an engine-specific fact (`Null` when absent), as on a JSON map.
impl std::ops::Index<&str> for SandboxReceipt {
    type Output = serde_json::Value;

    fn index(&self, key: &str) -> &serde_json::Value {
        static NULL: serde_json::Value = serde_json::Value::Null;
        self.details.get(key).unwrap_or(&NULL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_json_keeps_its_keys_and_indexes_like_a_map() {
        let r = SandboxReceipt::from(
            serde_json::json!({"engine": "docker", "network": "none", "pids_limit": 64}),
        );
        assert_eq!(r.engine, "docker");
        assert_eq!(r["network"], "none");
        assert_eq!(r["pids_limit"], 64);
        assert!(r["absent"].is_null());
        let text = serde_json::to_value(&r).unwrap();
        assert_eq!(
            text,
            serde_json::json!({"engine": "docker", "network": "none", "pids_limit": 64})
        );
    }

    #[test]
    fn a_typed_receipt_round_trips_and_answers_by_protection_name() {
        let r = SandboxReceipt {
            engine: "local".into(),
            namespaces: Some(NamespacesReceipt {
                user: true,
                mount: true,
                pid: true,
                network: true,
                ipc: true,
                uts: true,
            }),
            landlock_abi: Some(7),
            network: Some("none".into()),
            missing: vec![MissingProtection {
                name: "cgroup_memory".into(),
                reason: "not writable".into(),
            }],
            ..SandboxReceipt::default()
        };
        let back: SandboxReceipt =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert!(r.applied("namespaces") && r.applied("landlock"));
        assert!(!r.applied("seccomp") && !r.applied("cgroup_memory") && !r.applied("bogus"));
    }
}
