//! The real [`Syscall`]s, made with raw libc calls in the forked child of the host
//! (which is multithreaded: nothing here allocates or takes a lock), and the glue that
//! runs the set-up of `steps.rs` in a `Command`'s `pre_exec`.
#![allow(unsafe_code)]

use super::steps::{self, ChildPlan, Role};
use super::syscall::{Event, Exit, Forked, Syscall};
use spr_protocol::seccomp::Instruction;
use std::ffi::{CStr, CString};
use std::os::fd::{FromRawFd, OwnedFd};

/// The system calls, for real.
pub(crate) struct Real;

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(rc: libc::c_long) -> Result<(), i32> {
    if rc < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// `/proc/<pid>/<name>` (or `/proc/<pid>/task/<pid>/<name>`) into `buf`, NUL-terminated,
/// without allocating.
fn proc_path<'a>(buf: &'a mut [u8; 96], pid: i32, task: bool, name: &[u8]) -> &'a CStr {
    let mut at = 0;
    let mut push = |bytes: &[u8], at: &mut usize| {
        for &b in bytes {
            if *at < buf.len() - 1 {
                buf[*at] = b;
                *at += 1;
            }
        }
    };
    let mut digits = [0u8; 12];
    let len = format_decimal(&mut digits, pid);
    push(b"/proc/", &mut at);
    push(&digits[..len], &mut at);
    if task {
        push(b"/task/", &mut at);
        push(&digits[..len], &mut at);
    }
    push(b"/", &mut at);
    push(name, &mut at);
    buf[at] = 0;
    CStr::from_bytes_until_nul(&buf[..=at]).unwrap_or(c"/nonexistent")
}

/// The decimal digits of a non-negative `n`; returns how many.
fn format_decimal(out: &mut [u8; 12], n: i32) -> usize {
    let mut n = n.unsigned_abs();
    let mut tmp = [0u8; 12];
    let mut len = 0;
    loop {
        tmp[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[i] = tmp[len - 1 - i];
    }
    len
}

fn wait_for(pid: i32, flags: i32) -> Result<Option<Exit>, i32> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child with a valid status pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc < 0 {
            match errno() {
                libc::EINTR => continue,
                e => return Err(e),
            }
        }
        if rc == 0 {
            return Ok(None);
        }
        return Ok(Some(if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }));
    }
}

fn close_range(first: u32, last: u32, flags: u32) -> bool {
    // SAFETY: close_range takes integers only.
    unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) == 0 }
}

