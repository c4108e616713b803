//! What runs in the forked child between `fork` and `exec` of the worker: the
//! single-threaded step that builds the sandbox. The host is a multithreaded tokio
//! process, which can neither create a user namespace nor safely allocate after
//! `fork`; everything here was prepared by the host and is only replayed, with raw
//! system calls.
//!
//! The choreography (with namespaces):
//!
//! ```text
//! host ── fork ──> A: join cgroups; fork M (mapper, stays in the host's namespaces)
//!                  A: unshare(user, mount, ipc, uts[, net]); M writes A's uid/gid maps
//!                  A: become uid 0 inside (a distinct unprivileged uid outside)
//!                  A: unshare(pid); fork ──> B: PID 1 of the new PID namespace
//!                  A: close every fd, wait for B, exit with its status (the host's
//!                     `Child` is A: killing A kills B via PDEATHSIG, and the death
//!                     of B, PID 1, kills every process of the namespace)
//!                  B: mounts, pivot_root, hostname, no_new_privs, Landlock,
//!                     drop capabilities, seccomp ── exec python (the worker)
//! ```
//!
//! Each step's failure is written as a fixed-size record to a report pipe the host
//! reads after `spawn` (an errno alone would not say which step failed).
#![allow(unsafe_code)]

use super::landlock;
use super::plan::{self, Step, Syscall};
use super::seccomp::Filter;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;

/// Bits of the "applied" record.
pub(crate) const APPLIED_NAMESPACES: u32 = 1 << 0;
pub(crate) const APPLIED_NETWORK_NS: u32 = 1 << 1;
pub(crate) const APPLIED_FILESYSTEM: u32 = 1 << 2;
pub(crate) const APPLIED_PROC: u32 = 1 << 3;
pub(crate) const APPLIED_LANDLOCK: u32 = 1 << 4;
pub(crate) const APPLIED_SECCOMP: u32 = 1 << 5;
pub(crate) const APPLIED_CGROUP: u32 = 1 << 6;
pub(crate) const APPLIED_CAPS_DROPPED: u32 = 1 << 7;

/// Record kinds on the report pipe.
pub(crate) const RECORD_FAILED: u32 = 1;
pub(crate) const RECORD_APPLIED: u32 = 2;

/// Steps that can fail outside the mount plan (mount steps are numbered from
/// `STEP_MOUNT_BASE` by their index in the plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Stage {
    Cgroup = 1,
    ForkMapper,
    UnshareUser,
    WriteMaps,
    SetIds,
    UnsharePid,
    ForkInit,
    Hostname,
    NoNewPrivs,
    Landlock,
    DropCaps,
    Seccomp,
}

pub(crate) const STEP_MOUNT_BASE: u32 = 1000;

impl Stage {
    pub(crate) fn from_u32(v: u32) -> Option<Stage> {
        use Stage::*;
        [
            Cgroup,
            ForkMapper,
            UnshareUser,
            WriteMaps,
            SetIds,
            UnsharePid,
            ForkInit,
            Hostname,
            NoNewPrivs,
            Landlock,
            DropCaps,
            Seccomp,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Stage::Cgroup => "join the worker's cgroups",
            Stage::ForkMapper => "fork the uid/gid mapper",
            Stage::UnshareUser => "unshare the user, mount, IPC, UTS and network namespaces",
            Stage::WriteMaps => "write the uid/gid maps of the user namespace",
            Stage::SetIds => "become root of the user namespace",
            Stage::UnsharePid => "unshare the PID namespace",
            Stage::ForkInit => "fork PID 1 of the namespace",
            Stage::Hostname => "set the hostname",
            Stage::NoNewPrivs => "set no_new_privs",
            Stage::Landlock => "apply the Landlock ruleset",
            Stage::DropCaps => "drop capabilities",
            Stage::Seccomp => "install the seccomp filter",
        }
    }
}

