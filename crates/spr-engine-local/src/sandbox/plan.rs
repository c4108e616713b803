//! The mount plan of a sandboxed worker: a pure list of steps built on the host, and
//! the executor that replays it through a [`Syscall`] implementation.
//!
//! The plan is data so that it is built (and allocated) in the multithreaded host and
//! only replayed in the forked child, where allocating is not safe; and so that a
//! recording fake can check it without root or namespaces (youki's approach).

use super::syscall::Syscall;
use std::collections::BTreeSet;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Flags of `mount(2)`, named here so the plan reads without libc.
pub(crate) const MS_RDONLY: u64 = 1;
pub(crate) const MS_NOSUID: u64 = 2;
pub(crate) const MS_NODEV: u64 = 4;
pub(crate) const MS_NOEXEC: u64 = 8;
pub(crate) const MS_REMOUNT: u64 = 32;
pub(crate) const MS_NOATIME: u64 = 1024;
pub(crate) const MS_NODIRATIME: u64 = 2048;
pub(crate) const MS_BIND: u64 = 4096;
pub(crate) const MS_REC: u64 = 16384;
pub(crate) const MS_PRIVATE: u64 = 1 << 18;
pub(crate) const MS_RELATIME: u64 = 1 << 21;
pub(crate) const MS_STRICTATIME: u64 = 1 << 24;

/// One step of the plan. Paths are absolute host paths before `PivotRoot` and
/// sandbox paths after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Stop mount events from propagating back to the host (`/` becomes rprivate).
    MakeRootPrivate,
    Tmpfs {
        target: CString,
        flags: u64,
        data: CString,
    },
    Mkdir(CString),
    /// Create an empty file to bind a file onto.
    Touch(CString),
    Symlink {
        link_target: CString,
        path: CString,
    },
    /// Bind `source` on `target`, then remount it with `flags` (read-only ones get
    /// `MS_RDONLY`; flags the source mount is locked with are kept).
    Bind {
        source: CString,
        target: CString,
        flags: u64,
    },
    /// A fresh procfs for the worker's PID namespace; optional (the kernel refuses it
    /// when the host's /proc is partly masked), the receipt says whether it happened.
    Proc(CString),
    /// Make `new_root` the root and detach the old one.
    PivotRoot(CString),
    /// The root tmpfs only holds mount points: make it read-only.
    RemountRootReadOnly,
    /// Make a populated tmpfs read-only (keeping `flags`): nothing a run does to it
    /// (`chmod 0 /dev`) can outlive the run.
    RemountReadOnly {
        target: CString,
        flags: u64,
    },
    Chdir(CString),
}

/// What `apply` achieved beyond "no error".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub proc_mounted: bool,
}

/// Replay `steps`; on failure return the index of the failing step and its errno.
pub(crate) fn apply<S: Syscall>(steps: &[Step], sys: &mut S) -> Result<Applied, (usize, i32)> {
    let mut applied = Applied::default();
    for (i, step) in steps.iter().enumerate() {
        let result = match step {
            Step::MakeRootPrivate => sys.mount(None, c"/", None, MS_REC | MS_PRIVATE, None),
            Step::Tmpfs {
                target,
                flags,
                data,
            } => sys.mount(Some(c"tmpfs"), target, Some(c"tmpfs"), *flags, Some(data)),
            Step::Mkdir(path) => match sys.mkdir(path) {
                Err(libc::EEXIST) => Ok(()),
                other => other,
            },
            Step::Touch(path) => sys.touch(path),
            Step::Symlink { link_target, path } => sys.symlink(link_target, path),
            Step::Bind {
                source,
                target,
                flags,
            } => bind(sys, source, target, *flags),
            Step::Proc(target) => {
                let flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
                if sys
                    .mount(Some(c"proc"), target, Some(c"proc"), flags, None)
                    .is_ok()
                {
                    applied.proc_mounted = true;
                }
                Ok(())
            }
            Step::PivotRoot(new_root) => sys.pivot_root(new_root),
            Step::RemountRootReadOnly => sys.mount(
                None,
                c"/",
                None,
                MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
                None,
            ),
            Step::RemountReadOnly { target, flags } => {
                sys.mount(None, target, None, MS_REMOUNT | MS_RDONLY | flags, None)
            }
            Step::Chdir(path) => sys.chdir(path),
        };
        result.map_err(|errno| (i, errno))?;
    }
    Ok(applied)
}

