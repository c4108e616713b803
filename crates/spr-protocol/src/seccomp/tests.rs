//! The filter, executed by a small classic-BPF interpreter on simulated system calls.

use super::*;

/// What the program returns for one system call (`nr`, first argument) on `arch`.
fn run(p: &Program, arch: Arch, nr: u32, arg0: u64) -> u32 {
    run2(p, arch, nr, arg0, 0)
}

fn run2(p: &Program, arch: Arch, nr: u32, arg0: u64, arg1: u64) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&arch.audit_arch().to_le_bytes());
    data[16..24].copy_from_slice(&arg0.to_le_bytes());
    data[24..32].copy_from_slice(&arg1.to_le_bytes());
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let i = p.instructions[pc];
        pc += 1;
        match i.code {
            LD_W_ABS => {
                let at = i.k as usize;
                acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            }
            JEQ_K => pc += if acc == i.k { i.jt } else { i.jf } as usize,
            JGE_K => pc += if acc >= i.k { i.jt } else { i.jf } as usize,
            JSET_K => pc += if acc & i.k != 0 { i.jt } else { i.jf } as usize,
            RET_K => return i.k,
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
}

fn opts(profile: Profile, network: bool, private_ipc: bool) -> Options {
    Options {
        profile,
        network,
        private_ipc,
    }
}

const ALLOW: u32 = RET_ALLOW;
const DENY: u32 = RET_ERRNO | EPERM;

fn nr(arch: Arch, name: &str) -> u32 {
    arch.number(name)
        .unwrap_or_else(|| panic!("{name} on {arch:?}"))
}

#[test]
fn every_listed_syscall_is_denied_and_others_are_allowed_on_both_architectures() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let p = Program::build(arch, opts(Profile::Run, false, true)).unwrap();
        for name in DENIED {
            if let Some(n) = arch.number(name) {
                assert_eq!(run(&p, arch, n, 0), DENY, "{name} on {arch:?}");
            }
        }
        // read (0 on x86_64, 63 on aarch64) and write stay allowed.
        let read = if arch == Arch::X86_64 { 0 } else { 63 };
        assert_eq!(run(&p, arch, read, 0), ALLOW);
        // Private IPC: SysV shared memory is allowed.
        assert_eq!(run(&p, arch, nr(arch, "shmget"), 0), ALLOW);
    }
}

#[test]
fn without_private_ipc_sysv_and_message_queues_are_denied() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let p = Program::build(arch, opts(Profile::Run, false, false)).unwrap();
        for name in IPC {
            assert_eq!(run(&p, arch, nr(arch, name), 0), DENY, "{name}");
        }
    }
}

#[test]
fn socket_families_are_limited_by_the_network_switch() {
    let arch = Arch::X86_64;
    let eafnosupport = RET_ERRNO | EAFNOSUPPORT;
    let offline = Program::build(arch, opts(Profile::Run, false, true)).unwrap();
    let online = Program::build(arch, opts(Profile::Run, true, true)).unwrap();
    const AF_PACKET: u64 = 17;
    const AF_VSOCK: u64 = 40;
    const AF_ALG: u64 = 38;
    for call in ["socket", "socketpair"] {
        let n = nr(arch, call);
        assert_eq!(run(&offline, arch, n, AF_UNIX as u64), ALLOW);
        for family in [
            AF_INET as u64,
            AF_INET6 as u64,
            AF_NETLINK as u64,
            AF_PACKET,
            AF_VSOCK,
            AF_ALG,
        ] {
            assert_eq!(
                run(&offline, arch, n, family),
                eafnosupport,
                "{call} {family}"
            );
        }
        for family in [AF_UNIX, AF_INET, AF_INET6, AF_NETLINK] {
            assert_eq!(
                run(&online, arch, n, family as u64),
                ALLOW,
                "{call} {family}"
            );
        }
        for family in [AF_PACKET, AF_VSOCK, AF_ALG] {
            assert_eq!(
                run(&online, arch, n, family),
                eafnosupport,
                "{call} {family}"
            );
        }
    }
}

#[test]
fn clone_may_not_make_namespaces_and_clone3_falls_back() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let p = Program::build(arch, opts(Profile::Run, false, true)).unwrap();
        let clone = nr(arch, "clone");
        assert_eq!(run(&p, arch, clone, 0x0001_1200), ALLOW); // a fork's flags
        assert_eq!(run(&p, arch, clone, 0x1000_0000), DENY); // CLONE_NEWUSER
        assert_eq!(run(&p, arch, nr(arch, "clone3"), 0), RET_ERRNO | ENOSYS);
    }
}

#[test]
fn the_zygote_may_give_runs_fresh_mount_and_ipc_namespaces_and_nothing_more() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let p = Program::build(arch, opts(Profile::Zygote, false, true)).unwrap();
        let unshare = nr(arch, "unshare");
        assert_eq!(run(&p, arch, unshare, 0x0002_0000 | 0x0800_0000), ALLOW);
        assert_eq!(run(&p, arch, unshare, 0x2000_0000), ALLOW); // NEWPID, for a zygote
        assert_eq!(run(&p, arch, unshare, 0x1000_0000), DENY); // NEWUSER
        assert_eq!(run(&p, arch, unshare, 0x4000_0000), DENY); // NEWNET
        for name in ["mount", "umount2", "open_tree", "move_mount"] {
            assert_eq!(run(&p, arch, nr(arch, name), 0), ALLOW, "{name}");
        }
        for name in ["ptrace", "bpf", "setns", "pivot_root", "keyctl"] {
            assert_eq!(run(&p, arch, nr(arch, name), 0), DENY, "{name}");
        }
    }
}

