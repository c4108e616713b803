//! The order of a worker's set-up between fork and exec, written against the
//! [`Syscall`] trait so that it is unit-tested with a recorder and replayed for real in
//! the forked child of the host (`sys.rs`), where nothing may allocate: every input was
//! prepared by the host in a [`ChildPlan`].
//!
//! ```text
//! host ── fork ──> A: mark inherited descriptors close-on-exec; join cgroups
//!                  A: [namespaces] fork M (the mapper, stays in the host's namespaces);
//!                     unshare(user, mount, ipc, uts[, net]); open the bind sources;
//!                     M writes A's uid/gid maps (files, or newuidmap/newgidmap);
//!                     become root inside; unshare(pid)
//!                  A: become a subreaper; fork ──> B (PID 1 of the new PID namespace)
//!                  A: close every descriptor but the lifeline, then supervise: when the
//!                     host's end of the lifeline closes (it died, or discarded the
//!                     worker) kill B; when B ends, kill whatever re-parented to A; exit
//!                     with B's status
//!                  B: die with A; [namespaces] mounts, pivot_root, hostname;
//!                     no_new_privs; capabilities (namespaced: only what gives each run
//!                     fresh namespaces; otherwise none); seccomp ── exec python
//! ```
//!
//! Each step's failure is a fixed-size record on a report pipe the host reads after
//! `spawn` (an errno alone would not say which step failed).

use super::idmap::MapWriter;
use super::plan::{self, Step};
use super::syscall::{Event, Exit, Forked, Syscall};
use spr_protocol::seccomp::Instruction;
use std::ffi::CString;

/// Bits of the "applied" record.
pub(crate) const APPLIED_NAMESPACES: u32 = 1 << 0;
pub(crate) const APPLIED_NETWORK_NS: u32 = 1 << 1;
pub(crate) const APPLIED_FILESYSTEM: u32 = 1 << 2;
pub(crate) const APPLIED_PROC: u32 = 1 << 3;
pub(crate) const APPLIED_SECCOMP: u32 = 1 << 5;
pub(crate) const APPLIED_CGROUP: u32 = 1 << 6;
pub(crate) const APPLIED_CAPS_LIMITED: u32 = 1 << 7;

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
    DropCaps,
    Seccomp,
    CloseFds,
    Parent,
}

pub(crate) const STEP_MOUNT_BASE: u32 = 1000;

const STAGES: [Stage; 13] = [
    Stage::Cgroup,
    Stage::ForkMapper,
    Stage::UnshareUser,
    Stage::WriteMaps,
    Stage::SetIds,
    Stage::UnsharePid,
    Stage::ForkInit,
    Stage::Hostname,
    Stage::NoNewPrivs,
    Stage::DropCaps,
    Stage::Seccomp,
    Stage::CloseFds,
    Stage::Parent,
];

impl Stage {
    pub(crate) fn from_u32(v: u32) -> Option<Stage> {
        STAGES.into_iter().find(|s| *s as u32 == v)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Stage::Cgroup => "join the worker's cgroups",
            Stage::ForkMapper => "fork the uid/gid mapper",
            Stage::UnshareUser => "unshare the user, mount, IPC, UTS and network namespaces",
            Stage::WriteMaps => "write the uid/gid maps of the user namespace",
            Stage::SetIds => "become root of the user namespace",
            Stage::UnsharePid => "unshare the PID namespace",
            Stage::ForkInit => "fork the worker (PID 1 of its namespace)",
            Stage::Hostname => "set the hostname",
            Stage::NoNewPrivs => "set no_new_privs",
            Stage::DropCaps => "drop capabilities",
            Stage::Seccomp => "install the seccomp filter",
            Stage::CloseFds => "mark inherited descriptors close-on-exec",
            Stage::Parent => "stay tied to its supervisor",
        }
    }
}

/// CAP_SETPCAP and CAP_SYS_ADMIN: what a namespaced worker's zygote keeps to give each
/// run a fresh mount and IPC namespace and then drop everything in it.
pub(crate) const ZYGOTE_CAPS: u64 = (1 << 8) | (1 << 21);

/// Everything the child does, prepared by the host.
#[derive(Debug)]
pub(crate) struct ChildPlan {
    /// Write end of the report pipe (close-on-exec).
    pub report_fd: i32,
    /// Read end of the lifeline: the host holds the only write end.
    pub lifeline_fd: i32,
    /// `cgroup.procs` files to join (writing "0" moves the writer).
    pub cgroup_procs: Vec<CString>,
    pub namespaces: Option<NamespacePlan>,
    pub seccomp: Option<Vec<Instruction>>,
    /// Without namespaces: drop every capability (and lock root out of them).
    pub drop_caps: bool,
}