/// Bind `source` on `target` with `flags`. A source with mounts below it that the
/// kernel locked (copied from a more privileged namespace, as in a container where a
/// file is mounted under /usr) cannot be bound alone: then it is bound with what is
/// below it, and all of it made read-only (and nosuid) as the flags say.
fn bind<S: Syscall>(sys: &mut S, source: &CStr, target: &CStr, flags: u64) -> Result<(), i32> {
    match sys.mount(Some(source), target, None, MS_BIND, None) {
        Ok(()) => sys.mount(None, target, None, MS_BIND | MS_REMOUNT | flags, None),
        Err(libc::EINVAL) => {
            sys.mount(Some(source), target, None, MS_BIND | MS_REC, None)?;
            sys.mount(None, target, None, MS_BIND | MS_REMOUNT | flags, None)?;
            let mut attrs = MOUNT_ATTR_NOSUID;
            if flags & MS_RDONLY != 0 {
                attrs |= MOUNT_ATTR_RDONLY;
            }
            sys.mount_setattr_recursive(target, attrs)
        }
        Err(e) => Err(e),
    }
}

/// `mount_setattr(2)` attributes.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 2;

/// A short name of a step, for errors ("bind /usr", "pivot_root").
pub(crate) fn describe(step: &Step) -> String {
    let s = |c: &CString| c.to_string_lossy().into_owned();
    match step {
        Step::MakeRootPrivate => "make / private".into(),
        Step::Tmpfs { target, .. } => format!("mount tmpfs on {}", s(target)),
        Step::Mkdir(p) => format!("mkdir {}", s(p)),
        Step::Touch(p) => format!("create {}", s(p)),
        Step::Symlink { path, .. } => format!("symlink {}", s(path)),
        Step::Bind { source, .. } => format!("bind {}", s(source)),
        Step::Proc(_) => "mount proc".into(),
        Step::PivotRoot(_) => "pivot_root".into(),
        Step::RemountRootReadOnly => "remount / read-only".into(),
        Step::RemountReadOnly { target, .. } => format!("remount {} read-only", s(target)),
        Step::Chdir(p) => format!("chdir {}", s(p)),
    }
}

/// A bind mount wanted in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bind {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the sandbox.
    pub target: PathBuf,
    pub writable: bool,
    /// Flags the source mount carries (nosuid, nodev, noexec, atime): an unprivileged
    /// remount must keep the ones the kernel locked.
    pub locked_flags: u64,
    pub is_file: bool,
}

/// Everything that shapes a worker's filesystem view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountSpec {
    /// An empty host directory the new root is mounted on (in the private namespace).
    pub new_root: PathBuf,
    /// Size of the scratch tmpfs mounted on `/tmp`.
    pub scratch_mb: u64,
    pub binds: Vec<Bind>,
    /// Symlinks at the top of the new root (`/bin -> usr/bin` on merged-/usr systems).
    pub symlinks: Vec<(PathBuf, PathBuf)>,
    /// Device nodes bound from the host's /dev.
    pub devices: Vec<&'static str>,
    pub mount_proc: bool,
}

/// The sandbox path of the scratch tmpfs.
pub(crate) const SCRATCH: &str = "/tmp";

fn cstring(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap_or_else(|_| c"/nonexistent".to_owned())
}

fn under(root: &Path, inner: &Path) -> PathBuf {
    root.join(inner.strip_prefix("/").unwrap_or(inner))
}

