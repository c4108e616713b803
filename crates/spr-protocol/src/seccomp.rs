//! The seccomp deny-list as a classic BPF program, built as data for any supported
//! architecture: the local engine installs it between fork and exec, and both engines
//! hand it to the harness, which installs it in every run's process.
//!
//! A deny-list rather than an allow-list: CPython's footprint moves with every release
//! and an allow-list would break programs, not attackers. Listed system calls fail with
//! EPERM (Python raises a readable `PermissionError`); socket families a run does not
//! need fail with EAFNOSUPPORT; `clone3` fails with ENOSYS so that libc falls back to
//! `clone`, whose flags a filter can read.
//!
//! Built by hand rather than with a filter compiler: the program needs per-syscall
//! actions (ENOSYS, EAFNOSUPPORT, EPERM) and an x32 guard in one program, and it must be
//! buildable for the architecture of a remote Docker daemon, not only the host's.

use serde::{Deserialize, Serialize};

/// An architecture the filter knows the system call numbers of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this program was built for, if the filter supports it.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    /// From Docker's and OCI's names (`amd64`, `arm64`) or the kernel's.
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "amd64" | "x86_64" => Some(Arch::X86_64),
            "arm64" | "aarch64" | "arm64/v8" => Some(Arch::Aarch64),
            _ => None,
        }
    }

    fn audit_arch(self) -> u32 {
        match self {
            Arch::X86_64 => 0xC000_003E,
            Arch::Aarch64 => 0xC000_00B7,
        }
    }

    fn number(self, name: &str) -> Option<u32> {
        SYSCALLS
            .iter()
            .find(|(n, _, _)| *n == name)
            .and_then(|(_, x86, arm)| match self {
                Arch::X86_64 => *x86,
                Arch::Aarch64 => *arm,
            })
    }
}

/// Which process the filter is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A run's process: everything on the list is denied.
    Run,
    /// A sandboxed worker's monitor and zygotes, which must still give each zygote a PID
    /// namespace and each run fresh mount and IPC namespaces:
    /// `unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWPID)`, `mount`, `umount2`,
    /// `open_tree` and `move_mount` are allowed; every run then installs the `Run`
    /// filter on top.
    Zygote,
}

/// What the filter allows beyond the fixed list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub profile: Profile,
    /// The policy allows network access: AF_INET, AF_INET6 and AF_NETLINK sockets may be
    /// created (AF_UNIX always may; every other family never).
    pub network: bool,
    /// Each run has a private IPC namespace: SysV IPC and POSIX message queues are
    /// allowed (they die with the run). Without one they would outlive it, so they are
    /// denied.
    pub private_ipc: bool,
}

/// One BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Instruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A complete filter program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub instructions: Vec<Instruction>,
    /// How many system calls (and socket families, counted once) the program denies:
    /// the number receipts show.
    pub denied: u32,
}

/// Why a program cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeccompError {
    #[error("spr's seccomp filter supports x86_64 and aarch64 only (this is {0})")]
    UnsupportedArch(String),
    #[error("the seccomp program is too long for a BPF jump ({0} instructions)")]
    TooLong(usize),
}

/// System calls denied to every run, by name (documentation and tests).
pub const DENIED: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "open_by_handle_at",
    "name_to_handle_at",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "syslog",
    "quotactl",
    "vhangup",
    "personality",
    "fanotify_init",
    "fanotify_mark",
    // The venv, the stdlib and the rest of the read-only view are the same inodes for every
    // run: a watch on them would tell one run (or session) which files the others open,
    // which modules they import.
    "inotify_init",
    "inotify_init1",
    "inotify_add_watch",
    "lookup_dcookie",
    "nfsservctl",
    "iopl",
    "ioperm",
    "uselib",
    "_sysctl",
    "sysfs",
    "ustat",
    "modify_ldt",
    "process_madvise",
    "process_mrelease",
    // A memfd's pages are memory no rlimit of the run counts (RLIMIT_FSIZE bounds one
    // file, RLIMIT_NOFILE how many: 16 GiB by default) and no tmpfs size bounds; a run
    // that needs shared memory has /dev/shm, size-limited. It also serves to exec code
    // that never touched a filesystem.
    "memfd_create",
];

