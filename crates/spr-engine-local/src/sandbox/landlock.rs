//! Landlock, by its three system calls: the ABI probe on the host, and a ruleset that
//! the forked child builds from a prepared list without allocating.
#![allow(unsafe_code)]

use std::ffi::CString;

const SYS_CREATE_RULESET: libc::c_long = 444;
const SYS_ADD_RULE: libc::c_long = 445;
const SYS_RESTRICT_SELF: libc::c_long = 446;
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: libc::c_int = 1;

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
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

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

/// Every filesystem right the given ABI knows.
fn fs_rights(abi: u32) -> u64 {
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

/// A ruleset prepared on the host.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub abi: u32,
    /// (path as seen when the ruleset is applied, rights); missing paths are skipped.
    pub rules: Vec<(CString, u64)>,
    /// Deny TCP bind/connect (ABI 4+): set when the policy allows no network.
    pub deny_tcp: bool,
}

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// Apply `plan` to the calling process. Runs in the forked child: no allocation.
/// Returns the errno of the failing call.
pub(crate) fn restrict_self(plan: &Plan) -> Result<(), i32> {
    let handled = fs_rights(plan.abi);
    let attr = RulesetAttr {
        handled_access_fs: handled,
        handled_access_net: if plan.deny_tcp && plan.abi >= 4 {
            NET_BIND_TCP | NET_CONNECT_TCP
        } else {
            0
        },
        scoped: if plan.abi >= 6 {
            SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        } else {
            0
        },
    };
    // Older ABIs know a shorter attribute; the size tells the kernel which fields exist.
    let size = match plan.abi {
        0..=3 => 8,
        4..=5 => 16,
        _ => std::mem::size_of::<RulesetAttr>(),
    };
    // SAFETY: `attr` outlives the call and `size` does not exceed its size.
    let ruleset =
        unsafe { libc::syscall(SYS_CREATE_RULESET, &attr as *const RulesetAttr, size, 0u32) };
    if ruleset < 0 {
        return Err(errno());
    }
    let ruleset = ruleset as libc::c_int;
    for (path, rights) in &plan.rules {
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            continue;
        }
        let mut allowed = rights & handled;
        let mut st: libc::stat = unsafe_zeroed_stat();
        // SAFETY: `fd` is open and `st` is a valid out-pointer.
        if unsafe { libc::fstat(fd, &mut st) } == 0 && (st.st_mode & libc::S_IFMT) != libc::S_IFDIR
        {
            // Rules on files may only carry file rights.
            allowed &= EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
        }
        let rule = PathBeneathAttr {
            allowed_access: allowed,
            parent_fd: fd,
        };
        // SAFETY: `rule` outlives the call; the kernel reads it only.
        let rc = unsafe {
            libc::syscall(
                SYS_ADD_RULE,
                ruleset,
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0u32,
            )
        };
        let err = errno();
        // SAFETY: `fd` was opened above and is closed once.
        unsafe { libc::close(fd) };
        if rc < 0 {
            // SAFETY: closing our own ruleset descriptor.
            unsafe { libc::close(ruleset) };
            return Err(err);
        }
    }
    // SAFETY: a plain system call on our own ruleset descriptor.
    let rc = unsafe { libc::syscall(SYS_RESTRICT_SELF, ruleset, 0u32) };
    let err = errno();
    // SAFETY: closing our own ruleset descriptor.
    unsafe { libc::close(ruleset) };
    if rc < 0 {
        return Err(err);
    }
    Ok(())
}

fn unsafe_zeroed_stat() -> libc::stat {
    // SAFETY: `stat` is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
