//! `HarnessPlan`: what the host asks the harness to do to every run of a worker, passed
//! as `--plan JSON` when the worker starts, and `RunIsolation`, what the harness says
//! every run of it gets (in its greeting).
//!
//! The plan is the engine's, never a caller's: it is fixed for the worker's life, and a
//! run whose isolation fails never executes.

use serde::{Deserialize, Serialize};
use spr_policy::RunnerPolicy;

/// How what a run writes is made fresh for the next run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// Each run unshares its own mount and IPC namespaces and gets new tmpfs mounts:
    /// nothing it wrote exists once it ends.
    Namespaces,
    /// Runs share the scratch base, which is emptied and checked after every run; a
    /// worker that cannot empty it is retired.
    #[default]
    Scrub,
}

/// A tmpfs each run gets of its own (`Freshness::Namespaces`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmpfsMount {
    pub path: String,
    pub size_mb: u64,
    /// Octal mode of its root, e.g. "1777".
    pub mode: String,
}

/// A procfs each run mounts of its own on /proc (`Freshness::Namespaces`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcMount {
    /// Mount options, e.g. "hidepid=invisible".
    pub options: String,
    /// Landlock rights on its root.
    pub rights: u64,
}

/// A Landlock ruleset every run restricts itself with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LandlockPlan {
    /// The ABI to use; `None`: the harness probes the kernel it runs on.
    pub abi: Option<u32>,
    /// Handled filesystem rights (0: no filesystem rules, only scoping).
    pub fs: u64,
    /// Handled network rights (TCP bind and connect, ABI 4+).
    pub net: u64,
    /// Scopes (abstract unix sockets, signals; ABI 6+).
    pub scoped: u64,
    /// (path in the worker's view, rights) pairs; missing paths are skipped.
    pub rules: Vec<(String, u64)>,
    /// Rights on the root of each per-run tmpfs.
    pub fresh_rights: u64,
}

/// Landlock scope: no connecting to abstract unix sockets outside the run.
pub const LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;
/// Landlock scope: no signals to processes outside the run.
pub const LANDLOCK_SCOPE_SIGNAL: u64 = 2;

/// The harness's `--plan`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HarnessPlan {
    pub fresh: Freshness,
    /// Where runs' scratch directories are made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<String>,
    /// The scratch base belongs to this worker alone.
    #[serde(default)]
    pub own_scratch: bool,
    /// The scratch base is a filesystem of its own (a container's tmpfs): a run that
    /// left nothing behind is recognised by its free inodes, without a wipe.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private_scratch_fs: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<TmpfsMount>,
    /// Mount points under a per-run tmpfs that must stay visible (a venv under /tmp).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebind: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procfs: Option<ProcMount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landlock: Option<LandlockPlan>,
    /// A seccomp program (`[code, jt, jf, k]` per instruction) every run installs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Vec<[u32; 4]>>,
    /// A second seccomp program (the process filter, `seccomp::Program::no_processes`)
    /// that a run installs on top once it has read its policy, when the policy denies
    /// processes (see [`denies_processes`]): the kernel then refuses exec and fork
    /// whoever asks, a library included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_seccomp: Option<Vec<[u32; 4]>>,
    /// Directories the runs share besides the scratch base (a container's `/dev/shm`),
    /// writable by runs and emptied and checked after every run like the scratch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrubbed_dirs: Vec<String>,
    /// Drop every capability in each run.
    #[serde(default)]
    pub caps: bool,
    /// RLIMIT_NPROC counts the run alone (a private user namespace).
    #[serde(default)]
    pub nproc: bool,
    /// How many zygotes fork runs: with more than one, the next runs' processes are made
    /// (and isolated) by the others while a run of one executes. Only with `pidns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zygotes: Option<u32>,
    /// Each zygote is PID 1 of a PID namespace of its own.
    #[serde(default)]
    pub pidns: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// Policies the operator configured, prepared before any request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<RunnerPolicy>,
    /// Modules the operator asked for, imported once in the monitor before it forks its
    /// zygotes, so that every run's process is forked with them loaded (its own
    /// copy-on-write copy of them). Validated by the engine (`validate_preload`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preload: Vec<String>,
    /// Python the operator asked for, run once in the monitor after the preload: what it
    /// sets up lazily is in every run's process from the start, and the pages it writes
    /// are copied while each run's process waits. Validated by the engine
    /// (`validate_warmup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
}

impl HarnessPlan {
    /// The `--plan` argument.
    pub fn to_arg(&self) -> String {
        serde_json::to_string(self).expect("a plan serializes")
    }
}

/// Why a preload list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreloadError {
    #[error("preload: '{name}' is not a module name (dotted Python identifiers, e.g. 'pandas' or 'matplotlib.pyplot')")]
    NotAModuleName { name: String },
    #[error("preload: '{name}' is listed twice")]
    Duplicate { name: String },
}

