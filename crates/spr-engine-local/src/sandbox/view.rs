//! What a worker sees: the mount spec of a namespaced worker's read-only view, and the
//! Landlock rules of its runs (in sandbox paths, or host paths for a worker without
//! namespaces).

use super::landlock;
use super::plan::{self, Bind, MountSpec, Step};
use super::sys;
use super::Layout;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The sandbox path of the harness in a namespaced worker.
pub(crate) const HARNESS_IN_SANDBOX: &str = "/spr/spr_harness.py";
/// Where a namespaced worker's view is assembled before `pivot_root`: a directory every
/// host has and every user may traverse, covered by the root tmpfs in the worker's own
/// mount namespace only (the host's is untouched).
pub(crate) const ASSEMBLY_POINT: &str = "/tmp";
/// Device nodes every run may use.
pub(crate) const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];
/// Where each run gets its own POSIX shared memory tmpfs.
pub(crate) const SHM: &str = "/dev/shm";

/// The host paths a view is made of.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    /// Host directories of the Python installation(s).
    pub python_dirs: Vec<PathBuf>,
    pub venv: PathBuf,
    pub harness: PathBuf,
}

fn ro(p: &Path, is_file: bool) -> Bind {
    Bind {
        source: p.to_path_buf(),
        target: p.to_path_buf(),
        writable: false,
        locked_flags: sys::locked_mount_flags(p),
        is_file,
    }
}

/// The mount spec of a namespaced worker shaped by `layout`.
pub(crate) fn mount_spec(sources: &Sources, layout: &Layout, scratch_mb: u64) -> MountSpec {
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
    for dir in sources
        .python_dirs
        .iter()
        .chain(std::iter::once(&sources.venv))
    {
        if !binds
            .iter()
            .any(|b| !b.is_file && dir.starts_with(&b.target))
        {
            binds.push(ro(dir, false));
        }
    }
    binds.push(Bind {
        source: sources.harness.clone(),
        target: PathBuf::from(HARNESS_IN_SANDBOX),
        writable: false,
        locked_flags: sys::locked_mount_flags(&sources.harness),
        is_file: true,
    });
    for p in &layout.extra_read {
        binds.push(ro(p, p.is_file()));
    }
    for p in &layout.extra_write {
        binds.push(Bind {
            writable: true,
            ..ro(p, p.is_file())
        });
    }
    MountSpec {
        new_root: PathBuf::from(ASSEMBLY_POINT),
        scratch_mb,
        binds,
        symlinks,
        devices: DEVICES.to_vec(),
        mount_proc: true,
    }
}

/// Mount points under the scratch tmpfs that each run's own tmpfs would cover (a venv
/// or an extra path under /tmp): the harness clones them back on top. Only the
/// outermost of nested ones (a clone is recursive).
pub(crate) fn rebinds(spec: &MountSpec) -> Vec<String> {
    let scratch = Path::new(plan::SCRATCH);
    let mut under: Vec<&Path> = spec
        .binds
        .iter()
        .map(|b| b.target.as_path())
        .filter(|t| t.starts_with(scratch) && *t != scratch)
        .collect();
    under.sort();
    let mut out: Vec<&Path> = Vec::new();
    for t in under {
        if !out.iter().any(|o| t.starts_with(o)) {
            out.push(t);
        }
    }
    out.iter().map(|p| p.display().to_string()).collect()
}