/// Calls that act on a process named by its first argument: a run may aim them only at
/// itself (0), never at the harness's zygote or monitor (same uid, so the kernel would
/// let it lower their limits, priority or CPU set, and slow or break the runs after).
const SELF_ONLY: &[&str] = &[
    "prlimit64",
    "sched_setparam",
    "sched_setscheduler",
    "sched_setaffinity",
    "sched_setattr",
    "migrate_pages",
    "move_pages",
];

/// Denied only without a private IPC namespace per run.
const IPC: &[&str] = &["shmget", "msgget", "semget", "mq_open"];

/// What the zygote keeps to give each run fresh namespaces.
const ZYGOTE_ALLOWED: &[&str] = &["mount", "umount2", "open_tree", "move_mount", "unshare"];

/// (name, x86_64 number, aarch64 number), from the kernels' syscall tables.
const SYSCALLS: &[(&str, Option<u32>, Option<u32>)] = &[
    ("mount", Some(165), Some(40)),
    ("umount2", Some(166), Some(39)),
    ("pivot_root", Some(155), Some(41)),
    ("chroot", Some(161), Some(51)),
    ("unshare", Some(272), Some(97)),
    ("setns", Some(308), Some(268)),
    ("ptrace", Some(101), Some(117)),
    ("process_vm_readv", Some(310), Some(270)),
    ("process_vm_writev", Some(311), Some(271)),
    ("kcmp", Some(312), Some(272)),
    ("pidfd_getfd", Some(438), Some(438)),
    ("bpf", Some(321), Some(280)),
    ("perf_event_open", Some(298), Some(241)),
    ("userfaultfd", Some(323), Some(282)),
    ("keyctl", Some(250), Some(219)),
    ("add_key", Some(248), Some(217)),
    ("request_key", Some(249), Some(218)),
    ("io_uring_setup", Some(425), Some(425)),
    ("io_uring_enter", Some(426), Some(426)),
    ("io_uring_register", Some(427), Some(427)),
    ("kexec_load", Some(246), Some(104)),
    ("kexec_file_load", Some(320), Some(294)),
    ("init_module", Some(175), Some(105)),
    ("finit_module", Some(313), Some(273)),
    ("delete_module", Some(176), Some(106)),
    ("swapon", Some(167), Some(224)),
    ("swapoff", Some(168), Some(225)),
    ("reboot", Some(169), Some(142)),
    ("open_by_handle_at", Some(304), Some(265)),
    ("name_to_handle_at", Some(303), Some(264)),
    ("fsopen", Some(430), Some(430)),
    ("fsconfig", Some(431), Some(431)),
    ("fsmount", Some(432), Some(432)),
    ("fspick", Some(433), Some(433)),
    ("move_mount", Some(429), Some(429)),
    ("open_tree", Some(428), Some(428)),
    ("mount_setattr", Some(442), Some(442)),
    ("acct", Some(163), Some(89)),
    ("settimeofday", Some(164), Some(170)),
    ("clock_settime", Some(227), Some(112)),
    ("clock_adjtime", Some(305), Some(266)),
    ("adjtimex", Some(159), Some(171)),
    ("syslog", Some(103), Some(116)),
    ("quotactl", Some(179), Some(60)),
    ("vhangup", Some(153), Some(58)),
    ("personality", Some(135), Some(92)),
    ("fanotify_init", Some(300), Some(262)),
    ("fanotify_mark", Some(301), Some(263)),
    ("inotify_init", Some(253), None),
    ("inotify_init1", Some(294), Some(26)),
    ("inotify_add_watch", Some(254), Some(27)),
    ("lookup_dcookie", Some(212), Some(18)),
    ("nfsservctl", Some(180), Some(42)),
    ("iopl", Some(172), None),
    ("ioperm", Some(173), None),
    ("uselib", Some(134), None),
    ("_sysctl", Some(156), None),
    ("sysfs", Some(139), None),
    ("ustat", Some(136), None),
    ("modify_ldt", Some(154), None),
    ("process_madvise", Some(440), Some(440)),
    ("process_mrelease", Some(448), Some(448)),
    ("memfd_create", Some(319), Some(279)),
    ("prlimit64", Some(302), Some(261)),
    ("setpriority", Some(141), Some(140)),
    ("sched_setparam", Some(142), Some(118)),
    ("sched_setscheduler", Some(144), Some(119)),
    ("sched_setaffinity", Some(203), Some(122)),
    ("sched_setattr", Some(314), Some(274)),
    ("ioprio_set", Some(251), Some(30)),
    ("migrate_pages", Some(256), Some(238)),
    ("move_pages", Some(279), Some(239)),
    ("execve", Some(59), Some(221)),
    ("execveat", Some(322), Some(281)),
    ("fork", Some(57), None),
    ("vfork", Some(58), None),
    ("clone", Some(56), Some(220)),
    ("clone3", Some(435), Some(435)),
    ("socket", Some(41), Some(198)),
    ("socketpair", Some(53), Some(199)),
    ("shmget", Some(29), Some(194)),
    ("msgget", Some(68), Some(186)),
    ("semget", Some(64), Some(190)),
    ("mq_open", Some(240), Some(180)),
];

