//! The engine's own directory on the host: created fresh (a random name, mode 0700, an
//! existing path is never adopted), locked while the engine lives, its files written
//! without following symlinks, and removed by the next engine once its owner is gone
//! (a host killed with SIGKILL cannot clean up after itself).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const PREFIX: &str = "spr-";
const LOCK: &str = ".lock";
/// O_NOFOLLOW (the same value on every Linux architecture Rust supports but MIPS,
/// SPARC, Alpha and PA-RISC; libc knows the exact one).
const O_NOFOLLOW: i32 = libc::O_NOFOLLOW;

/// The engine's private directory.
#[derive(Debug)]
pub(crate) struct ScratchRoot {
    path: PathBuf,
    /// Held (locked) for the engine's life: an unlocked root belongs to no live engine.
    _lock: File,
    next_worker: AtomicU64,
}

impl ScratchRoot {
    /// A new private directory under `parent`.
    pub(crate) fn create(parent: &Path) -> std::io::Result<ScratchRoot> {
        let mut attempts = 0;
        loop {
            let path = parent.join(format!(
                "{PREFIX}{}-{:016x}",
                std::process::id(),
                random_u64()?
            ));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let lock = new_file(&path.join(LOCK), 0o600)?;
                    lock.try_lock().map_err(std::io::Error::other)?;
                    return Ok(ScratchRoot {
                        path,
                        _lock: lock,
                        next_worker: AtomicU64::new(0),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempts < 8 => {
                    attempts += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Write a new file here (never through a symlink, never over an existing file).
    pub(crate) fn write_new(
        &self,
        name: &str,
        contents: &[u8],
        mode: u32,
    ) -> std::io::Result<PathBuf> {
        let path = self.path.join(name);
        let mut file = new_file(&path, mode)?;
        file.write_all(contents)?;
        Ok(path)
    }

    /// A fresh private directory for one worker.
    pub(crate) fn worker_dir(&self) -> std::io::Result<WorkerDir> {
        let n = self.next_worker.fetch_add(1, Ordering::Relaxed);
        let path = self.path.join(format!("w-{n}"));
        DirBuilder::new().mode(0o700).create(&path)?;
        Ok(WorkerDir(path))
    }
}

impl Drop for ScratchRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A worker's own directory, removed with the worker.
#[derive(Debug)]
pub(crate) struct WorkerDir(PathBuf);

impl WorkerDir {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkerDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn new_file(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(O_NOFOLLOW)
        .open(path)
}

fn random_u64() -> std::io::Result<u64> {
    let mut buf = [0u8; 8];
    File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(u64::from_ne_bytes(buf))
}

/// Remove what engines that are gone left under `parent`: their private directories
/// (ours only: owned by this user, mode 0700, not a symlink; of a pid that is gone, and
/// not locked). Returns how many were removed.
pub(crate) fn remove_stale(parent: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return 0;
    };
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || Some(meta.uid()) != me || meta.mode() & 0o777 != 0o700 {
            continue;
        }
        // A live pid keeps its root even unlocked: between making its directory and
        // locking it, an engine's root is unlocked for a moment. (A pid reused by
        // another process keeps a dead engine's root until that process is gone too.)
        let owner_alive =
            pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists();
        let abandoned = !owner_alive
            && match OpenOptions::new()
                .read(true)
                .custom_flags(O_NOFOLLOW)
                .open(path.join(LOCK))
            {
                Ok(lock) => lock.try_lock().is_ok(),
                Err(_) => true,
            };
        if abandoned && std::fs::remove_dir_all(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "spr-scratch-test-{}-{}",
            std::process::id(),
            random_u64().unwrap()
        ));
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn a_root_is_private_fresh_and_locked_and_gone_when_dropped() {
        let parent = parent();
        let root = ScratchRoot::create(&parent).unwrap();
        let meta = std::fs::symlink_metadata(root.path()).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700);
        // A live root is not stale.
        assert_eq!(remove_stale(&parent), 0);
        let path = root.path().to_path_buf();
        drop(root);
        assert!(!path.exists());
        std::fs::remove_dir_all(&parent).unwrap();
    }

    #[test]
    fn files_are_never_written_through_a_planted_symlink() {
        let parent = parent();
        let root = ScratchRoot::create(&parent).unwrap();
        let victim = parent.join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, root.path().join("spr_harness.py")).unwrap();
        assert!(root.write_new("spr_harness.py", b"evil", 0o644).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        drop(root);
        std::fs::remove_dir_all(&parent).unwrap();
    }

    #[test]
    fn an_abandoned_root_is_removed_and_foreign_or_odd_entries_are_left_alone() {
        let parent = parent();
        // Abandoned: a root of a pid that is gone (above any pid_max), its lock not held.
        let dead = parent.join("spr-999999999-00000000000000aa");
        DirBuilder::new().mode(0o700).create(&dead).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        std::fs::write(dead.join("junk"), "x").unwrap();
        // Not ours to touch: a symlink and a directory of another shape.
        let elsewhere = parent.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, parent.join("spr-2-00000000000000bb")).unwrap();
        let open = parent.join("spr-3-00000000000000cc");
        DirBuilder::new().mode(0o755).create(&open).unwrap();
        // Unlocked but of a live pid: an engine between making its root and locking it.
        let starting = parent.join("spr-1-00000000000000dd");
        DirBuilder::new().mode(0o700).create(&starting).unwrap();
        File::create(starting.join(LOCK)).unwrap();
        assert_eq!(remove_stale(&parent), 1);
        assert!(!dead.exists());
        assert!(starting.exists(), "a live owner's root is never swept");
        assert!(elsewhere.exists() && open.exists());
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