/// Rewrite the bind steps to take their source from `/proc/self/fd/N`, and return the
/// (host path, N) pairs the child opens before it leaves the host's namespaces. The
/// numbers are taken from the top of the descriptor limit, far from the ones a process
/// has open.
pub(crate) fn bind_by_descriptor(steps: &mut [Step], avoid: &[i32]) -> Vec<(CString, i32)> {
    let count = steps
        .iter()
        .filter(|s| matches!(s, Step::Bind { .. }))
        .count() as i32;
    let top = sys::nofile().min(4096) - 1;
    let mut next = top - count - avoid.len() as i32;
    let mut sources = Vec::new();
    for step in steps.iter_mut() {
        if let Step::Bind { source, .. } = step {
            while avoid.contains(&next) {
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
pub(crate) fn python_dirs(python: &Path, venv: &Path) -> Vec<PathBuf> {
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

/// Landlock rules for the runs of a namespaced worker, in sandbox paths: each bind as
/// mounted, the device nodes and /proc. The per-run tmpfs roots (/tmp, /dev/shm) are
/// added by each run itself once they exist.
pub(crate) fn rules_in_sandbox(spec: &MountSpec) -> Vec<(String, u64)> {
    // Listing directories is harmless in a view that holds only what Python needs.
    let mut rules = vec![("/".to_string(), landlock::READ_DIR)];
    for b in &spec.binds {
        let rights = match (b.writable, b.is_file) {
            (true, _) => landlock::WRITE_TREE,
            (false, true) => landlock::READ_ONE_FILE,
            (false, false) => landlock::READ_TREE,
        };
        rules.push((b.target.display().to_string(), rights));
    }
    for dev in DEVICES {
        rules.push((format!("/dev/{dev}"), landlock::DEVICES));
    }
    rules.push(("/dev".into(), landlock::READ_DIR));
    rules.push(("/proc".into(), landlock::READ_FILE | landlock::READ_DIR));
    rules
}

/// Landlock rules for the runs of a worker without namespaces: host paths, and its own
/// scratch directory.
pub(crate) fn rules_on_host(
    sources: &Sources,
    layout: &Layout,
    worker_scratch: &Path,
) -> Vec<(String, u64)> {
    let mut rules = Vec::new();
    let text = |p: &Path| p.display().to_string();
    for dir in [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    ] {
        rules.push((dir.to_string(), landlock::READ_TREE));
    }
    for f in ["/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types"] {
        rules.push((f.to_string(), landlock::READ_ONE_FILE));
    }
    for dir in sources
        .python_dirs
        .iter()
        .chain(std::iter::once(&sources.venv))
    {
        rules.push((text(dir), landlock::READ_TREE));
    }
    rules.push((text(&sources.harness), landlock::READ_ONE_FILE));
    for dev in DEVICES {
        rules.push((format!("/dev/{dev}"), landlock::DEVICES));
    }
    // The run's own /proc entries (programs read /proc/self).
    rules.push((
        "/proc".to_string(),
        landlock::READ_FILE | landlock::READ_DIR,
    ));
    rules.push((text(worker_scratch), landlock::WRITE_TREE));
    for p in &layout.extra_read {
        rules.push((text(p), landlock::READ_TREE));
    }
    for p in &layout.extra_write {
        rules.push((text(p), landlock::WRITE_TREE));
    }
    rules
}

/// `path` as a C string (a path with a NUL byte cannot exist: it becomes one that does
/// not).
pub(crate) fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap_or_else(|_| c"/nonexistent".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(targets: &[&str]) -> MountSpec {
        MountSpec {
            new_root: PathBuf::from(ASSEMBLY_POINT),
            scratch_mb: 16,
            binds: targets
                .iter()
                .map(|t| Bind {
                    source: PathBuf::from(t),
                    target: PathBuf::from(t),
                    writable: false,
                    locked_flags: 0,
                    is_file: false,
                })
                .collect(),
            symlinks: vec![],
            devices: vec![],
            mount_proc: false,
        }
    }

    #[test]
    fn only_the_outermost_mounts_under_tmp_are_restored_for_each_run() {
        let spec = spec_with(&["/usr", "/tmp/venv", "/tmp/venv/lib/x", "/tmp/data", "/tmpx"]);
        assert_eq!(rebinds(&spec), vec!["/tmp/data", "/tmp/venv"]);
    }

    #[test]
    fn sandbox_rules_cover_binds_devices_and_proc_but_not_the_per_run_tmpfs() {
        let rules = rules_in_sandbox(&spec_with(&["/usr"]));
        assert!(rules.contains(&("/usr".into(), landlock::READ_TREE)));
        assert!(rules.contains(&("/dev/null".into(), landlock::DEVICES)));
        assert!(!rules.iter().any(|(p, _)| p == "/tmp"));
    }
}
