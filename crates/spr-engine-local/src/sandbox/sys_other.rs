//! Outside Linux there is no sandbox: the same entry points as `sys.rs`, each saying
//! so, so that the workspace builds and the engine reports every protection missing.

use super::steps::ChildPlan;
use super::syscall::Exit;
use std::os::fd::OwnedFd;

pub(crate) fn install(_cmd: &mut tokio::process::Command, _plan: ChildPlan) {}

pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = std::io::pipe()?;
    Ok((r.into(), w.into()))
}

pub(crate) fn locked_mount_flags(_path: &std::path::Path) -> u64 {
    0
}

pub(crate) fn nofile() -> i32 {
    1024
}

pub(crate) fn trial(_plan: &ChildPlan) -> Result<Exit, i32> {
    Err(38) // ENOSYS
}

pub(crate) fn seccomp_available() -> Result<(), String> {
    Err(format!(
        "seccomp is Linux-only (this is {})",
        std::env::consts::OS
    ))
}