/// Build the steps for `spec`. Pure: the same spec gives the same steps.
pub(crate) fn build(spec: &MountSpec) -> Vec<Step> {
    let root = &spec.new_root;
    let mut steps = vec![
        Step::MakeRootPrivate,
        Step::Tmpfs {
            target: cstring(root),
            flags: MS_NOSUID | MS_NODEV,
            data: c"size=1m,mode=0755".to_owned(),
        },
    ];
    let mut made: BTreeSet<PathBuf> = BTreeSet::new();
    let mkdirs =
        |steps: &mut Vec<Step>, made: &mut BTreeSet<PathBuf>, dir: &Path, covered: &[PathBuf]| {
            // Parents first; a directory inside an earlier same-path bind exists already.
            let mut chain: Vec<&Path> = dir.ancestors().filter(|p| *p != Path::new("/")).collect();
            chain.reverse();
            for p in chain {
                if covered.iter().any(|c| p.starts_with(c)) {
                    return;
                }
                if made.insert(p.to_path_buf()) {
                    steps.push(Step::Mkdir(cstring(&under(root, p))));
                }
            }
        };
    // The scratch tmpfs first, so binds that live under /tmp on the host (a venv in
    // /tmp) are mounted on top of it rather than hidden by it.
    mkdirs(&mut steps, &mut made, Path::new(SCRATCH), &[]);
    steps.push(Step::Tmpfs {
        target: cstring(&under(root, Path::new(SCRATCH))),
        flags: MS_NOSUID | MS_NODEV | MS_NOEXEC,
        data: CString::new(format!("size={}m,mode=1777", spec.scratch_mb.max(1)))
            .expect("no NUL in digits"),
    });
    let mut binds = spec.binds.clone();
    binds.sort_by(|a, b| a.target.cmp(&b.target));
    let mut covered: Vec<PathBuf> = Vec::new();
    for bind in &binds {
        if bind.is_file {
            if let Some(parent) = bind.target.parent() {
                mkdirs(&mut steps, &mut made, parent, &covered);
            }
            if !covered.iter().any(|c| bind.target.starts_with(c)) {
                steps.push(Step::Touch(cstring(&under(root, &bind.target))));
            }
        } else {
            mkdirs(&mut steps, &mut made, &bind.target, &covered);
        }
        let mut flags = bind.locked_flags | MS_NOSUID;
        if !bind.writable {
            flags |= MS_RDONLY;
        }
        steps.push(Step::Bind {
            source: cstring(&bind.source),
            target: cstring(&under(root, &bind.target)),
            flags,
        });
        if !bind.is_file && bind.source == bind.target {
            covered.push(bind.target.clone());
        }
    }
    for (path, target) in &spec.symlinks {
        steps.push(Step::Symlink {
            link_target: cstring(target),
            path: cstring(&under(root, path)),
        });
    }
    if !spec.devices.is_empty() {
        let dev = under(root, Path::new("/dev"));
        steps.push(Step::Mkdir(cstring(&dev)));
        steps.push(Step::Tmpfs {
            target: cstring(&dev),
            flags: MS_NOSUID | MS_NOEXEC,
            data: c"size=64k,mode=0755".to_owned(),
        });
        for name in &spec.devices {
            let target = dev.join(name);
            steps.push(Step::Touch(cstring(&target)));
            // Read-only: writing a device node still works, changing it (chmod, utime:
            // the host's own node) does not.
            steps.push(Step::Bind {
                source: cstring(&Path::new("/dev").join(name)),
                target: cstring(&target),
                flags: MS_NOSUID | MS_NOEXEC | MS_RDONLY,
            });
        }
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            steps.push(Step::Symlink {
                link_target: CString::new(target).expect("literal"),
                path: cstring(&dev.join(name)),
            });
        }
        // Where each run mounts its own /dev/shm.
        steps.push(Step::Mkdir(cstring(&dev.join("shm"))));
        steps.push(Step::RemountReadOnly {
            target: cstring(&dev),
            flags: MS_NOSUID | MS_NOEXEC,
        });
    }
    if spec.mount_proc {
        let proc_dir = under(root, Path::new("/proc"));
        steps.push(Step::Mkdir(cstring(&proc_dir)));
        steps.push(Step::Proc(cstring(&proc_dir)));
    }
    steps.push(Step::PivotRoot(cstring(root)));
    steps.push(Step::RemountRootReadOnly);
    steps.push(Step::Chdir(cstring(Path::new(SCRATCH))));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::syscall::Recorder;

    /// The calls of a recorder, as text.
    struct Rendered {
        calls: Vec<String>,
    }

    fn spec() -> MountSpec {
        let bind = |p: &str, writable: bool, is_file: bool| Bind {
            source: PathBuf::from(p),
            target: PathBuf::from(p),
            writable,
            locked_flags: 0,
            is_file,
        };
        MountSpec {
            new_root: PathBuf::from("/srv/spr/root"),
            scratch_mb: 32,
            binds: vec![
                bind("/usr", false, false),
                bind("/opt/venv", false, false),
                bind("/usr/local/share/data", false, false),
                bind("/tmp/venv2", false, false),
                bind("/etc/ld.so.cache", false, true),
                bind("/data/out", true, false),
                Bind {
                    source: PathBuf::from("/var/spr/spr_harness.py"),
                    target: PathBuf::from("/spr/spr_harness.py"),
                    writable: false,
                    locked_flags: MS_NODEV,
                    is_file: true,
                },
            ],
            symlinks: vec![(PathBuf::from("/bin"), PathBuf::from("usr/bin"))],
            devices: vec!["null", "urandom"],
            mount_proc: true,
        }
    }

    fn run(spec: &MountSpec) -> Rendered {
        let mut rec = Recorder::default();
        apply(&build(spec), &mut rec).expect("the fake does not fail");
        Rendered {
            calls: rec.rendered(),
        }
    }

    fn position(rec: &Rendered, needle: &str) -> usize {
        rec.calls
            .iter()
            .position(|c| c.contains(needle))
            .unwrap_or_else(|| panic!("no call with {needle:?} in {:#?}", rec.calls))
    }

    #[test]
    fn everything_happens_inside_a_private_tmpfs_root_before_pivot() {
        let rec = run(&spec());
        assert_eq!(rec.calls[0], "mount - / - 0x44000 -");
        assert!(rec.calls[1].starts_with("mount tmpfs /srv/spr/root tmpfs"));
        let pivot = position(&rec, "pivot_root /srv/spr/root");
        for call in &rec.calls[1..pivot] {
            assert!(
                call.contains("/srv/spr/root"),
                "{call} escapes the new root"
            );
        }
        assert!(rec.calls[pivot + 1].starts_with("mount - / - 0x")); // read-only remount
        assert_eq!(rec.calls.last().unwrap(), "chdir /tmp");
    }

    #[test]
    fn read_only_binds_are_remounted_read_only_and_writable_ones_are_not() {
        let rec = run(&spec());
        let usr = position(&rec, "mount /usr /srv/spr/root/usr - 0x1000 -");
        let remount = &rec.calls[usr + 1];
        let flags = u64::from_str_radix(
            remount.split(' ').nth(4).unwrap().trim_start_matches("0x"),
            16,
        )
        .unwrap();
        assert_eq!(
            flags & (MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID),
            MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID
        );
        let out = position(&rec, "mount /data/out /srv/spr/root/data/out - 0x1000 -");
        let flags = u64::from_str_radix(
            rec.calls[out + 1]
                .split(' ')
                .nth(4)
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap();
        assert_eq!(flags & MS_RDONLY, 0);
        // Locked source flags are kept on remount.
        let h = position(&rec, "mount /var/spr/spr_harness.py");
        let flags = u64::from_str_radix(
            rec.calls[h + 1]
                .split(' ')
                .nth(4)
                .unwrap()
                .trim_start_matches("0x"),
            16,
        )
        .unwrap();
        assert_eq!(flags & MS_NODEV, MS_NODEV);
    }

    #[test]
    fn scratch_is_a_sized_noexec_tmpfs_mounted_before_binds_under_it() {
        let rec = run(&spec());
        let tmp = position(&rec, "mount tmpfs /srv/spr/root/tmp tmpfs");
        assert!(rec.calls[tmp].ends_with("size=32m,mode=1777"));
        let flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
        assert!(rec.calls[tmp].contains(&format!("{flags:#x}")));
        assert!(position(&rec, "mount /tmp/venv2") > tmp);
    }

    #[test]
    fn directories_inside_a_same_path_bind_are_not_created_again() {
        let rec = run(&spec());
        assert!(rec.calls.iter().any(|c| c == "mkdir /srv/spr/root/usr"));
        assert!(!rec
            .calls
            .iter()
            .any(|c| c.starts_with("mkdir /srv/spr/root/usr/local")));
        assert!(rec
            .calls
            .iter()
            .any(|c| c == "touch /srv/spr/root/etc/ld.so.cache"));
        assert!(rec.calls.iter().any(|c| c == "mkdir /srv/spr/root/spr"));
    }

    #[test]
    fn nothing_of_the_host_is_visible_unless_listed() {
        let rec = run(&spec());
        for secret in ["/etc/shadow", "/root", "/home", "/proc/1", "/var/run"] {
            assert!(
                !rec.calls
                    .iter()
                    .any(|c| c.starts_with(&format!("mount {secret}"))),
                "{secret} is mounted"
            );
        }
    }

    #[test]
    fn devices_proc_and_symlinks_are_set_up() {
        let rec = run(&spec());
        position(&rec, "mount /dev/null /srv/spr/root/dev/null");
        position(&rec, "symlink /srv/spr/root/dev/fd -> /proc/self/fd");
        position(&rec, "symlink /srv/spr/root/bin -> usr/bin");
        position(&rec, "mount proc /srv/spr/root/proc proc");
    }

    #[test]
    fn a_failing_step_is_reported_by_index_and_errno_and_proc_is_optional() {
        let mut rec = Recorder {
            fail_on: Some(("pivot_root".into(), libc::EPERM)),
            ..Recorder::default()
        };
        let steps = build(&spec());
        let (index, errno) = apply(&steps, &mut rec).unwrap_err();
        assert_eq!(errno, libc::EPERM);
        assert_eq!(describe(&steps[index]), "pivot_root");
        let mut rec = Recorder {
            fail_on: Some(("mount proc".into(), libc::EPERM)),
            ..Recorder::default()
        };
        let applied = apply(&steps, &mut rec).unwrap();
        assert!(!applied.proc_mounted);
    }
}