/// The largest warm-up an engine accepts, as it is written into the harness's plan (a JSON
/// string, escaped): the plan is one argument of the harness's command line, which Linux
/// limits to 128 KiB.
pub const MAX_WARMUP_BYTES: usize = 64 * 1024;

/// Why a warm-up was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WarmupError {
    #[error("warmup: the code is empty (leave the warm-up unset for none)")]
    Empty,
    #[error("warmup: the code takes {bytes} bytes in the worker's plan (JSON-escaped), more than the {max} a warm-up may have")]
    TooLarge { bytes: usize, max: usize },
    #[error("warmup: the code contains a NUL character (at byte {at})")]
    Nul { at: usize },
}

/// Check an engine's warm-up code: present, at most [`MAX_WARMUP_BYTES`] once escaped for
/// the plan, and no NUL (the interpreter's compiler refuses one). Whether it runs is known only when the first
/// worker starts: a failing warm-up fails the worker, naming its exception.
pub fn validate_warmup(code: Option<&str>) -> Result<(), WarmupError> {
    let Some(code) = code else { return Ok(()) };
    if code.trim().is_empty() {
        return Err(WarmupError::Empty);
    }
    let escaped = serde_json::to_string(code).map_or(usize::MAX, |s| s.len());
    if escaped > MAX_WARMUP_BYTES {
        return Err(WarmupError::TooLarge {
            bytes: escaped,
            max: MAX_WARMUP_BYTES,
        });
    }
    if let Some(at) = code.find('\0') {
        return Err(WarmupError::Nul { at });
    }
    Ok(())
}

/// Check an engine's preload list: each entry a dotted name of Python identifiers
/// (ASCII, not starting with a digit), none twice. The harness imports exactly these
/// names, so nothing but a module name may reach it.
pub fn validate_preload(names: &[String]) -> Result<(), PreloadError> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        let ok = !name.is_empty()
            && name.split('.').all(|part| {
                let mut chars = part.chars();
                matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
                    && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
            });
        if !ok {
            return Err(PreloadError::NotAModuleName { name: name.clone() });
        }
        if !seen.insert(name.as_str()) {
            return Err(PreloadError::Duplicate { name: name.clone() });
        }
    }
    Ok(())
}

/// What every run of a worker gets from the harness before its request exists (a run
/// whose isolation fails never executes), as its greeting says.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RunIsolation {
    /// Namespaces each run gets fresh: "mount", "ipc".
    #[serde(default)]
    pub fresh_namespaces: Vec<String>,
    /// "tmpfs" (a new one per run) or "scrubbed" (emptied and checked after each run).
    #[serde(default)]
    pub scratch: String,
    #[serde(default)]
    pub landlock_abi: Option<u32>,
    /// Signals and abstract unix sockets cannot leave the run.
    #[serde(default)]
    pub landlock_scoped: bool,
    #[serde(default)]
    pub seccomp: bool,
    #[serde(default)]
    pub capabilities_dropped: bool,
    /// Runs whose policy denies processes install the process filter (exec and fork
    /// refused by the kernel). In a receipt: this run installed it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub process_filter: bool,
    /// The run's `/dev/shm` (POSIX shared memory and semaphores); `None`: none of its
    /// own (the host's, or none at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev_shm: Option<DevShm>,
}

/// Where a run's `/dev/shm` comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DevShm {
    /// A new, size-limited tmpfs per run.
    Tmpfs,
    /// A tmpfs the runs of a worker share, emptied and checked after every run.
    Scrubbed,
}

impl RunIsolation {
    /// This worker's isolation as it applies to one run under `policy`: the process
    /// filter only where the policy denies processes.
    pub fn for_policy(&self, policy: &RunnerPolicy) -> RunIsolation {
        RunIsolation {
            process_filter: self.process_filter && denies_processes(policy),
            ..self.clone()
        }
    }
}

