//! The seccomp profile the in-container test starts its containers with: Docker's default
//! profile as it applies to a container without extra capabilities, plus the few syscalls the
//! local engine's namespace sandbox makes, which that profile refuses to a container without
//! CAP_SYS_ADMIN.
//!
//! Narrower than `--security-opt seccomp=unconfined`: everything Docker's default refuses
//! (kernel modules, kexec, bpf, perf events, keyrings, clock setting, swap, reboot, the new
//! mount API, namespace flags on clone, ...) stays refused; only namespace creation and the mounts inside a
//! namespace the sandbox owns are added. The kernel still checks those against the user
//! namespace's own capabilities, so they grant nothing over the host.

use serde_json::{json, Value};

/// What the sandbox adds to Docker's default, each one needed (taking any one out makes
/// the namespace set-up fail), and why.
pub const SANDBOX_SYSCALLS: &[&str] = &[
    // New user, mount, IPC, UTS, network and PID namespaces: Docker allows unshare only
    // with CAP_SYS_ADMIN. (Namespaces are made with unshare and then fork, whose clone
    // carries no namespace flag, so Docker's own clone rule suffices; a sandbox passing
    // CLONE_NEW* to clone or clone3 would need those too.)
    "unshare",
    // The private root: a tmpfs, read-only binds, a fresh /proc, the root remounted
    // read-only (CAP_SYS_ADMIN only in Docker's default) ...
    "mount",
    // ... the old root detached after pivot_root (CAP_SYS_ADMIN only) ...
    "umount2",
    // ... and pivot_root itself, which Docker's default never allows.
    "pivot_root",
    // The UTS namespace's hostname `spr` (CAP_SYS_ADMIN only).
    "sethostname",
    // A directory with mounts below it (the container's own bind mounts, e.g. a binary
    // mounted into /usr/local/bin) is bound with them, and all of it made read-only.
    "mount_setattr",
    // Each run gets a fresh /tmp: mounts the view has under /tmp (a venv there) are
    // cloned and put back on top of it.
    "open_tree",
    "move_mount",
];

/// Docker's default allow-list (moby profiles/seccomp/default.json, the unconditional
/// block), i.e. what a container without extra capabilities may call.
#[rustfmt::skip] // one name per line would be 350 lines
const DOCKER_DEFAULT: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset",
    "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat",
    "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown",
    "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock",
    "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex", "futex_time64", "futex_waitv",
    "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
    "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid",
    "gettimeofday", "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init",
    "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents",
    "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup",
    "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown",
    "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek",
    "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect",
    "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall",
    "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "send", "sendfile",
    "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid",
    "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer", "setpgid",
    "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr",
    "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4",
    "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64",
    "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
    "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
    "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat",
    "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
    "waitpid", "write", "writev",
];

/// The profile as Docker's `--security-opt seccomp=<file>` takes it.
pub fn profile() -> Value {
    let mut syscalls = vec![
        json!({"names": DOCKER_DEFAULT, "action": "SCMP_ACT_ALLOW"}),
        json!({"names": SANDBOX_SYSCALLS, "action": "SCMP_ACT_ALLOW"}),
        // As in Docker's default: ptrace and process_vm_* on kernels >= 4.8 (where ptrace
        // can no longer bypass seccomp); the sandbox's own deny-list refuses them to runs.
        json!({"names": ["process_vm_readv", "process_vm_writev", "ptrace"],
               "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}}),
        // Docker's clone rule: no namespace flag (CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC |
        // NEWUSER | NEWPID | NEWNET) in the flags; fork and threads need nothing more.
        json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 0x7E02_0000u64, "op": "SCMP_CMP_MASKED_EQ"}]}),
        // clone3 keeps its flags in memory, out of seccomp's reach: Docker answers ENOSYS so
        // that glibc falls back to clone.
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}),
        // Every socket family but AF_VSOCK (40).
        json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}),
        json!({"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
               "includes": {"arches": ["amd64", "x32"]}}),
        json!({"names": ["modify_ldt"], "action": "SCMP_ACT_ALLOW",
               "includes": {"arches": ["amd64", "x32", "x86"]}}),
    ];
    // personality(2) only with the harmless personas Docker allows.
    for persona in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}]}));
    }
    json!({
        // Anything else fails with EPERM, as in Docker's default.
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": syscalls,
    })
}