/// Everything the child does, prepared by the host.
#[derive(Debug)]
pub(crate) struct ChildPlan {
    /// Write end of the report pipe (close-on-exec).
    pub report_fd: RawFd,
    /// `cgroup.procs` files to join (writing "0" moves the writer).
    pub cgroup_procs: Vec<CString>,
    /// Bind sources opened (O_PATH) while still the host's root, each moved to a fixed
    /// descriptor number: the mount plan binds from `/proc/self/fd/N`, because inside
    /// the user namespace the host paths may not be traversable (`/root` is 0700 and
    /// its owner is not mapped).
    pub bind_sources: Vec<(CString, libc::c_int)>,
    pub namespaces: Option<NamespacePlan>,
    pub landlock: Option<landlock::Plan>,
    pub seccomp: Option<Filter>,
}

#[derive(Debug)]
pub(crate) struct NamespacePlan {
    pub unshare_net: bool,
    /// "0 <host uid> 1\n": the worker is root inside, an unused uid outside.
    pub uid_map: CString,
    pub gid_map: CString,
    pub mounts: Vec<Step>,
}

/// The `pre_exec` body. Returns only in the process that goes on to exec the worker.
pub(crate) fn run(plan: &ChildPlan) -> std::io::Result<()> {
    let mut applied = 0u32;
    if !plan.cgroup_procs.is_empty() {
        let mut joined = true;
        for procs in &plan.cgroup_procs {
            if write_file(procs, b"0").is_err() {
                joined = false;
            }
        }
        if joined {
            applied |= APPLIED_CGROUP;
        }
    }
    if let Some(ns) = &plan.namespaces {
        enter_namespaces(plan.report_fd, ns, &plan.bind_sources)?;
        applied |= APPLIED_NAMESPACES;
        if ns.unshare_net {
            applied |= APPLIED_NETWORK_NS;
        }
        let mut sys = Real;
        match plan::apply(&ns.mounts, &mut sys) {
            Ok(done) => {
                applied |= APPLIED_FILESYSTEM;
                if done.proc_mounted {
                    applied |= APPLIED_PROC;
                }
            }
            Err((index, errno)) => {
                return fail(plan.report_fd, STEP_MOUNT_BASE + index as u32, errno);
            }
        }
        // SAFETY: the name is a valid buffer of the given length.
        if unsafe { libc::sethostname(c"spr".as_ptr(), 3) } != 0 {
            return fail(plan.report_fd, Stage::Hostname as u32, errno());
        }
    }
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return fail(plan.report_fd, Stage::NoNewPrivs as u32, errno());
    }
    if let Some(ll) = &plan.landlock {
        if let Err(e) = landlock::restrict_self(ll) {
            return fail(plan.report_fd, Stage::Landlock as u32, e);
        }
        applied |= APPLIED_LANDLOCK;
    }
    if plan.namespaces.is_some() {
        drop_capabilities().or_else(|e| fail(plan.report_fd, Stage::DropCaps as u32, e))?;
        applied |= APPLIED_CAPS_DROPPED;
    }
    if let Some(filter) = &plan.seccomp {
        if let Err(e) = filter.install() {
            return fail(plan.report_fd, Stage::Seccomp as u32, e);
        }
        applied |= APPLIED_SECCOMP;
    }
    record(plan.report_fd, RECORD_APPLIED, applied, 0);
    Ok(())
}