/// Whether `policy` denies starting processes, as the harness decides it (`_Denied` in
/// the harness): `subprocess`, `os` or `posix` blocked (or not allowed, in allow
/// mode). Such a run gets the audit hook's refusal of process events and, where the
/// plan has one, the kernel's (the process filter).
pub fn denies_processes(policy: &RunnerPolicy) -> bool {
    let matches = |name: &str, list: &[String]| {
        list.iter().any(|entry| {
            name == entry
                || name
                    .strip_prefix(entry.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    };
    let blocked = |name: &str| match policy.mode {
        spr_policy::Mode::Allow => !matches(name, &policy.allowed_imports),
        spr_policy::Mode::Restrict => matches(name, &policy.blocked_imports),
    };
    blocked("subprocess") || blocked("os") || blocked("posix")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_plan_is_an_empty_object_but_for_the_freshness() {
        assert_eq!(
            HarnessPlan::default().to_arg(),
            r#"{"fresh":"scrub","own_scratch":false,"caps":false,"nproc":false,"pidns":false}"#
        );
    }

    #[test]
    fn a_full_plan_round_trips() {
        let plan = HarnessPlan {
            fresh: Freshness::Namespaces,
            scratch: Some("/tmp".into()),
            own_scratch: true,
            private_scratch_fs: true,
            tmpfs: vec![TmpfsMount {
                path: "/tmp".into(),
                size_mb: 128,
                mode: "1777".into(),
            }],
            rebind: vec!["/tmp/venv".into()],
            procfs: Some(ProcMount {
                options: "hidepid=invisible".into(),
                rights: 12,
            }),
            landlock: Some(LandlockPlan {
                abi: Some(7),
                fs: 0xffff,
                net: 3,
                scoped: LANDLOCK_SCOPE_SIGNAL,
                rules: vec![("/usr".into(), 13)],
                fresh_rights: 0x7ffe,
            }),
            seccomp: Some(vec![[6, 0, 0, 0x7fff_0000]]),
            process_seccomp: Some(vec![[6, 0, 0, 0x7fff_0000]]),
            scrubbed_dirs: vec!["/dev/shm".into()],
            caps: true,
            nproc: true,
            zygotes: Some(2),
            pidns: true,
            oom_score_adj: Some(1000),
            policies: vec![RunnerPolicy::default()],
            preload: vec!["pandas".into(), "matplotlib.pyplot".into()],
            warmup: Some("import pandas as pd\npd.DataFrame()".into()),
        };
        let back: HarnessPlan = serde_json::from_str(&plan.to_arg()).unwrap();
        assert_eq!(back, plan);
    }

    #[test]
    fn a_plan_without_preload_still_decodes() {
        let old =
            r#"{"fresh":"scrub","own_scratch":false,"caps":false,"nproc":false,"pidns":false}"#;
        let plan: HarnessPlan = serde_json::from_str(old).unwrap();
        assert!(plan.preload.is_empty());
    }

    #[test]
    fn preload_names_are_dotted_identifiers() {
        let ok =
            |v: &[&str]| validate_preload(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(ok(&[]), Ok(()));
        assert_eq!(ok(&["pandas", "matplotlib.pyplot", "_x.y_2"]), Ok(()));
        for bad in [
            "",
            "pandas ",
            "os;import sys",
            "a..b",
            ".a",
            "a.",
            "1abc",
            "a.2b",
            "pan-das",
            "é",
            "a/b",
            "__import__('os')",
        ] {
            assert_eq!(
                ok(&[bad]),
                Err(PreloadError::NotAModuleName { name: bad.into() }),
                "{bad:?}"
            );
        }
        assert_eq!(
            ok(&["numpy", "pandas", "numpy"]),
            Err(PreloadError::Duplicate {
                name: "numpy".into()
            })
        );
    }

    #[test]
    fn warmups_are_checked() {
        assert_eq!(validate_warmup(None), Ok(()));
        assert_eq!(
            validate_warmup(Some("import pandas as pd\npd.DataFrame()")),
            Ok(())
        );
        assert_eq!(validate_warmup(Some(" \n\t")), Err(WarmupError::Empty));
        assert_eq!(
            validate_warmup(Some("x = 1\0")),
            Err(WarmupError::Nul { at: 5 })
        );
        // Counted as the plan carries it: quotes and escapes included.
        let fits = "#".repeat(MAX_WARMUP_BYTES - 2);
        assert_eq!(validate_warmup(Some(&fits)), Ok(()));
        let newlines = format!("x{}", "\n".repeat(MAX_WARMUP_BYTES / 2 - 1));
        let err = validate_warmup(Some(&newlines)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "warmup: the code takes {} bytes in the worker's plan (JSON-escaped), more than the {MAX_WARMUP_BYTES} a warm-up may have",
                MAX_WARMUP_BYTES + 1
            )
        );
    }

    #[test]
    fn processes_are_denied_as_the_harness_decides() {
        let mut p = RunnerPolicy::default();
        assert!(denies_processes(&p));
        p.blocked_imports = vec!["socket".into()];
        assert!(!denies_processes(&p));
        p.blocked_imports = vec!["os".into()];
        assert!(denies_processes(&p));
        p.blocked_imports = vec!["subprocess".into()];
        assert!(denies_processes(&p));
        // A submodule blocked is not the module blocked.
        p.blocked_imports = vec!["os.path".into(), "subprocessx".into()];
        assert!(!denies_processes(&p));
        p.mode = spr_policy::Mode::Allow;
        p.allowed_imports = vec!["math".into()];
        assert!(denies_processes(&p));
        p.allowed_imports = vec!["os".into(), "posix".into(), "subprocess".into()];
        assert!(!denies_processes(&p));
        let iso = RunIsolation {
            process_filter: true,
            ..RunIsolation::default()
        };
        assert!(!iso.for_policy(&p).process_filter);
        assert!(iso.for_policy(&RunnerPolicy::default()).process_filter);
    }
}
