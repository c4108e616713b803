//! Landlock: the ABI this kernel offers, and the rights a worker's rules grant. The
//! ruleset itself is built by the harness in every run's process (after the run's own
//! tmpfs mounts exist, which a rule must name), from the list the host puts in the plan.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
const SYS_CREATE_RULESET: libc::c_long = 444;
#[cfg(target_os = "linux")]
const CREATE_RULESET_VERSION: u32 = 1;

pub(crate) const EXECUTE: u64 = 1 << 0;
pub(crate) const WRITE_FILE: u64 = 1 << 1;
pub(crate) const READ_FILE: u64 = 1 << 2;
pub(crate) const READ_DIR: u64 = 1 << 3;
pub(crate) const REMOVE_DIR: u64 = 1 << 4;
pub(crate) const REMOVE_FILE: u64 = 1 << 5;
#[allow(dead_code)] // named for completeness: never granted
pub(crate) const MAKE_CHAR: u64 = 1 << 6;
pub(crate) const MAKE_DIR: u64 = 1 << 7;
pub(crate) const MAKE_REG: u64 = 1 << 8;
pub(crate) const MAKE_SOCK: u64 = 1 << 9;
pub(crate) const MAKE_FIFO: u64 = 1 << 10;
#[allow(dead_code)] // named for completeness: never granted
pub(crate) const MAKE_BLOCK: u64 = 1 << 11;
pub(crate) const MAKE_SYM: u64 = 1 << 12;
pub(crate) const REFER: u64 = 1 << 13;
pub(crate) const TRUNCATE: u64 = 1 << 14;
pub(crate) const IOCTL_DEV: u64 = 1 << 15;
pub(crate) const NET_BIND_TCP: u64 = 1 << 0;
pub(crate) const NET_CONNECT_TCP: u64 = 1 << 1;

/// Read-only access to a directory tree (files may be executed: the interpreter,
/// `ld.so`, `/usr/bin/*` for runs whose policy lets them start processes).
pub(crate) const READ_TREE: u64 = READ_FILE | READ_DIR | EXECUTE;
/// Read-only access to one file.
pub(crate) const READ_ONE_FILE: u64 = READ_FILE | EXECUTE;
/// Everything a scratch directory needs, but not executing what was written there.
pub(crate) const WRITE_TREE: u64 = READ_FILE
    | READ_DIR
    | WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_SYM
    | REFER
    | TRUNCATE;
/// Device nodes: read and write (for /dev/null), no ioctl.
pub(crate) const DEVICES: u64 = READ_FILE | WRITE_FILE;

/// The Landlock ABI this kernel offers, or why there is none.
#[cfg(target_os = "linux")]
pub(crate) fn abi() -> Result<u32, String> {
    // SAFETY: with a null attribute, size 0 and the VERSION flag the call only returns
    // the ABI number; it reads and writes no memory.
    let v = unsafe {
        libc::syscall(
            SYS_CREATE_RULESET,
            std::ptr::null::<u8>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if v >= 1 {
        return Ok(v as u32);
    }
    let err = std::io::Error::last_os_error();
    Err(match err.raw_os_error() {
        Some(libc::ENOSYS) => {
            "the kernel was built without Landlock (CONFIG_SECURITY_LANDLOCK)".into()
        }
        Some(libc::EOPNOTSUPP) => {
            "Landlock is built in but not enabled (add it to the lsm= boot parameter)".into()
        }
        _ => format!("landlock_create_ruleset failed: {err}"),
    })
}

/// Landlock is a Linux security module.
#[cfg(not(target_os = "linux"))]
pub(crate) fn abi() -> Result<u32, String> {
    Err(format!(
        "Landlock is Linux-only (this is {})",
        std::env::consts::OS
    ))
}

/// Every filesystem right the given ABI knows.
pub(crate) fn fs_rights(abi: u32) -> u64 {
    let mut all = (1 << 13) - 1;
    if abi >= 2 {
        all |= REFER;
    }
    if abi >= 3 {
        all |= TRUNCATE;
    }
    if abi >= 5 {
        all |= IOCTL_DEV;
    }
    all
}

/// The network rights handled when the policy allows no network (ABI 4+).
pub(crate) fn net_rights(abi: u32, network: bool) -> u64 {
    if abi >= 4 && !network {
        NET_BIND_TCP | NET_CONNECT_TCP
    } else {
        0
    }
}

/// The scopes handled (ABI 6+): a run can neither signal nor reach an abstract unix
/// socket outside itself (the harness's monitor and zygote included).
pub(crate) fn scopes(abi: u32) -> u64 {
    if abi >= 6 {
        spr_protocol::LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | spr_protocol::LANDLOCK_SCOPE_SIGNAL
    } else {
        0
    }
}