fn nofile_limit() -> i32 {
    let mut limit = libc::rlimit {
        rlim_cur: 1024,
        rlim_max: 1024,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit.rlim_cur.min(1 << 20) as i32
}

impl Syscall for Real {
    fn getpid(&mut self) -> i32 {
        // SAFETY: no preconditions.
        unsafe { libc::getpid() }
    }

    fn getppid(&mut self) -> i32 {
        // SAFETY: no preconditions.
        unsafe { libc::getppid() }
    }

    fn fork(&mut self) -> Result<Forked, i32> {
        // SAFETY: this process is single-threaded (a fork child of the host); both sides
        // only make async-signal-safe system calls until exec or _exit.
        match unsafe { libc::fork() } {
            -1 => Err(errno()),
            0 => Ok(Forked::Child),
            pid => Ok(Forked::Parent(pid)),
        }
    }

    fn cloexec_from(&mut self, first: i32) -> Result<(), i32> {
        if close_range(first as u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) {
            return Ok(());
        }
        for fd in first..nofile_limit() {
            // SAFETY: setting a flag on a descriptor number; EBADF for closed ones.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        Ok(())
    }

    fn close_all_but(&mut self, keep: i32) {
        let keep = keep.max(0) as u32;
        let ranges = [(0, keep.wrapping_sub(1)), (keep + 1, u32::MAX)];
        for (first, last) in ranges {
            if keep == 0 && first == 0 {
                continue;
            }
            if !close_range(first, last, 0) {
                for fd in first..(last.min(nofile_limit() as u32)) {
                    // SAFETY: closing descriptor numbers this process owns.
                    unsafe { libc::close(fd as i32) };
                }
            }
        }
    }

    fn pipe(&mut self) -> Result<(i32, i32), i32> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(errno());
        }
        Ok((fds[0], fds[1]))
    }

    fn close(&mut self, fd: i32) {
        // SAFETY: closing a descriptor this process owns.
        unsafe { libc::close(fd) };
    }

    fn read_byte(&mut self, fd: i32) -> bool {
        let mut byte = [0u8; 1];
        loop {
            // SAFETY: reading one byte into a one-byte buffer.
            let n = unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) };
            if n == 1 {
                return true;
            }
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return false;
        }
    }

    fn write_byte(&mut self, fd: i32) {
        // SAFETY: writing one byte from a valid buffer.
        unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
    }

    fn write_file(&mut self, path: &CStr, data: &[u8]) -> Result<(), i32> {
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

    fn write_proc_file(&mut self, pid: i32, name: &CStr, data: &[u8]) -> Result<(), i32> {
        let mut buf = [0u8; 96];
        let path = proc_path(&mut buf, pid, false, name.to_bytes());
        self.write_file(path, data)
    }

    fn run_tool(&mut self, argv: &[CString], pid: i32) -> Result<Exit, i32> {
        let mut digits = [0u8; 13];
        let mut tmp = [0u8; 12];
        let len = format_decimal(&mut tmp, pid);
        digits[..len].copy_from_slice(&tmp[..len]);
        let mut ptrs: [*const libc::c_char; 8] = [std::ptr::null(); 8];
        for (i, arg) in argv.iter().take(7).enumerate() {
            ptrs[i] = if i == 1 {
                digits.as_ptr().cast()
            } else {
                arg.as_ptr()
            };
        }
        let env: [*const libc::c_char; 1] = [std::ptr::null()];
        match self.fork()? {
            Forked::Child => {
                // SAFETY: argv and envp are NULL-terminated arrays of NUL-terminated
                // strings that live on this stack; _exit if exec fails.
                unsafe {
                    libc::execve(ptrs[0], ptrs.as_ptr(), env.as_ptr());
                    libc::_exit(127)
                }
            }
            Forked::Parent(child) => self.wait(child),
        }
    }

    fn wait(&mut self, pid: i32) -> Result<Exit, i32> {
        wait_for(pid, 0).map(|e| e.unwrap_or(Exit::Code(-1)))
    }

    fn unshare(&mut self, flags: i32) -> Result<(), i32> {
        // SAFETY: unshare with flags only.
        check(unsafe { libc::unshare(flags) } as libc::c_long)
    }

    fn open_path_at(&mut self, path: &CStr, fd: i32) -> Result<(), i32> {
        // SAFETY: NUL-terminated path; the temporary descriptor is moved to `fd`
        // (close-on-exec) and closed.
        unsafe {
            let tmp = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            if tmp < 0 {
                return Err(errno());
            }
            if tmp != fd {
                libc::dup3(tmp, fd, libc::O_CLOEXEC);
                libc::close(tmp);
            }
        }
        Ok(())
    }

    fn become_root(&mut self, clear_groups: bool) -> Result<(), i32> {
        // SAFETY: plain system calls with integer arguments (a null list for setgroups).
        unsafe {
            if clear_groups && libc::setgroups(0, std::ptr::null()) != 0 {
                return Err(errno());
            }
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(errno());
            }
        }
        Ok(())
    }

    fn set_pdeathsig(&mut self) -> Result<(), i32> {
        // SAFETY: prctl with integer arguments only.
        check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } as _)
    }

    fn set_subreaper(&mut self) -> Result<(), i32> {
        // SAFETY: prctl with integer arguments only.
        check(unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } as _)
    }

    fn sethostname(&mut self, name: &CStr) -> Result<(), i32> {
        let bytes = name.to_bytes();
        // SAFETY: the name is a valid buffer of the given length.
        check(unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) } as _)
    }

    fn no_new_privs(&mut self) -> Result<(), i32> {
        // SAFETY: prctl with integer arguments only.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } as _)
    }

    fn lock_securebits(&mut self) -> Result<(), i32> {
        // NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE and their locks, KEEP_CAPS locked.
        let bits = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80;
        // SAFETY: prctl with integer arguments only.
        check(unsafe { libc::prctl(libc::PR_SET_SECUREBITS, bits, 0, 0, 0) } as _)
    }

    fn limit_capabilities(&mut self, keep: u64) -> Result<(), i32> {
        for cap in 0..64u64 {
            if keep & (1 << cap) != 0 {
                continue;
            }
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
                match errno() {
                    libc::EINVAL => break, // past the last capability
                    // No CAP_SETPCAP: an ordinary user holds nothing it could pass on
                    // (no_new_privs forbids gaining any through exec).
                    libc::EPERM => break,
                    e => return Err(e),
                }
            }
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
        let word = |shift: u32| (keep >> shift) as u32;
        let data = [
            Data {
                effective: word(0),
                permitted: word(0),
                inheritable: 0,
            },
            Data {
                effective: word(32),
                permitted: word(32),
                inheritable: 0,
            },
        ];
        // SAFETY: the header and the two data words outlive the call; capset reads them.
        check(unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) })
    }

    fn seccomp(&mut self, program: &[Instruction]) -> Result<(), i32> {
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            // `Instruction` is `#[repr(C)]` with the fields of `sock_filter`.
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points into `program`, which outlives the call; the kernel
        // copies the program.
        check(unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0u32,
                &prog as *const libc::sock_fprog,
            )
        })
    }

    fn kill(&mut self, pid: i32, signal: i32) {
        // SAFETY: sending a signal has no memory preconditions.
        unsafe { libc::kill(pid, signal) };
    }

    fn wait_event(&mut self, lifeline: i32, child: i32) -> Event {
        // SAFETY: pidfd_open takes integers only.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) } as i32;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: lifeline,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let (count, timeout) = if pidfd >= 0 { (2, -1) } else { (1, 100) };
            // SAFETY: `fds` holds `count` valid entries.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), count, timeout) };
            if n < 0 && errno() != libc::EINTR {
                // Cannot watch: treat as the host gone rather than leave a worker unowned.
                return Event::Lifeline;
            }
            // The host never writes to the lifeline: readable means its end closed.
            if fds[0].revents != 0 {
                return Event::Lifeline;
            }
            if pidfd < 0 || fds[1].revents != 0 {
                match wait_for(child, if pidfd < 0 { libc::WNOHANG } else { 0 }) {
                    Ok(Some(exit)) => return Event::Exited(exit),
                    Ok(None) => {}
                    Err(_) => return Event::Exited(Exit::Code(125)),
                }
            }
        }
    }

    fn kill_children(&mut self) -> u32 {
        let me = self.getpid();
        let mut path = [0u8; 96];
        let path = proc_path(&mut path, me, true, b"children");
        let mut buf = [0u8; 8192];
        // SAFETY: NUL-terminated path; reading into a stack buffer of the given size;
        // the descriptor is closed below.
        let n = unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                0
            } else {
                let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
                libc::close(fd);
                n.max(0) as usize
            }
        };
        let mut count = 0;
        let mut pid: i32 = 0;
        for &b in buf[..n].iter().chain(std::iter::once(&b' ')) {
            if b.is_ascii_digit() {
                pid = pid.saturating_mul(10).saturating_add((b - b'0') as i32);
            } else if pid > 0 {
                // SAFETY: signalling a child (and its process group) of this process.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                    libc::kill(pid, libc::SIGKILL);
                }
                count += 1;
                pid = 0;
            }
        }
        // Reap whatever has ended; give the rest a moment.
        while let Ok(Some(_)) = wait_for(-1, libc::WNOHANG) {}
        if count > 0 {
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000,
            };
            // SAFETY: a valid timespec; the remainder is not wanted.
            unsafe { libc::nanosleep(&pause, std::ptr::null_mut()) };
        }
        count
    }

    fn record(&mut self, fd: i32, kind: u32, a: u32, b: i32) {
        let mut buf = [0u8; 12];
        buf[..4].copy_from_slice(&kind.to_le_bytes());
        buf[4..8].copy_from_slice(&a.to_le_bytes());
        buf[8..].copy_from_slice(&b.to_le_bytes());
        // SAFETY: writing a 12-byte buffer; a short write only loses detail.
        unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    }

    fn exit(&mut self, code: i32) {
        // SAFETY: leaving without running the host's atexit handlers.
        unsafe { libc::_exit(code) }
    }

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
        check(unsafe {
            libc::mount(
                ptr(source),
                target.as_ptr(),
                ptr(fstype),
                flags as libc::c_ulong,
                ptr(data).cast(),
            )
        } as _)
    }

    fn mount_setattr_recursive(&mut self, target: &CStr, attrs: u64) -> Result<(), i32> {
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        let attr = MountAttr {
            attr_set: attrs,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: NUL-terminated path; `attr` outlives the call and its size is given.
        check(unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_RECURSIVE as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        })
    }

    fn mkdir(&mut self, path: &CStr) -> Result<(), i32> {
        // SAFETY: NUL-terminated path.
        check(unsafe { libc::mkdir(path.as_ptr(), 0o755) } as _)
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
        check(unsafe { libc::symlink(target.as_ptr(), path.as_ptr()) } as _)
    }

    fn pivot_root(&mut self, new_root: &CStr) -> Result<(), i32> {
        // pivot_root(".", ".") stacks the old root on the new one; detaching "." then
        // removes the old root from this namespace entirely.
        // SAFETY: NUL-terminated paths; plain system calls.
        unsafe {
            if libc::chdir(new_root.as_ptr()) != 0
                || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
                || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
                || libc::chdir(c"/".as_ptr()) != 0
            {
                return Err(errno());
            }
        }
        Ok(())
    }

    fn chdir(&mut self, path: &CStr) -> Result<(), i32> {
        // SAFETY: NUL-terminated path.
        check(unsafe { libc::chdir(path.as_ptr()) } as _)
    }
}

