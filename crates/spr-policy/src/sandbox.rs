//! `SandboxPolicy`: the `[policy.sandbox]` knobs of the kernel sandbox under the Python
//! policy, with safe defaults (no network, nothing of the host beyond what Python needs).

use crate::PolicyError;
use serde::{Deserialize, Serialize};

/// Protections a policy can demand with `require`; a run on a machine (or an engine)
/// that cannot apply one of them fails with an error naming it, never silently.
pub const PROTECTION_NAMES: &[&str] = &[
    "namespaces",
    "user_namespace",
    "mount_namespace",
    "pid_namespace",
    "network_namespace",
    "ipc_namespace",
    "uts_namespace",
    "filesystem",
    "landlock",
    "seccomp",
    "rlimits",
    "process_limit",
    "cgroup_memory",
    "cgroup_pids",
    "audit_hooks",
];

/// The keys of `[policy.sandbox]`, in the order they are documented and rendered.
pub const SANDBOX_KEYS: &[&str] = &[
    "network",
    "extra_read_paths",
    "extra_write_paths",
    "max_processes",
    "max_file_size_mb",
    "max_open_files",
    "require",
];

/// `max_processes`: the run's own process counts; a fork bomb stops here.
pub const MAX_PROCESSES_RANGE: (u64, u64) = (1, 4096);
/// `max_file_size_mb`: largest file a run may write (RLIMIT_FSIZE).
pub const MAX_FILE_SIZE_MB_RANGE: (u64, u64) = (1, 1_048_576);
/// `max_open_files`: CPython needs a few dozen descriptors to start its imports.
pub const MAX_OPEN_FILES_RANGE: (u64, u64) = (32, 1_048_576);

pub const DEFAULT_MAX_PROCESSES: u64 = 64;
pub const DEFAULT_MAX_FILE_SIZE_MB: u64 = 64;
pub const DEFAULT_MAX_OPEN_FILES: u64 = 256;

/// The sandbox knobs of a policy. Engines apply what they can and report it in each
/// result's receipt; `require` turns a missing protection into an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxPolicy {
    /// Give runs the host's network (default: an empty network namespace).
    pub network: bool,
    /// Absolute host paths mounted read-only at the same place.
    pub extra_read_paths: Vec<String>,
    /// Absolute host paths mounted writable at the same place (runs can change them).
    pub extra_write_paths: Vec<String>,
    pub max_processes: u64,
    pub max_file_size_mb: u64,
    pub max_open_files: u64,
    /// Names of [`PROTECTION_NAMES`] that must be applied, or the run is refused.
    pub require: Vec<String>,
}

impl Default for SandboxPolicy {
    fn default() -> Self {
        SandboxPolicy {
            network: false,
            extra_read_paths: Vec::new(),
            extra_write_paths: Vec::new(),
            max_processes: DEFAULT_MAX_PROCESSES,
            max_file_size_mb: DEFAULT_MAX_FILE_SIZE_MB,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            require: Vec::new(),
        }
    }
}

impl SandboxPolicy {
    pub fn is_default(&self) -> bool {
        *self == SandboxPolicy::default()
    }
}