fn enter_namespaces(
    report: RawFd,
    ns: &NamespacePlan,
    bind_sources: &[(CString, libc::c_int)],
) -> std::io::Result<()> {
    // The mapper must be forked before unshare: it stays in the host's user namespace,
    // where it has the privilege to map an arbitrary uid.
    let mut sync = [0 as libc::c_int; 2];
    // SAFETY: `sync` is a valid array of two ints.
    if unsafe { libc::pipe2(sync.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return fail(report, Stage::ForkMapper as u32, errno());
    }
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    // SAFETY: this process is single-threaded (a fork child); the mapper only makes
    // async-signal-safe system calls and leaves with _exit.
    let mapper = unsafe { libc::fork() };
    if mapper < 0 {
        return fail(report, Stage::ForkMapper as u32, errno());
    }
    if mapper == 0 {
        // SAFETY: our copies of the pipe ends.
        unsafe { libc::close(sync[1]) };
        let mut byte = [0u8; 1];
        // SAFETY: reading one byte into a one-byte buffer.
        let n = unsafe { libc::read(sync[0], byte.as_mut_ptr().cast(), 1) };
        let mut status = 1;
        if n == 1 && write_maps(me, ns).is_ok() {
            status = 0;
        }
        // SAFETY: leaving the mapper without running the host's atexit handlers.
        unsafe { libc::_exit(status) };
    }
    // SAFETY: our copy of the read end.
    unsafe { libc::close(sync[0]) };
    let mut flags =
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
    if ns.unshare_net {
        flags |= libc::CLONE_NEWNET;
    }
    // SAFETY: unshare with flags only.
    if unsafe { libc::unshare(flags) } != 0 {
        let e = errno();
        // SAFETY: closing the write end makes the mapper read EOF and exit.
        unsafe { libc::close(sync[1]) };
        wait_exit(mapper);
        return fail(report, Stage::UnshareUser as u32, e);
    }
    // Open the bind sources now: in the new mount namespace (a bind must come from
    // it) but still with the host's root as file owner (fsuid 0), so that paths under
    // a 0700 directory such as /root can be traversed; after setresuid they cannot.
    for (path, fd) in bind_sources {
        // SAFETY: NUL-terminated path; the temporary descriptor is moved to `fd`
        // (close-on-exec) and closed.
        unsafe {
            let tmp = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            if tmp >= 0 && tmp != *fd {
                libc::dup3(tmp, *fd, libc::O_CLOEXEC);
                libc::close(tmp);
            }
        }
    }
    // SAFETY: writing one byte from a valid buffer, then closing our pipe end.
    unsafe {
        libc::write(sync[1], b"x".as_ptr().cast(), 1);
        libc::close(sync[1]);
    }
    if wait_exit(mapper) != Some(0) {
        return fail(report, Stage::WriteMaps as u32, libc::EPERM);
    }
    // SAFETY: plain system calls with integer arguments (a null list for setgroups).
    let ids_ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setresgid(0, 0, 0) == 0
            && libc::setresuid(0, 0, 0) == 0
    };
    if !ids_ok {
        return fail(report, Stage::SetIds as u32, errno());
    }
    // SAFETY: unshare with a flag only.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
        return fail(report, Stage::UnsharePid as u32, errno());
    }
    // SAFETY: single-threaded fork; both sides only make system calls until exec/_exit.
    let init = unsafe { libc::fork() };
    if init < 0 {
        return fail(report, Stage::ForkInit as u32, errno());
    }
    if init > 0 {
        supervise(init);
    }
    // B, PID 1 of the new namespace. If A (the process the host holds) dies, so do we,
    // and with us every process of the namespace.
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    Ok(())
}