/// Run `plan` between fork and exec of `cmd`.
pub(crate) fn install(cmd: &mut tokio::process::Command, plan: ChildPlan) {
    // SAFETY: `steps::run` only makes system calls on data prepared before the fork (no
    // allocation, no locks), as required in the child of a multithreaded process.
    unsafe {
        cmd.pre_exec(move || {
            let mut sys = Real;
            match steps::run(&plan, &mut sys) {
                Ok(Role::Exec) => Ok(()),
                Ok(Role::Exit(code)) => {
                    sys.exit(code);
                    Ok(())
                }
                Err(f) => Err(std::io::Error::from_raw_os_error(f.errno)),
            }
        });
    }
}

/// A pipe whose ends are both close-on-exec.
pub(crate) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The flags of the mount holding `path` that an unprivileged remount must keep (the
/// kernel locks them on mounts it copies into a less privileged namespace).
pub(crate) fn locked_mount_flags(path: &std::path::Path) -> u64 {
    use super::plan::{
        MS_NOATIME, MS_NODEV, MS_NODIRATIME, MS_NOEXEC, MS_NOSUID, MS_RELATIME, MS_STRICTATIME,
    };
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
        (libc::ST_NOSUID, MS_NOSUID),
        (libc::ST_NODEV, MS_NODEV),
        (libc::ST_NOEXEC, MS_NOEXEC),
        (libc::ST_NOATIME, MS_NOATIME),
        (libc::ST_NODIRATIME, MS_NODIRATIME),
        (libc::ST_RELATIME, MS_RELATIME),
    ] {
        if f & st_flag != 0 {
            flags |= ms_flag;
        }
    }
    if f & (libc::ST_NOATIME | libc::ST_RELATIME) == 0 {
        flags |= MS_STRICTATIME;
    }
    flags
}