#[test]
fn other_abis_are_killed_and_x32_is_refused() {
    let arch = Arch::X86_64;
    let p = Program::build(arch, opts(Profile::Run, false, true)).unwrap();
    let mut data_arch = Program::build(Arch::Aarch64, opts(Profile::Run, false, true)).unwrap();
    // The aarch64 program run on an x86_64 system call kills the process.
    data_arch.instructions[1].k = 0; // no architecture matches
    assert_eq!(run(&data_arch, arch, 0, 0), RET_KILL_PROCESS);
    assert_eq!(run(&p, arch, 0x4000_0000 | 165, 0), DENY);
}

#[test]
fn quads_keep_every_field() {
    let p = Program::build(Arch::X86_64, opts(Profile::Run, false, true)).unwrap();
    let quads = p.to_quads();
    assert_eq!(quads.len(), p.instructions.len());
    assert_eq!(quads[0], [LD_W_ABS as u32, 0, 0, OFFSET_ARCH]);
    assert!(Arch::from_name("amd64") == Some(Arch::X86_64));
    assert!(Arch::from_name("arm64") == Some(Arch::Aarch64));
    assert!(Arch::from_name("riscv64").is_none());
}

#[test]
fn calls_on_other_processes_may_only_aim_at_the_run_itself() {
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let p = Program::build(arch, opts(Profile::Run, false, true)).unwrap();
        for name in SELF_ONLY {
            let n = nr(arch, name);
            assert_eq!(run(&p, arch, n, 0), ALLOW, "{name} on itself");
            assert_eq!(run(&p, arch, n, 2), DENY, "{name} on the zygote");
            assert_eq!(run(&p, arch, n, 1), DENY, "{name} on pid 1");
        }
        let setpriority = nr(arch, "setpriority");
        assert_eq!(run2(&p, arch, setpriority, 0, 0), ALLOW); // PRIO_PROCESS, self
        assert_eq!(run2(&p, arch, setpriority, 1, 0), ALLOW); // PRIO_PGRP, own group
        assert_eq!(run2(&p, arch, setpriority, 0, 2), DENY); // another process
        assert_eq!(run2(&p, arch, setpriority, 2, 0), DENY); // PRIO_USER: every process
        let ioprio = nr(arch, "ioprio_set");
        assert_eq!(run2(&p, arch, ioprio, 1, 0), ALLOW);
        assert_eq!(run2(&p, arch, ioprio, 1, 7), DENY);
        assert_eq!(run2(&p, arch, ioprio, 3, 0), DENY); // IOPRIO_WHO_USER
        for name in ["process_madvise", "process_mrelease", "memfd_create"] {
            assert_eq!(run(&p, arch, nr(arch, name), 0), DENY, "{name}");
        }
        // The zygote keeps them (it never runs user code).
        let z = Program::build(arch, opts(Profile::Zygote, false, true)).unwrap();
        assert_eq!(run(&z, arch, nr(arch, "prlimit64"), 2), ALLOW);
    }
}

#[test]
fn the_process_filter_refuses_programs_and_processes_but_not_threads() {
    const CLONE_VM: u64 = 0x100;
    // What glibc's pthread_create passes to clone (after clone3's ENOSYS): VM, FS,
    // FILES, SIGHAND, THREAD, SYSVSEM, SETTLS, PARENT_SETTID, CHILD_CLEARTID.
    let thread = 0x003d_0f00;
    // A fork (SIGCHLD, CHILD_SETTID, CHILD_CLEARTID) and posix_spawn's vfork.
    let fork = 0x0120_0011;
    let vfork = CLONE_VM | 0x4000 | 17;
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let p = Program::no_processes(arch).unwrap();
        let clone = nr(arch, "clone");
        assert_eq!(run(&p, arch, clone, thread), ALLOW, "a thread on {arch:?}");
        assert_eq!(run(&p, arch, clone, fork), DENY, "a fork on {arch:?}");
        assert_eq!(run(&p, arch, clone, vfork), DENY, "a vfork on {arch:?}");
        assert_eq!(run(&p, arch, nr(arch, "clone3"), 0), RET_ERRNO | ENOSYS);
        for name in PROCESS_CALLS {
            if let Some(n) = arch.number(name) {
                assert_eq!(run(&p, arch, n, 0), DENY, "{name} on {arch:?}");
            }
        }
        // Everything else is the run filter's business: read, write, mmap, futex.
        let others: &[u32] = if arch == Arch::X86_64 {
            &[0, 1, 9, 202]
        } else {
            &[63, 64, 222, 98]
        };
        for n in others {
            assert_eq!(run(&p, arch, *n, 0), ALLOW, "{n} on {arch:?}");
        }
    }
    assert_eq!(
        run(
            &Program::no_processes(Arch::X86_64).unwrap(),
            Arch::X86_64,
            57,
            0
        ),
        DENY
    );
    // Another ABI is killed, x32 refused, as in the run filter.
    let x86 = Program::no_processes(Arch::X86_64).unwrap();
    assert_eq!(run(&x86, Arch::X86_64, 0x4000_0000 | 59, 0), DENY);
    let mut other = Program::no_processes(Arch::Aarch64).unwrap();
    other.instructions[1].k = 0;
    assert_eq!(run(&other, Arch::X86_64, 0, 0), RET_KILL_PROCESS);
}