/// A's life after the fork: hold nothing, wait for B, mirror its end.
fn supervise(init: libc::pid_t) -> ! {
    // SAFETY: resetting a disposition and closing every descriptor of this process
    // (the host's pipes must see EOF when B exits, not when A does).
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
            for fd in 0..1024 {
                libc::close(fd);
            }
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child with a valid status pointer.
        let rc = unsafe { libc::waitpid(init, &mut status, 0) };
        if rc == init {
            break;
        }
        if rc < 0 && errno() != libc::EINTR {
            // SAFETY: leaving without the host's atexit handlers.
            unsafe { libc::_exit(125) };
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    // SAFETY: as above.
    unsafe { libc::_exit(code) }
}

fn write_maps(pid: libc::pid_t, ns: &NamespacePlan) -> Result<(), i32> {
    let mut buf = [0u8; 64];
    proc_path(&mut buf, pid, b"uid_map");
    write_file(cstr(&buf), ns.uid_map.as_bytes())?;
    proc_path(&mut buf, pid, b"gid_map");
    write_file(cstr(&buf), ns.gid_map.as_bytes())
}

/// "/proc/<pid>/<name>\0" into `buf` without allocating.
fn proc_path(buf: &mut [u8; 64], pid: libc::pid_t, name: &[u8]) {
    let mut digits = [0u8; 12];
    let mut n = pid.unsigned_abs();
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut at = 0;
    for &b in b"/proc/" {
        buf[at] = b;
        at += 1;
    }
    for i in (0..len).rev() {
        buf[at] = digits[i];
        at += 1;
    }
    buf[at] = b'/';
    at += 1;
    for &b in name {
        buf[at] = b;
        at += 1;
    }
    buf[at] = 0;
}

fn cstr(buf: &[u8]) -> &CStr {
    CStr::from_bytes_until_nul(buf).unwrap_or(c"/nonexistent")
}

fn write_file(path: &CStr, data: &[u8]) -> Result<(), i32> {
    // SAFETY: `path` is NUL-terminated; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: writing from a valid slice to our descriptor.
    let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let e = errno();
    // SAFETY: closing our descriptor once.
    unsafe { libc::close(fd) };
    if n == data.len() as isize {
        Ok(())
    } else {
        Err(e)
    }
}

fn wait_exit(pid: libc::pid_t) -> Option<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child with a valid status pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        }
        if rc < 0 && errno() != libc::EINTR {
            return None;
        }
    }
}

/// Empty the bounding, ambient and inheritable sets: the exec'd worker, root of its
/// user namespace, then holds no capability at all (not even inside the namespace).
fn drop_capabilities() -> Result<(), i32> {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments; EINVAL past the last capability.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: the header and the two data words outlive the call; capset reads them.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    if rc != 0 {
        return Err(errno());
    }
    Ok(())
}

fn record(fd: RawFd, kind: u32, a: u32, b: i32) {
    let mut buf = [0u8; 12];
    buf[..4].copy_from_slice(&kind.to_le_bytes());
    buf[4..8].copy_from_slice(&a.to_le_bytes());
    buf[8..].copy_from_slice(&b.to_le_bytes());
    // SAFETY: writing a 12-byte buffer; a short write only loses detail.
    unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
}