#[derive(Debug)]
pub(crate) struct NamespacePlan {
    pub unshare_net: bool,
    pub ids: MapWriter,
    /// Bind sources opened (O_PATH) while still the host's user, each moved to a fixed
    /// descriptor number: the mount plan binds from `/proc/self/fd/N`, because inside
    /// the user namespace the host paths may not be traversable (`/root` is 0700 and
    /// its owner is not mapped).
    pub bind_sources: Vec<(CString, i32)>,
    pub mounts: Vec<Step>,
}

/// What the process that returns from [`run`] does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// B: exec the worker.
    Exec,
    /// A (after supervising) or the mapper: leave with this status.
    Exit(i32),
}

/// A failed step: its number and errno (already recorded on the report pipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub step: u32,
    pub errno: i32,
}

const CLONE_NEWNS: i32 = 0x0002_0000;
const CLONE_NEWUTS: i32 = 0x0400_0000;
const CLONE_NEWIPC: i32 = 0x0800_0000;
const CLONE_NEWUSER: i32 = 0x1000_0000;
const CLONE_NEWPID: i32 = 0x2000_0000;
const CLONE_NEWNET: i32 = 0x4000_0000;
const SIGKILL: i32 = 9;

fn fail<S: Syscall>(sys: &mut S, fd: i32, step: u32, errno: i32) -> Failure {
    sys.record(fd, RECORD_FAILED, step, errno);
    Failure { step, errno }
}

/// The whole set-up. Returns in A (after its supervision), in the mapper and in B.
pub(crate) fn run<S: Syscall>(plan: &ChildPlan, sys: &mut S) -> Result<Role, Failure> {
    let report = plan.report_fd;
    // Descriptors the process that started spr left open (without close-on-exec) must
    // not reach the worker.
    sys.cloexec_from(3)
        .map_err(|e| fail(sys, report, Stage::CloseFds as u32, e))?;
    let mut applied = 0u32;
    if !plan.cgroup_procs.is_empty() {
        let mut joined = true;
        for procs in &plan.cgroup_procs {
            joined &= sys.write_file(procs, b"0").is_ok();
        }
        if joined {
            applied |= APPLIED_CGROUP;
        }
    }
    if let Some(ns) = &plan.namespaces {
        if let Some(role) = enter_namespaces(plan, ns, sys)? {
            return Ok(role);
        }
        applied |= APPLIED_NAMESPACES;
        if ns.unshare_net {
            applied |= APPLIED_NETWORK_NS;
        }
    }
    sys.set_subreaper()
        .map_err(|e| fail(sys, report, Stage::ForkInit as u32, e))?;
    let supervisor = sys.getpid();
    match sys
        .fork()
        .map_err(|e| fail(sys, report, Stage::ForkInit as u32, e))?
    {
        Forked::Parent(worker) => return Ok(Role::Exit(supervise(plan, sys, worker))),
        Forked::Child => {}
    }
    // B. If A (the process the host holds) dies, so do we; in a PID namespace that takes
    // every process of it.
    sys.set_pdeathsig()
        .map_err(|e| fail(sys, report, Stage::Parent as u32, e))?;
    // In its own PID namespace B sees no parent (0); outside one, a parent other than A
    // means A died before the death signal was armed.
    let parent = sys.getppid();
    if parent != supervisor && !(plan.namespaces.is_some() && parent == 0) {
        return Err(fail(sys, report, Stage::Parent as u32, libc_esrch()));
    }
    if let Some(ns) = &plan.namespaces {
        match plan::apply(&ns.mounts, sys) {
            Ok(done) => {
                applied |= APPLIED_FILESYSTEM;
                if done.proc_mounted {
                    applied |= APPLIED_PROC;
                }
            }
            Err((index, errno)) => {
                return Err(fail(sys, report, STEP_MOUNT_BASE + index as u32, errno));
            }
        }
        sys.sethostname(c"spr")
            .map_err(|e| fail(sys, report, Stage::Hostname as u32, e))?;
    }
    sys.no_new_privs()
        .map_err(|e| fail(sys, report, Stage::NoNewPrivs as u32, e))?;
    // Namespaced: root of its own user namespace, the worker keeps just what gives each
    // run fresh namespaces (every run drops it). Otherwise: nothing at all.
    let keep = if plan.namespaces.is_some() {
        Some(ZYGOTE_CAPS)
    } else if plan.drop_caps {
        match sys.lock_securebits() {
            // Without CAP_SETPCAP (an ordinary user) there is nothing to lock.
            Ok(()) | Err(1) => {}
            Err(e) => return Err(fail(sys, report, Stage::DropCaps as u32, e)),
        }
        Some(0)
    } else {
        None
    };
    if let Some(keep) = keep {
        sys.limit_capabilities(keep)
            .map_err(|e| fail(sys, report, Stage::DropCaps as u32, e))?;
        applied |= APPLIED_CAPS_LIMITED;
    }
    if let Some(filter) = &plan.seccomp {
        sys.seccomp(filter)
            .map_err(|e| fail(sys, report, Stage::Seccomp as u32, e))?;
        applied |= APPLIED_SECCOMP;
    }
    sys.record(report, RECORD_APPLIED, applied, 0);
    Ok(Role::Exec)
}

