//! The system calls a worker's set-up makes between fork and exec, as a trait: the real
//! implementation (`sys.rs`) makes them; the [`Recorder`] of the tests stores them as
//! typed [`Call`]s, so the order of the risky steps (namespaces, id maps, the PID
//! namespace fork, capabilities, no_new_privs, seccomp) is checked without root.
//!
//! Errors are raw errno values: nothing here may allocate in the real child.

use spr_protocol::seccomp::Instruction;
use std::ffi::{CStr, CString};

/// A fork, as seen by the process that continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    Parent(i32),
    Child,
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

/// What woke the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The host is gone (or discarded the worker): its end of the lifeline closed.
    Lifeline,
    /// The worker ended.
    Exited(Exit),
}

pub(crate) trait Syscall {
    fn getpid(&mut self) -> i32;
    fn getppid(&mut self) -> i32;
    fn fork(&mut self) -> Result<Forked, i32>;
    /// Mark every descriptor from `first` up close-on-exec.
    fn cloexec_from(&mut self, first: i32) -> Result<(), i32>;
    /// Close every descriptor but `keep`.
    fn close_all_but(&mut self, keep: i32);
    fn pipe(&mut self) -> Result<(i32, i32), i32>;
    fn close(&mut self, fd: i32);
    /// Block for one byte; false at end of file.
    fn read_byte(&mut self, fd: i32) -> bool;
    fn write_byte(&mut self, fd: i32);
    fn write_file(&mut self, path: &CStr, data: &[u8]) -> Result<(), i32>;
    /// Write `/proc/<pid>/<name>`.
    fn write_proc_file(&mut self, pid: i32, name: &CStr, data: &[u8]) -> Result<(), i32>;
    /// Run `argv` (its argv[1] replaced by `pid`) and wait for it.
    fn run_tool(&mut self, argv: &[CString], pid: i32) -> Result<Exit, i32>;
    fn wait(&mut self, pid: i32) -> Result<Exit, i32>;
    fn unshare(&mut self, flags: i32) -> Result<(), i32>;
    /// Open `path` with O_PATH onto descriptor `fd` (close-on-exec).
    fn open_path_at(&mut self, path: &CStr, fd: i32) -> Result<(), i32>;
    /// Become uid and gid 0 of the new user namespace; `clear_groups` when the map
    /// allows setgroups.
    fn become_root(&mut self, clear_groups: bool) -> Result<(), i32>;
    fn set_pdeathsig(&mut self) -> Result<(), i32>;
    fn set_subreaper(&mut self) -> Result<(), i32>;
    fn sethostname(&mut self, name: &CStr) -> Result<(), i32>;
    fn no_new_privs(&mut self) -> Result<(), i32>;
    /// Lock root out of ever regaining capabilities (needs CAP_SETPCAP; EPERM without).
    fn lock_securebits(&mut self) -> Result<(), i32>;
    /// Keep only the capabilities in `keep` (a bitmask): bounding set, ambient and
    /// inheritable emptied of the rest, effective and permitted set to `keep`.
    fn limit_capabilities(&mut self, keep: u64) -> Result<(), i32>;
    fn seccomp(&mut self, program: &[Instruction]) -> Result<(), i32>;
    fn kill(&mut self, pid: i32, signal: i32);
    /// Wait for the lifeline to close or the child to end.
    fn wait_event(&mut self, lifeline: i32, child: i32) -> Event;
    /// SIGKILL every child of this process (orphans re-parented to this subreaper
    /// included) and reap what has ended; how many were signalled.
    fn kill_children(&mut self) -> u32;
    /// A fixed-size record on the report pipe.
    fn record(&mut self, fd: i32, kind: u32, a: u32, b: i32);
    fn exit(&mut self, code: i32);
    // The mount plan.
    fn mount(
        &mut self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: Option<&CStr>,
    ) -> Result<(), i32>;
    /// Set `attrs` (MOUNT_ATTR_*) on the mount at `target` and every mount below it.
    fn mount_setattr_recursive(&mut self, target: &CStr, attrs: u64) -> Result<(), i32>;
    fn mkdir(&mut self, path: &CStr) -> Result<(), i32>;
    fn touch(&mut self, path: &CStr) -> Result<(), i32>;
    fn symlink(&mut self, target: &CStr, path: &CStr) -> Result<(), i32>;
    fn pivot_root(&mut self, new_root: &CStr) -> Result<(), i32>;
    fn chdir(&mut self, path: &CStr) -> Result<(), i32>;
}