/// Namespace flags a `clone` may never carry after set-up (CLONE_NEWTIME is 0x80).
const CLONE_NS_FLAGS: u32 = 0x0002_0000 // NEWNS
    | 0x0200_0000 // NEWCGROUP
    | 0x0400_0000 // NEWUTS
    | 0x0800_0000 // NEWIPC
    | 0x1000_0000 // NEWUSER
    | 0x2000_0000 // NEWPID
    | 0x4000_0000 // NEWNET
    | 0x80; // NEWTIME
/// What the zygote may unshare: mount and IPC namespaces for each run, and a PID
/// namespace for each zygote (made by the monitor at start-up).
const ZYGOTE_UNSHARE: u32 = 0x0002_0000 | 0x0800_0000 | 0x2000_0000;

/// `clone` makes a thread (sharing the caller's memory, signal handlers and thread
/// group), not a process.
const CLONE_THREAD: u32 = 0x0001_0000;

/// What the process filter refuses outright (fork and vfork exist on x86_64 only; every
/// architecture has clone, which the filter lets through for threads alone).
pub const PROCESS_CALLS: &[&str] = &["execve", "execveat", "fork", "vfork"];

pub const AF_UNIX: u32 = 1;
pub const AF_INET: u32 = 2;
pub const AF_INET6: u32 = 10;
pub const AF_NETLINK: u32 = 16;

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
const EAFNOSUPPORT: u32 = 97;

pub(crate) const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub(crate) const RET_ERRNO: u32 = 0x0005_0000;
pub(crate) const RET_ALLOW: u32 = 0x7fff_0000;

pub(crate) const LD_W_ABS: u16 = 0x20;
pub(crate) const JEQ_K: u16 = 0x15;
pub(crate) const JGE_K: u16 = 0x35;
pub(crate) const JSET_K: u16 = 0x45;
pub(crate) const RET_K: u16 = 0x06;
pub(crate) const OFFSET_NR: u32 = 0;
pub(crate) const OFFSET_ARCH: u32 = 4;
/// The low 32 bits of the first argument (little-endian: both architectures are).
pub(crate) const OFFSET_ARG0_LOW: u32 = 16;
/// The low 32 bits of the second argument.
pub(crate) const OFFSET_ARG1_LOW: u32 = 24;