/// The descriptor limit of this process.
pub(crate) fn nofile() -> i32 {
    nofile_limit()
}

/// Run `plan` in a forked child of this process, as a worker's set-up would be, and
/// wait for it: the probe of what this machine really gives a worker. The child's B
/// ends right after its set-up instead of exec'ing; the caller reads the report pipe.
pub(crate) fn trial(plan: &ChildPlan) -> Result<Exit, i32> {
    let mut sys = Real;
    match sys.fork()? {
        Forked::Child => {
            let code = match steps::run(plan, &mut sys) {
                Ok(Role::Exec) => 0,
                Ok(Role::Exit(code)) => code,
                Err(_) => 1,
            };
            sys.exit(code);
            Ok(Exit::Code(code))
        }
        Forked::Parent(pid) => sys.wait(pid),
    }
}

/// Whether this kernel accepts seccomp filters, or why not.
pub(crate) fn seccomp_available() -> Result<(), String> {
    let action = libc::SECCOMP_RET_ERRNO;
    // SAFETY: GET_ACTION_AVAIL only reads the u32 we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0u32,
            &action as *const u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "seccomp filters are not available: {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spr-protocol carries its own syscall tables (to build filters for a remote
    /// daemon's architecture): they must agree with libc on this one.
    #[test]
    fn the_filter_tables_agree_with_libc_on_this_architecture() {
        use spr_protocol::seccomp::{Options, Profile, Program};
        let names: &[(&str, libc::c_long)] = &[
            ("mount", libc::SYS_mount),
            ("unshare", libc::SYS_unshare),
            ("ptrace", libc::SYS_ptrace),
            ("bpf", libc::SYS_bpf),
            ("keyctl", libc::SYS_keyctl),
            ("io_uring_setup", libc::SYS_io_uring_setup),
            ("open_tree", libc::SYS_open_tree),
            ("move_mount", libc::SYS_move_mount),
            ("socket", libc::SYS_socket),
            ("socketpair", libc::SYS_socketpair),
            ("clone", libc::SYS_clone),
            ("clone3", libc::SYS_clone3),
            ("shmget", libc::SYS_shmget),
            ("mq_open", libc::SYS_mq_open),
            ("perf_event_open", libc::SYS_perf_event_open),
            ("userfaultfd", libc::SYS_userfaultfd),
            ("inotify_init1", libc::SYS_inotify_init1),
            ("inotify_add_watch", libc::SYS_inotify_add_watch),
            ("fanotify_mark", libc::SYS_fanotify_mark),
        ];
        let p = Program::for_host(Options {
            profile: Profile::Run,
            network: false,
            private_ipc: false,
        })
        .unwrap();
        for (name, nr) in names {
            assert!(
                p.instructions
                    .iter()
                    .any(|i| i.k == *nr as u32 && i.code == 0x15),
                "{name} ({nr}) is not in the filter"
            );
        }
    }

    #[test]
    fn proc_paths_are_formatted_without_allocating() {
        let mut buf = [0u8; 96];
        assert_eq!(
            proc_path(&mut buf, 40213, false, b"uid_map"),
            c"/proc/40213/uid_map"
        );
        let mut buf = [0u8; 96];
        assert_eq!(
            proc_path(&mut buf, 7, true, b"children"),
            c"/proc/7/task/7/children"
        );
    }
}