/// One recorded call.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Fork,
    CloexecFrom(i32),
    CloseAllBut(i32),
    Pipe,
    Close(i32),
    ReadByte(i32),
    WriteByte(i32),
    WriteFile(String, String),
    WriteProcFile(i32, String, String),
    RunTool(Vec<String>),
    Wait(i32),
    Unshare(i32),
    OpenPathAt(String, i32),
    BecomeRoot {
        clear_groups: bool,
    },
    SetPdeathsig,
    SetSubreaper,
    Sethostname(String),
    NoNewPrivs,
    LockSecurebits,
    LimitCapabilities(u64),
    Seccomp(usize),
    Kill(i32, i32),
    WaitEvent,
    KillChildren,
    Record(u32, u32, i32),
    Exit(i32),
    Mount {
        source: Option<String>,
        target: String,
        fstype: Option<String>,
        flags: u64,
        data: Option<String>,
    },
    MountSetattr(String, u64),
    Mkdir(String),
    Touch(String),
    Symlink(String, String),
    PivotRoot(String),
    Chdir(String),
}

#[cfg(test)]
impl std::fmt::Display for Call {
    /// The mount calls in the shape the mount plan's tests read.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
        match self {
            Call::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => write!(
                f,
                "mount {} {} {} {:#x} {}",
                opt(source),
                target,
                opt(fstype),
                flags,
                opt(data)
            ),
            Call::Mkdir(p) => write!(f, "mkdir {p}"),
            Call::Touch(p) => write!(f, "touch {p}"),
            Call::Symlink(path, target) => write!(f, "symlink {path} -> {target}"),
            Call::PivotRoot(p) => write!(f, "pivot_root {p}"),
            Call::Chdir(p) => write!(f, "chdir {p}"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// Records every call and answers from a script: forks in order from `forks`, a call
/// whose rendering contains `fail_on.0` fails with errno `fail_on.1`.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub calls: Vec<Call>,
    pub forks: std::collections::VecDeque<Forked>,
    pub events: std::collections::VecDeque<Event>,
    pub fail_on: Option<(String, i32)>,
    pub pid: i32,
    pub ppid: i32,
    pub exits: std::collections::VecDeque<Exit>,
}

#[cfg(test)]
impl Recorder {
    fn push(&mut self, call: Call) -> Result<(), i32> {
        let rendered = call.to_string();
        self.calls.push(call);
        match &self.fail_on {
            Some((needle, errno)) if rendered.contains(needle.as_str()) => Err(*errno),
            _ => Ok(()),
        }
    }

    /// The calls as text (the mount plan's tests compare text).
    pub(crate) fn rendered(&self) -> Vec<String> {
        self.calls.iter().map(ToString::to_string).collect()
    }

    pub(crate) fn position(&self, call: &Call) -> usize {
        self.calls
            .iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("no {call:?} in {:#?}", self.calls))
    }
}

#[cfg(test)]
fn text(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

#[cfg(test)]
impl Syscall for Recorder {
    fn getpid(&mut self) -> i32 {
        self.pid
    }
    fn getppid(&mut self) -> i32 {
        self.ppid
    }
    fn fork(&mut self) -> Result<Forked, i32> {
        self.push(Call::Fork)?;
        Ok(self.forks.pop_front().unwrap_or(Forked::Child))
    }
    fn cloexec_from(&mut self, first: i32) -> Result<(), i32> {
        self.push(Call::CloexecFrom(first))
    }
    fn close_all_but(&mut self, keep: i32) {
        let _ = self.push(Call::CloseAllBut(keep));
    }
    fn pipe(&mut self) -> Result<(i32, i32), i32> {
        self.push(Call::Pipe)?;
        Ok((100, 101))
    }
    fn close(&mut self, fd: i32) {
        let _ = self.push(Call::Close(fd));
    }
    fn read_byte(&mut self, fd: i32) -> bool {
        self.push(Call::ReadByte(fd)).is_ok()
    }
    fn write_byte(&mut self, fd: i32) {
        let _ = self.push(Call::WriteByte(fd));
    }
    fn write_file(&mut self, path: &CStr, data: &[u8]) -> Result<(), i32> {
        self.push(Call::WriteFile(
            text(path),
            String::from_utf8_lossy(data).into(),
        ))
    }
    fn write_proc_file(&mut self, pid: i32, name: &CStr, data: &[u8]) -> Result<(), i32> {
        self.push(Call::WriteProcFile(
            pid,
            text(name),
            String::from_utf8_lossy(data).into(),
        ))
    }
    fn run_tool(&mut self, argv: &[CString], pid: i32) -> Result<Exit, i32> {
        let mut argv: Vec<String> = argv.iter().map(|a| text(a)).collect();
        argv[1] = pid.to_string();
        self.push(Call::RunTool(argv))?;
        Ok(Exit::Code(0))
    }
    fn wait(&mut self, pid: i32) -> Result<Exit, i32> {
        self.push(Call::Wait(pid))?;
        Ok(self.exits.pop_front().unwrap_or(Exit::Code(0)))
    }
    fn unshare(&mut self, flags: i32) -> Result<(), i32> {
        self.push(Call::Unshare(flags))
    }
    fn open_path_at(&mut self, path: &CStr, fd: i32) -> Result<(), i32> {
        self.push(Call::OpenPathAt(text(path), fd))
    }
    fn become_root(&mut self, clear_groups: bool) -> Result<(), i32> {
        self.push(Call::BecomeRoot { clear_groups })
    }
    fn set_pdeathsig(&mut self) -> Result<(), i32> {
        self.push(Call::SetPdeathsig)
    }
    fn set_subreaper(&mut self) -> Result<(), i32> {
        self.push(Call::SetSubreaper)
    }
    fn sethostname(&mut self, name: &CStr) -> Result<(), i32> {
        self.push(Call::Sethostname(text(name)))
    }
    fn no_new_privs(&mut self) -> Result<(), i32> {
        self.push(Call::NoNewPrivs)
    }
    fn lock_securebits(&mut self) -> Result<(), i32> {
        self.push(Call::LockSecurebits)
    }
    fn limit_capabilities(&mut self, keep: u64) -> Result<(), i32> {
        self.push(Call::LimitCapabilities(keep))
    }
    fn seccomp(&mut self, program: &[Instruction]) -> Result<(), i32> {
        self.push(Call::Seccomp(program.len()))
    }
    fn kill(&mut self, pid: i32, signal: i32) {
        let _ = self.push(Call::Kill(pid, signal));
    }
    fn wait_event(&mut self, _lifeline: i32, _child: i32) -> Event {
        let _ = self.push(Call::WaitEvent);
        self.events
            .pop_front()
            .unwrap_or(Event::Exited(Exit::Code(0)))
    }
    fn kill_children(&mut self) -> u32 {
        let _ = self.push(Call::KillChildren);
        0
    }
    fn record(&mut self, fd: i32, kind: u32, a: u32, b: i32) {
        let _ = fd;
        let _ = self.push(Call::Record(kind, a, b));
    }
    fn exit(&mut self, code: i32) {
        let _ = self.push(Call::Exit(code));
    }
    fn mount(
        &mut self,
        source: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: u64,
        data: Option<&CStr>,
    ) -> Result<(), i32> {
        self.push(Call::Mount {
            source: source.map(text),
            target: text(target),
            fstype: fstype.map(text),
            flags,
            data: data.map(text),
        })
    }
    fn mount_setattr_recursive(&mut self, target: &CStr, attrs: u64) -> Result<(), i32> {
        self.push(Call::MountSetattr(text(target), attrs))
    }
    fn mkdir(&mut self, path: &CStr) -> Result<(), i32> {
        self.push(Call::Mkdir(text(path)))
    }
    fn touch(&mut self, path: &CStr) -> Result<(), i32> {
        self.push(Call::Touch(text(path)))
    }
    fn symlink(&mut self, target: &CStr, path: &CStr) -> Result<(), i32> {
        self.push(Call::Symlink(text(path), text(target)))
    }
    fn pivot_root(&mut self, new_root: &CStr) -> Result<(), i32> {
        self.push(Call::PivotRoot(text(new_root)))
    }
    fn chdir(&mut self, path: &CStr) -> Result<(), i32> {
        self.push(Call::Chdir(text(path)))
    }
}
