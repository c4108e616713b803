//! The seccomp deny-list: a classic BPF program built on the host, installed in the
//! forked child. Listed system calls fail with EPERM (so Python raises a readable
//! `PermissionError`); everything else is allowed, because CPython's footprint moves
//! with every release and an allow-list would break programs, not attackers.
#![allow(unsafe_code)]

/// The program, ready for `seccomp(SECCOMP_SET_MODE_FILTER)`.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    program: Vec<libc::sock_filter>,
    pub denied: u32,
}

/// Namespace flags a `clone` may not carry after set-up.
const CLONE_NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32
    | 0x80; // CLONE_NEWTIME

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

/// The syscalls denied. Names are for documentation and the receipt.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn denied_syscalls() -> Vec<(&'static str, libc::c_long)> {
    let mut list = vec![
        ("mount", libc::SYS_mount),
        ("umount2", libc::SYS_umount2),
        ("pivot_root", libc::SYS_pivot_root),
        ("chroot", libc::SYS_chroot),
        ("unshare", libc::SYS_unshare),
        ("setns", libc::SYS_setns),
        ("ptrace", libc::SYS_ptrace),
        ("process_vm_readv", libc::SYS_process_vm_readv),
        ("process_vm_writev", libc::SYS_process_vm_writev),
        ("kcmp", libc::SYS_kcmp),
        ("pidfd_getfd", libc::SYS_pidfd_getfd),
        ("bpf", libc::SYS_bpf),
        ("perf_event_open", libc::SYS_perf_event_open),
        ("userfaultfd", libc::SYS_userfaultfd),
        ("keyctl", libc::SYS_keyctl),
        ("add_key", libc::SYS_add_key),
        ("request_key", libc::SYS_request_key),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("reboot", libc::SYS_reboot),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
        ("name_to_handle_at", libc::SYS_name_to_handle_at),
        ("fsopen", libc::SYS_fsopen),
        ("fsconfig", libc::SYS_fsconfig),
        ("fsmount", libc::SYS_fsmount),
        ("fspick", libc::SYS_fspick),
        ("move_mount", libc::SYS_move_mount),
        ("open_tree", libc::SYS_open_tree),
        ("mount_setattr", libc::SYS_mount_setattr),
        ("acct", libc::SYS_acct),
        ("settimeofday", libc::SYS_settimeofday),
        ("clock_settime", libc::SYS_clock_settime),
        ("clock_adjtime", libc::SYS_clock_adjtime),
        ("adjtimex", libc::SYS_adjtimex),
        ("syslog", libc::SYS_syslog),
        ("quotactl", libc::SYS_quotactl),
        ("vhangup", libc::SYS_vhangup),
        ("personality", libc::SYS_personality),
        ("fanotify_init", libc::SYS_fanotify_init),
        ("lookup_dcookie", libc::SYS_lookup_dcookie),
        ("nfsservctl", libc::SYS_nfsservctl),
    ];
    #[cfg(target_arch = "x86_64")]
    list.extend([
        ("iopl", libc::SYS_iopl),
        ("ioperm", libc::SYS_ioperm),
        ("uselib", libc::SYS_uselib),
        ("_sysctl", libc::SYS__sysctl),
        ("sysfs", libc::SYS_sysfs),
        ("ustat", libc::SYS_ustat),
        ("modify_ldt", libc::SYS_modify_ldt),
    ]);
    list
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) fn denied_syscalls() -> Vec<(&'static str, libc::c_long)> {
    Vec::new()
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0_LOW: u32 = 16;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

impl Filter {
    /// The deny-list program for this architecture, or why there is none.
    pub(crate) fn build() -> Result<Filter, String> {
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            return Err("spr's seccomp filter supports x86_64 and aarch64 only".into());
        }
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            let denied = denied_syscalls();
            let errno_eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
            let errno_enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
            let mut p = vec![
                stmt(LD_W_ABS, OFFSET_ARCH),
                jump(JEQ_K, AUDIT_ARCH, 1, 0),
                // Another ABI (32-bit entry points) could name syscalls by other numbers.
                stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
                stmt(LD_W_ABS, OFFSET_NR),
            ];
            #[cfg(target_arch = "x86_64")]
            {
                // x32 system calls (bit 30) would bypass the numbers below.
                p.push(jump(JGE_K, 0x4000_0000, 0, 1));
                p.push(stmt(RET_K, errno_eperm));
            }
            // clone3 passes its flags in memory BPF cannot read: make libc fall back
            // to clone, whose flags are checked.
            p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
            p.push(stmt(RET_K, errno_enosys));
            p.push(jump(JEQ_K, libc::SYS_clone as u32, 0, 3));
            p.push(stmt(LD_W_ABS, OFFSET_ARG0_LOW));
            p.push(jump(JSET_K, CLONE_NS_FLAGS, 0, 1));
            p.push(stmt(RET_K, errno_eperm));
            // Reload the number (the clone branch may have replaced the accumulator).
            p.push(stmt(LD_W_ABS, OFFSET_NR));
            let first = p.len();
            let deny_at = first + denied.len() + 1;
            for (i, (_, nr)) in denied.iter().enumerate() {
                let here = first + i;
                let jt = deny_at - here - 1;
                let jt = u8::try_from(jt).map_err(|_| "seccomp filter too long".to_string())?;
                p.push(jump(JEQ_K, *nr as u32, jt, 0));
            }
            p.push(stmt(RET_K, libc::SECCOMP_RET_ALLOW));
            p.push(stmt(RET_K, errno_eperm));
            Ok(Filter {
                program: p,
                denied: denied.len() as u32 + 1,
            })
        }
    }

    /// Install the filter on the calling thread. Requires `no_new_privs`. No allocation.
    pub(crate) fn install(&self) -> Result<(), i32> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points into `self.program`, which outlives the call; the
        // kernel copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0u32,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO));
        }
        Ok(())
    }
}

/// Whether this kernel accepts seccomp filters, or why not.
pub(crate) fn available() -> Result<(), String> {
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

    #[test]
    fn every_deny_jump_lands_on_the_eperm_return() {
        let f = Filter::build().unwrap();
        let last = f.program.len() - 1;
        assert_eq!(
            f.program[last].k,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32
        );
        for (i, ins) in f.program.iter().enumerate() {
            if ins.code == JEQ_K && ins.jt > 1 {
                assert_eq!(i + 1 + ins.jt as usize, last, "instruction {i}");
            }
        }
        let names: Vec<_> = denied_syscalls().iter().map(|(n, _)| *n).collect();
        for must in [
            "mount",
            "ptrace",
            "bpf",
            "unshare",
            "setns",
            "io_uring_setup",
            "userfaultfd",
        ] {
            assert!(names.contains(&must), "{must}");
        }
    }
}