fn fail(fd: RawFd, step: u32, errno: i32) -> std::io::Result<()> {
    record(fd, RECORD_FAILED, step, errno);
    Err(std::io::Error::from_raw_os_error(errno))
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The real system calls of the mount plan.
struct Real;

impl Syscall for Real {
    fn mount(
        &mut self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: Option<&CStr>,
    ) -> Result<(), i32> {
        let ptr = |c: Option<&CStr>| c.map_or(std::ptr::null(), CStr::as_ptr);
        // SAFETY: every pointer is null or a NUL-terminated string alive for the call.
        let rc = unsafe {
            libc::mount(
                ptr(source),
                target.as_ptr(),
                ptr(fstype),
                flags as libc::c_ulong,
                ptr(data).cast(),
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    fn mkdir(&mut self, path: &CStr) -> Result<(), i32> {
        // SAFETY: NUL-terminated path.
        if unsafe { libc::mkdir(path.as_ptr(), 0o755) } == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    fn touch(&mut self, path: &CStr) -> Result<(), i32> {
        // SAFETY: NUL-terminated path; the descriptor is closed at once.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd < 0 {
            return Err(errno());
        }
        // SAFETY: closing the descriptor just opened.
        unsafe { libc::close(fd) };
        Ok(())
    }

    fn symlink(&mut self, target: &CStr, path: &CStr) -> Result<(), i32> {
        // SAFETY: NUL-terminated strings.
        if unsafe { libc::symlink(target.as_ptr(), path.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    fn pivot_root(&mut self, new_root: &CStr) -> Result<(), i32> {
        // pivot_root(".", ".") stacks the old root on the new one; detaching "." then
        // removes the old root from this namespace entirely.
        // SAFETY: NUL-terminated paths; plain system calls.
        unsafe {
            if libc::chdir(new_root.as_ptr()) != 0 {
                return Err(errno());
            }
            if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0 {
                return Err(errno());
            }
            if libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0 {
                return Err(errno());
            }
            if libc::chdir(c"/".as_ptr()) != 0 {
                return Err(errno());
            }
        }
        Ok(())
    }

    fn chdir(&mut self, path: &CStr) -> Result<(), i32> {
        // SAFETY: NUL-terminated path.
        if unsafe { libc::chdir(path.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }
}

/// The flags of the mount holding `path` that an unprivileged remount must keep
/// (the kernel locks them on mounts it copies into a less privileged namespace).
pub(crate) fn locked_mount_flags(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: `statvfs` is plain old data; all-zero is a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path and a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    let f = st.f_flag;
    let mut flags = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, plan::MS_NOSUID),
        (libc::ST_NODEV, plan::MS_NODEV),
        (libc::ST_NOEXEC, plan::MS_NOEXEC),
        (libc::ST_NOATIME, plan::MS_NOATIME),
        (libc::ST_NODIRATIME, plan::MS_NODIRATIME),
        (libc::ST_RELATIME, plan::MS_RELATIME),
    ] {
        if f & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    if f & (libc::ST_NOATIME | libc::ST_RELATIME) == 0 {
        flags |= plan::MS_STRICTATIME;
    }
    flags
}

/// Which namespaces this process may create, as a bitmask (bit 0 user, then mount,
/// pid, network, ipc, uts), probed in a forked child so nothing changes here.
pub(crate) fn probe_namespaces() -> Result<u32, i32> {
    // SAFETY: the child only calls unshare and _exit (async-signal-safe), as required
    // after forking a multithreaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(errno());
    }
    if pid == 0 {
        let mut bits = 0;
        // SAFETY: unshare with flags only, then _exit.
        unsafe {
            if libc::unshare(libc::CLONE_NEWUSER) == 0 {
                bits |= 1;
                for (i, flag) in [
                    libc::CLONE_NEWNS,
                    libc::CLONE_NEWPID,
                    libc::CLONE_NEWNET,
                    libc::CLONE_NEWIPC,
                    libc::CLONE_NEWUTS,
                ]
                .into_iter()
                .enumerate()
                {
                    if libc::unshare(flag) == 0 {
                        bits |= 2 << i;
                    }
                }
                libc::_exit(bits);
            }
            let e = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            libc::_exit(64 + (e & 63));
        }
    }
    match wait_exit(pid) {
        Some(code) if code >= 64 => Err(code - 64),
        Some(code) => Ok(code as u32),
        None => Err(libc::ECHILD),
    }
}

/// A pipe whose ends are both close-on-exec: the host keeps the read end.
pub(crate) fn report_pipe() -> std::io::Result<(std::fs::File, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Make `cmd` run `plan` between fork and exec.
pub(crate) fn install(cmd: &mut tokio::process::Command, plan: ChildPlan) {
    // SAFETY: `run` only makes system calls on data prepared before the fork (no
    // allocation, no locks), as required in the child of a multithreaded process.
    unsafe {
        cmd.pre_exec(move || run(&plan));
    }
}

/// The descriptor limit of this process.
pub(crate) fn get_nofile(limit: &mut libc::rlimit) {
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths_are_formatted_without_allocating() {
        let mut buf = [0u8; 64];
        proc_path(&mut buf, 40213, b"uid_map");
        assert_eq!(cstr(&buf), c"/proc/40213/uid_map");
        proc_path(&mut buf, 7, b"gid_map");
        assert_eq!(cstr(&buf), c"/proc/7/gid_map");
    }
}