pub(crate) fn validate(s: &SandboxPolicy) -> Result<(), PolicyError> {
    use crate::validate::check_range;
    check_range(
        "sandbox.max_processes",
        s.max_processes.into(),
        MAX_PROCESSES_RANGE,
    )?;
    check_range(
        "sandbox.max_file_size_mb",
        s.max_file_size_mb.into(),
        MAX_FILE_SIZE_MB_RANGE,
    )?;
    check_range(
        "sandbox.max_open_files",
        s.max_open_files.into(),
        MAX_OPEN_FILES_RANGE,
    )?;
    for (field, items) in [
        ("extra_read_paths", &s.extra_read_paths),
        ("extra_write_paths", &s.extra_write_paths),
    ] {
        for (i, item) in items.iter().enumerate() {
            let key = format!("sandbox.{field}[{i}]");
            if !item.starts_with('/') {
                return Err(PolicyError::invalid(
                    key,
                    format!("'{item}' is not an absolute path"),
                ));
            }
            if item.split('/').any(|seg| seg == ".." || seg == ".") || item.contains('\0') {
                return Err(PolicyError::invalid(
                    key,
                    format!("'{item}' must be a normalized path (no '.', '..' or NUL)"),
                ));
            }
            if item == "/" {
                return Err(PolicyError::invalid(
                    key,
                    "the whole filesystem cannot be mounted",
                ));
            }
        }
    }
    for (i, name) in s.require.iter().enumerate() {
        if !PROTECTION_NAMES.contains(&name.as_str()) {
            return Err(PolicyError::invalid(
                format!("sandbox.require[{i}]"),
                format!(
                    "unknown protection '{name}' (known: {})",
                    PROTECTION_NAMES.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe_and_valid() {
        let s = SandboxPolicy::default();
        assert!(!s.network);
        assert!(s.extra_read_paths.is_empty() && s.extra_write_paths.is_empty());
        validate(&s).unwrap();
    }

    #[test]
    fn errors_name_the_key() {
        let bad = |s: SandboxPolicy| validate(&s).unwrap_err().to_string();
        let e = bad(SandboxPolicy {
            max_processes: 0,
            ..SandboxPolicy::default()
        });
        assert!(
            e.starts_with("sandbox.max_processes: must be between 1 and 4096"),
            "{e}"
        );
        let e = bad(SandboxPolicy {
            extra_read_paths: vec!["data".into()],
            ..SandboxPolicy::default()
        });
        assert!(e.starts_with("sandbox.extra_read_paths[0]:"), "{e}");
        let e = bad(SandboxPolicy {
            extra_write_paths: vec!["/a/../etc".into()],
            ..SandboxPolicy::default()
        });
        assert!(e.starts_with("sandbox.extra_write_paths[0]:"), "{e}");
        let e = bad(SandboxPolicy {
            require: vec!["landlock".into(), "selinux".into()],
            ..SandboxPolicy::default()
        });
        assert!(
            e.starts_with("sandbox.require[1]: unknown protection 'selinux'"),
            "{e}"
        );
    }

    #[test]
    fn the_sandbox_table_loads_strictly_and_round_trips() {
        use crate::RunnerPolicy;
        let text = "[policy]\ntimeout_seconds = 3\n\n[policy.sandbox]\nnetwork = true\nextra_read_paths = [\"/data\"]\nmax_processes = 8\nrequire = [\"landlock\", \"namespaces\"]\n";
        let p = RunnerPolicy::from_toml_str(text, None).unwrap();
        assert!(p.sandbox.network);
        assert_eq!(p.sandbox.max_processes, 8);
        assert_eq!(p.sandbox.max_open_files, DEFAULT_MAX_OPEN_FILES);
        assert_eq!(RunnerPolicy::from_toml_str(&p.to_toml(), None).unwrap(), p);
        assert!(!RunnerPolicy::default().to_toml().contains("sandbox"));
        let e = RunnerPolicy::from_toml_str("[policy.sandbox]\nnetwrok = true\n", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown key 'sandbox.netwrok'") && e.contains("sandbox.network"),
            "{e}"
        );
        let e = RunnerPolicy::from_toml_str("[policy.sandbox]\nmax_open_files = 4\n", None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("sandbox.max_open_files"),
            "{e}"
        );
        let e = RunnerPolicy::from_toml_str("[policy.sandbox]\nnetwork = \"yes\"\n", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sandbox.network: expected a boolean"), "{e}");
        let json: RunnerPolicy =
            serde_json::from_str(r#"{"sandbox": {"max_processes": 4}}"#).unwrap();
        assert_eq!(json.sandbox.max_processes, 4);
        assert!(serde_json::from_str::<RunnerPolicy>(r#"{"sandbox": {"bogus": 1}}"#).is_err());
    }
}
