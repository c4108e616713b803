//! Per-worker control groups: memory and pids limits where a hierarchy is writable.
//!
//! cgroup v1 (separate `memory` and `pids` hierarchies) and v2 (one unified tree with
//! both controllers delegated) are supported. The worker joins its groups itself,
//! from the forked child, before it enters its user namespace; the host rewrites the
//! limits before each run (a run's policy sets them) and removes the groups when the
//! worker is gone.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const ROOT: &str = "/sys/fs/cgroup";

/// Where this machine lets spr create groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
    V2 {
        base: PathBuf,
    },
}

/// Find writable controllers; `Err` says why there are none.
pub(crate) fn detect() -> Result<Layout, String> {
    let root = Path::new(ROOT);
    let v1_memory = root.join("memory");
    let v1_pids = root.join("pids");
    if v1_memory.join("memory.limit_in_bytes").exists() || v1_pids.join("tasks").exists() {
        let memory = writable_parent(&v1_memory.join("spr"));
        let pids = writable_parent(&v1_pids.join("spr"));
        if memory.is_none() && pids.is_none() {
            return Err(format!(
                "cgroup v1 memory/pids hierarchies under {ROOT} are not writable by this user"
            ));
        }
        return Ok(Layout::V1 { memory, pids });
    }
    if root.join("cgroup.controllers").exists() {
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if !(controllers.contains("memory") && controllers.contains("pids")) {
            return Err("cgroup v2 without the memory and pids controllers".into());
        }
        let base = root.join("spr");
        remove_stale(&base);
        if std::fs::create_dir_all(&base).is_err() {
            return Err(format!(
                "{} is not writable (no delegated cgroup v2 subtree)",
                base.display()
            ));
        }
        if std::fs::write(base.join("cgroup.subtree_control"), "+memory +pids").is_err() {
            return Err("could not enable memory and pids for spr's cgroup v2 subtree".into());
        }
        return Ok(Layout::V2 { base });
    }
    Err(format!("no cgroup hierarchy is mounted at {ROOT}"))
}

fn writable_parent(dir: &Path) -> Option<PathBuf> {
    if std::fs::create_dir_all(dir).is_err() || !dir.is_dir() {
        return None;
    }
    // Existing is not enough (root may have made it): a group must be creatable here.
    let trial = dir.join(format!("probe-{}", std::process::id()));
    if std::fs::create_dir(&trial).is_err() {
        return None;
    }
    let _ = std::fs::remove_dir(&trial);
    remove_stale(dir);
    Some(dir.to_path_buf())
}

/// Remove the groups of hosts that are gone (`<pid>-<n>` whose pid is dead): a host
/// that exits right after killing its workers cannot wait for them to leave.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, _)) = name.split_once('-') else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// Limits asked of a worker's groups (memory bytes, pids) and what took effect.
type Applied = ((u64, u64), (Option<u64>, Option<u64>));

/// One worker's groups. Dropping it removes them (retrying while the worker's
/// processes finish dying).
#[derive(Debug)]
pub(crate) struct WorkerCgroup {
    version: u8,
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    /// What the last `set_limits` asked and what took effect: the next run under the
    /// same limits (the usual case) costs no write to the cgroup files.
    applied: std::sync::Mutex<Option<Applied>>,
}

impl WorkerCgroup {
    pub(crate) fn create(layout: &Layout) -> Option<WorkerCgroup> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let make = |base: &Path| {
            let dir = base.join(&name);
            std::fs::create_dir(&dir).ok().map(|()| dir)
        };
        let group = match layout {
            Layout::V1 { memory, pids } => WorkerCgroup {
                version: 1,
                memory: memory.as_deref().and_then(make),
                pids: pids.as_deref().and_then(make),
                applied: Default::default(),
            },
            Layout::V2 { base } => {
                let dir = make(base);
                WorkerCgroup {
                    version: 2,
                    memory: dir.clone(),
                    pids: dir,
                    applied: Default::default(),
                }
            }
        };
        (group.memory.is_some() || group.pids.is_some()).then_some(group)
    }

    pub(crate) fn version(&self) -> u8 {
        self.version
    }

    /// The `cgroup.procs` files the worker writes itself into.
    pub(crate) fn procs_files(&self) -> Vec<CString> {
        let mut dirs: Vec<&PathBuf> = self.memory.iter().chain(self.pids.iter()).collect();
        dirs.dedup();
        dirs.iter()
            .filter_map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect()
    }

    /// Set the limits for the next run; returns what took effect.
    pub(crate) fn set_limits(&self, memory_bytes: u64, pids: u64) -> (Option<u64>, Option<u64>) {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((asked, took)) = *applied {
            if asked == (memory_bytes, pids) {
                return took;
            }
        }
        let took = self.write_limits(memory_bytes, pids);
        // A write that failed is tried again by the next run.
        let complete =
            took.0.is_some() == self.memory.is_some() && took.1.is_some() == self.pids.is_some();
        *applied = complete.then_some(((memory_bytes, pids), took));
        took
    }

    fn write_limits(&self, memory_bytes: u64, pids: u64) -> (Option<u64>, Option<u64>) {
        let memory = self.memory.as_ref().and_then(|dir| {
            let file = if self.version == 1 {
                "memory.limit_in_bytes"
            } else {
                "memory.max"
            };
            let ok = std::fs::write(dir.join(file), memory_bytes.to_string()).is_ok();
            if self.version == 2 {
                // No swap: the limit is a memory limit, not a slower one.
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            }
            ok.then_some(memory_bytes)
        });
        let pids = self.pids.as_ref().and_then(|dir| {
            std::fs::write(dir.join("pids.max"), pids.to_string())
                .is_ok()
                .then_some(pids)
        });
        (memory, pids)
    }
}

impl Drop for WorkerCgroup {
    fn drop(&mut self) {
        let mut dirs: Vec<PathBuf> = self
            .memory
            .iter()
            .chain(self.pids.iter())
            .cloned()
            .collect();
        dirs.dedup();
        if dirs.is_empty() {
            return;
        }
        // The worker was just killed: its processes take a moment to leave the group.
        std::thread::spawn(move || {
            for _ in 0..100 {
                dirs.retain(|d| std::fs::remove_dir(d).is_err() && d.exists());
                if dirs.is_empty() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
    }
}