/// User namespace and maps, bind sources, root inside, PID namespace. `Some(role)` is
/// returned in the mapper.
fn enter_namespaces<S: Syscall>(
    plan: &ChildPlan,
    ns: &NamespacePlan,
    sys: &mut S,
) -> Result<Option<Role>, Failure> {
    let report = plan.report_fd;
    // The mapper must be forked before unshare: it stays in the host's user namespace,
    // where it may write the new namespace's maps.
    let (sync_r, sync_w) = sys
        .pipe()
        .map_err(|e| fail(sys, report, Stage::ForkMapper as u32, e))?;
    let me = sys.getpid();
    let mapper = match sys
        .fork()
        .map_err(|e| fail(sys, report, Stage::ForkMapper as u32, e))?
    {
        Forked::Child => {
            sys.close(sync_w);
            let ok = sys.read_byte(sync_r) && write_maps(sys, me, &ns.ids);
            return Ok(Some(Role::Exit(if ok { 0 } else { 1 })));
        }
        Forked::Parent(pid) => pid,
    };
    sys.close(sync_r);
    let mut flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
    if ns.unshare_net {
        flags |= CLONE_NEWNET;
    }
    if let Err(e) = sys.unshare(flags) {
        // Closing the write end makes the mapper read EOF and exit.
        sys.close(sync_w);
        let _ = sys.wait(mapper);
        return Err(fail(sys, report, Stage::UnshareUser as u32, e));
    }
    // Open the bind sources now: in the new mount namespace (a bind must come from it)
    // but still as the host's user (the maps are not written yet), so that paths under
    // a 0700 directory such as /root can be traversed.
    for (path, fd) in &ns.bind_sources {
        let _ = sys.open_path_at(path, *fd);
    }
    sys.write_byte(sync_w);
    sys.close(sync_w);
    if sys.wait(mapper) != Ok(Exit::Code(0)) {
        return Err(fail(sys, report, Stage::WriteMaps as u32, libc_eperm()));
    }
    let clear_groups = !matches!(
        ns.ids,
        MapWriter::Files {
            deny_setgroups: true,
            ..
        }
    );
    sys.become_root(clear_groups)
        .map_err(|e| fail(sys, report, Stage::SetIds as u32, e))?;
    sys.unshare(CLONE_NEWPID)
        .map_err(|e| fail(sys, report, Stage::UnsharePid as u32, e))?;
    Ok(None)
}

/// In the mapper: write the maps of process `pid`. True on success.
fn write_maps<S: Syscall>(sys: &mut S, pid: i32, ids: &MapWriter) -> bool {
    match ids {
        MapWriter::Files {
            uid_map,
            gid_map,
            deny_setgroups,
        } => {
            (!deny_setgroups || sys.write_proc_file(pid, c"setgroups", b"deny").is_ok())
                && sys
                    .write_proc_file(pid, c"uid_map", uid_map.as_bytes())
                    .is_ok()
                && sys
                    .write_proc_file(pid, c"gid_map", gid_map.as_bytes())
                    .is_ok()
        }
        MapWriter::Tools {
            newuidmap,
            newgidmap,
        } => {
            sys.run_tool(newuidmap, pid) == Ok(Exit::Code(0))
                && sys.run_tool(newgidmap, pid) == Ok(Exit::Code(0))
        }
    }
}

/// A's life after forking B: hold nothing but the lifeline, end B if the host goes,
/// and leave nothing B started behind.
fn supervise<S: Syscall>(plan: &ChildPlan, sys: &mut S, worker: i32) -> i32 {
    sys.close_all_but(plan.lifeline_fd);
    let status = match sys.wait_event(plan.lifeline_fd, worker) {
        Event::Lifeline => {
            sys.kill(worker, SIGKILL);
            let _ = sys.wait(worker);
            128 + SIGKILL
        }
        Event::Exited(Exit::Code(code)) => code,
        Event::Exited(Exit::Signal(signal)) => 128 + signal,
    };
    // Without a PID namespace, what the worker's processes started re-parents here.
    for _ in 0..1000 {
        if sys.kill_children() == 0 {
            break;
        }
    }
    status
}

fn libc_eperm() -> i32 {
    1
}

fn libc_esrch() -> i32 {
    3
}

#[cfg(test)]
mod tests;