fn stmt(code: u16, k: u32) -> Instruction {
    Instruction {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> Instruction {
    Instruction { code, jt, jf, k }
}

fn errno(e: u32) -> Instruction {
    stmt(RET_K, RET_ERRNO | e)
}

/// `if nr == number { block } else { skip it }`: every path through `block` returns.
fn guarded(
    p: &mut Vec<Instruction>,
    number: u32,
    block: Vec<Instruction>,
) -> Result<(), SeccompError> {
    let skip = u8::try_from(block.len()).map_err(|_| SeccompError::TooLong(block.len()))?;
    p.push(jump(JEQ_K, number, 0, skip));
    p.extend(block);
    Ok(())
}

/// Deny when the first argument has any of `flags`; allow otherwise.
fn deny_flags(flags: u32) -> Vec<Instruction> {
    vec![
        stmt(LD_W_ABS, OFFSET_ARG0_LOW),
        jump(JSET_K, flags, 0, 1),
        errno(EPERM),
        stmt(RET_K, RET_ALLOW),
    ]
}

/// Allow only when the first argument (an `int`: the kernel reads its low 32 bits) is 0.
fn first_arg_zero() -> Vec<Instruction> {
    vec![
        stmt(LD_W_ABS, OFFSET_ARG0_LOW),
        jump(JEQ_K, 0, 1, 0),
        errno(EPERM),
        stmt(RET_K, RET_ALLOW),
    ]
}

/// Allow only when the first argument is below `which_below` (the kinds of target that
/// a 0 means "myself" for) and the second (who) is 0: `setpriority`, `ioprio_set`.
fn own_priority(which_below: u32) -> Vec<Instruction> {
    vec![
        stmt(LD_W_ABS, OFFSET_ARG0_LOW),
        jump(JGE_K, which_below, 2, 0),
        stmt(LD_W_ABS, OFFSET_ARG1_LOW),
        jump(JEQ_K, 0, 1, 0),
        errno(EPERM),
        stmt(RET_K, RET_ALLOW),
    ]
}

/// Allow the listed socket families; refuse the others with EAFNOSUPPORT.
fn families(allowed: &[u32]) -> Vec<Instruction> {
    let mut block = vec![stmt(LD_W_ABS, OFFSET_ARG0_LOW)];
    let n = allowed.len();
    for (i, family) in allowed.iter().enumerate() {
        // Past the remaining tests and the refusal, onto the final allow.
        let to_allow = (n - i) as u8;
        block.push(jump(JEQ_K, *family, to_allow, 0));
    }
    block.push(errno(EAFNOSUPPORT));
    block.push(stmt(RET_K, RET_ALLOW));
    block
}

impl Program {
    /// The filter for `arch` with `options`.
    pub fn build(arch: Arch, options: Options) -> Result<Program, SeccompError> {
        let nr = |name: &str| arch.number(name);
        let mut p = vec![
            stmt(LD_W_ABS, OFFSET_ARCH),
            jump(JEQ_K, arch.audit_arch(), 1, 0),
            // Another ABI (32-bit entry points) names syscalls by other numbers.
            stmt(RET_K, RET_KILL_PROCESS),
            stmt(LD_W_ABS, OFFSET_NR),
        ];
        if arch == Arch::X86_64 {
            // x32 system calls (bit 30) would bypass the numbers below.
            p.push(jump(JGE_K, 0x4000_0000, 0, 1));
            p.push(errno(EPERM));
        }
        // clone3 passes its flags in memory BPF cannot read: make libc fall back to
        // clone, whose flags are checked.
        if let Some(n) = nr("clone3") {
            guarded(&mut p, n, vec![errno(ENOSYS)])?;
        }
        if let Some(n) = nr("clone") {
            guarded(&mut p, n, deny_flags(CLONE_NS_FLAGS))?;
        }
        let mut allowed_families = vec![AF_UNIX];
        if options.network {
            allowed_families.extend([AF_INET, AF_INET6, AF_NETLINK]);
        }
        for call in ["socket", "socketpair"] {
            if let Some(n) = nr(call) {
                guarded(&mut p, n, families(&allowed_families))?;
            }
        }
        if options.profile == Profile::Zygote {
            if let Some(n) = nr("unshare") {
                guarded(&mut p, n, deny_flags(CLONE_NS_FLAGS & !ZYGOTE_UNSHARE))?;
            }
        } else {
            for name in SELF_ONLY {
                if let Some(n) = nr(name) {
                    guarded(&mut p, n, first_arg_zero())?;
                }
            }
            // PRIO_PROCESS and PRIO_PGRP of oneself; never PRIO_USER (every process of
            // the uid, the harness's included).
            if let Some(n) = nr("setpriority") {
                guarded(&mut p, n, own_priority(2))?;
            }
            // IOPRIO_WHO_PROCESS and IOPRIO_WHO_PGRP of oneself; never IOPRIO_WHO_USER.
            if let Some(n) = nr("ioprio_set") {
                guarded(&mut p, n, own_priority(3))?;
            }
        }
        let mut simple: Vec<u32> = Vec::new();
        for name in DENIED {
            if options.profile == Profile::Zygote && ZYGOTE_ALLOWED.contains(name) {
                continue;
            }
            simple.extend(nr(name));
        }
        if !options.private_ipc {
            simple.extend(IPC.iter().filter_map(|n| nr(n)));
        }
        // Each listed number jumps to the EPERM return after the final allow.
        let count = simple.len();
        for (i, number) in simple.iter().enumerate() {
            let to_deny = count - i;
            let jt = u8::try_from(to_deny).map_err(|_| SeccompError::TooLong(p.len() + count))?;
            p.push(jump(JEQ_K, *number, jt, 0));
        }
        p.push(stmt(RET_K, RET_ALLOW));
        p.push(errno(EPERM));
        if p.len() > u16::MAX as usize {
            return Err(SeccompError::TooLong(p.len()));
        }
        Ok(Program {
            instructions: p,
            // The simple denials, clone's and unshare's namespace flags, and the refused
            // socket families (counted once).
            denied: count as u32 + 2,
        })
    }

    /// The process filter, for `arch`: installed on top of the run filter (filters
    /// stack) by a run whose policy denies processes, after it read its policy and
    /// before user code. It refuses (EPERM) executing a program and making a process:
    /// execve, execveat, fork, vfork, and clone without CLONE_THREAD; clone3 gets ENOSYS
    /// so that libc falls back to clone for its threads (numpy and OpenBLAS start
    /// threads). This is what stops `_posixsubprocess.fork_exec`, which raises no audit
    /// event, when a library has imported it.
    pub fn no_processes(arch: Arch) -> Result<Program, SeccompError> {
        let nr = |name: &str| arch.number(name);
        let mut p = vec![
            stmt(LD_W_ABS, OFFSET_ARCH),
            jump(JEQ_K, arch.audit_arch(), 1, 0),
            stmt(RET_K, RET_KILL_PROCESS),
            stmt(LD_W_ABS, OFFSET_NR),
        ];
        if arch == Arch::X86_64 {
            p.push(jump(JGE_K, 0x4000_0000, 0, 1));
            p.push(errno(EPERM));
        }
        if let Some(n) = nr("clone3") {
            guarded(&mut p, n, vec![errno(ENOSYS)])?;
        }
        if let Some(n) = nr("clone") {
            guarded(
                &mut p,
                n,
                vec![
                    stmt(LD_W_ABS, OFFSET_ARG0_LOW),
                    jump(JSET_K, CLONE_THREAD, 0, 1),
                    stmt(RET_K, RET_ALLOW),
                    errno(EPERM),
                ],
            )?;
        }
        let simple: Vec<u32> = PROCESS_CALLS.iter().filter_map(|n| nr(n)).collect();
        let count = simple.len();
        for (i, number) in simple.iter().enumerate() {
            let jt = u8::try_from(count - i).map_err(|_| SeccompError::TooLong(p.len() + count))?;
            p.push(jump(JEQ_K, *number, jt, 0));
        }
        p.push(stmt(RET_K, RET_ALLOW));
        p.push(errno(EPERM));
        Ok(Program {
            instructions: p,
            // The outright refusals and clone's processes.
            denied: count as u32 + 1,
        })
    }

    /// The process filter for the architecture this program runs on.
    pub fn no_processes_for_host() -> Result<Program, SeccompError> {
        let arch = Arch::host()
            .ok_or_else(|| SeccompError::UnsupportedArch(std::env::consts::ARCH.into()))?;
        Program::no_processes(arch)
    }

    /// The filter for the architecture this program runs on.
    pub fn for_host(options: Options) -> Result<Program, SeccompError> {
        let arch = Arch::host()
            .ok_or_else(|| SeccompError::UnsupportedArch(std::env::consts::ARCH.into()))?;
        Program::build(arch, options)
    }

    /// The instructions as `[code, jt, jf, k]` quadruples (the harness plan's shape).
    pub fn to_quads(&self) -> Vec<[u32; 4]> {
        self.instructions
            .iter()
            .map(|i| [i.code as u32, i.jt as u32, i.jf as u32, i.k])
            .collect()
    }
}

#[cfg(test)]
mod tests;
