"""spr harness: the Python side of a worker, in three kinds of process.

Protocol (see crates/spr-protocol): frames of a 4-byte big-endian length plus JSON, read
from the worker's stdin and written to its stdout. Standard library only; CPython 3.8+.

A worker serves many runs of many callers, one after another. So that nothing of one
run can reach the next, the work is split between three processes:

  monitor (M)  The process the host started (PID 1 of the sandbox's PID namespace, or
               of the container). It speaks the frame protocol: it reads each request,
               hands it to a run's process, watches the run from outside (its output
               pipes, its deadline) and writes the report. It holds tenant data, but no
               run's process is ever forked from it.
  zygote (Z)   Forked from M at start-up, before any request exists, and never given
               one: it forks the run processes, passes M the ends of their pipes
               (SCM_RIGHTS), waits for them, kills them when M asks, makes sure nothing
               a run started survives it, and tells M how each run ended. Every run's
               process is a copy of Z, so no run inherits another's code, input,
               output or policy, neither as objects nor in freed memory.
  run (U)      Forked from Z ahead of its request. Before the request exists it isolates
               itself as the host's plan says (fresh mount and IPC namespaces with a new
               scratch tmpfs, Landlock, no capabilities, seccomp), then reads its
               request from a pipe, applies the policy, runs the code and writes its
               result on another pipe. Its status (exit code, signal, timeout) is
               observed by Z and M from outside, never taken from its own word.

Inside the run's process, before user code, a PEP 578 audit hook enforces the policy's
capabilities (processes, network, native code, files outside scratch, introspection of
the interpreter) whatever name reaches them. The hook is a guardrail, not the boundary:
pure Python cannot be made airtight; the kernel sandbox underneath is the boundary.
"""

import ast
import binascii
import builtins
import codecs
import errno
import fcntl
import fnmatch
import gc
import io
import json
import linecache
import os
import re
import select
import signal
import socket
import stat
import struct
import sys
import tempfile
import time
import traceback
import types

PROTOCOL_VERSION = 4
MAX_REQUEST_BYTES = 64 << 20
MAX_RESULT_BYTES = 16 << 20
# A report must fit the host's frame limit (spr_protocol::MAX_FRAME_LEN, 64 MiB) whatever
# the run printed or returned: past this size it is cut down, never refused.
MAX_REPORT_BYTES = 48 << 20
# The most of each stream M keeps, whatever `max_output_kb` says: more could not reach
# the host in a report anyway, and M's memory must not be the run's to fill.
MAX_CAPTURE_BYTES = 16 << 20
READ_CHUNK = 65536
# After the run's processes are gone, how long to wait for pipes still held open (by
# nothing, normally: this only bounds the wait).
DRAIN_GRACE_SECONDS = 0.2
# How long M waits for Z to confirm a kill or hand over a run's process before it
# declares the worker broken.
ZYGOTE_ANSWER_SECONDS = 10.0
# A session's cell past its deadline is interrupted (KeyboardInterrupt); if it has not
# reported within this grace, the session's process is killed (the session is lost).
CELL_INTERRUPT_GRACE_SECONDS = 2.0
# After a cell's result frame, the most M reads of output still in the pipes (a
# background thread may write forever: the drain is bounded in bytes and time).
CELL_DRAIN_BYTES = 1 << 20
CELL_DRAIN_SECONDS = 0.01
# Hex digits of the nonce M puts in each cell's request and the cell's frame starts with.
CELL_NONCE_LEN = 32
RESERVED_GLOBALS = frozenset(
    [
        "__builtins__",
        "__name__",
        "input_data",
        "result",
        "_print_",
        "_getattr_",
        "_write_",
        "_getiter_",
        "_getitem_",
        "_iter_unpack_sequence_",
        "_unpack_sequence_",
    ]
)
# Imported once at start-up so a forked run finds them already loaded.
PRELOAD = (
    "math", "re", "datetime", "collections", "itertools", "functools", "decimal",
    "fractions", "statistics", "random", "string", "textwrap", "typing", "dataclasses",
    "enum", "heapq", "bisect", "copy", "operator", "base64", "hashlib", "uuid", "csv",
    "pathlib",
)

# Private references, taken before any user code exists, so that a run that patches
# the shared modules cannot change how its own result is encoded.
_dumps = json.dumps
_loads = json.loads
_real_import = builtins.__import__
_os_write = os.write
_os_exit = os._exit
_close = os.close
# A session's cells may patch `signal`: how its process treats SIGINT between cells must
# not be theirs to change.
_set_signal = signal.signal
_default_int_handler = signal.default_int_handler
_SIG_IGN = signal.SIG_IGN
_SIGINT = signal.SIGINT
# Defaults of the `[policy.sandbox]` knobs the harness enforces itself (rlimits).
DEFAULT_MAX_PROCESSES = 64
DEFAULT_MAX_FILE_SIZE_MB = 64
DEFAULT_MAX_OPEN_FILES = 256
# Tasks in a sandboxed worker's user namespace besides the run's, per zygote: the
# zygote and (but for one) the next run's process another zygote holds ready; plus M.
# With one zygote: M and Z.
def namespace_overhead_tasks(plan):
    return 2 * plan.zygotes
# Exit status of a run's process whose own set-up failed before any user code existed
# (the reason is written on its result pipe, after the marker below).
EXIT_SETUP_FAILED = 71
# The first bytes a run's process writes on its result pipe: "armed" once it is
# isolated, with the microseconds its set-up took (before its request exists, so user
# code cannot forge them), or "failed" plus a reason.
MARK_ARMED = b"A"
MARK_FAILED = b"F"
ARMED_LEN = 9  # the marker and a little-endian u64


def harness_hash():
    """FNV-1a 64 of this file's bytes; must equal spr_protocol::harness_hash()."""
    try:
        with open(__file__, "rb") as f:
            data = f.read()
    except OSError:
        return "unknown"
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


# ---------------------------------------------------------------------------------
# Framing


def write_frame(fd, message):
    body = _dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    write_all(fd, len(body).to_bytes(4, "big") + body)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[_os_write(fd, view):]


def read_exact(fd, n):
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_to_end(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def read_frame_bytes(fd):
    """One frame's body, or None at end of stream."""
    header = read_exact(fd, 4)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    if length > MAX_REQUEST_BYTES:
        raise ValueError("request frame of %d bytes is too large" % length)
    return read_exact(fd, length)


# ---------------------------------------------------------------------------------
# The plan: what the host asks the harness to do to every run (not tenant data)


FRESH_NAMESPACES = "namespaces"
FRESH_SCRUB = "scrub"


class Plan:
    """The host's instructions, from `--plan JSON`. Every key is optional so that a bare
    `python3 spr_harness.py` works (no isolation beyond the policy's own limits).

    fresh        "namespaces": each run unshares a mount and an IPC namespace and gets
                 new tmpfs mounts (`tmpfs`); "scrub": runs share the scratch base, which
                 Z empties and checks after every run (a worker that cannot is retired).
    scratch      where runs' scratch directories are made.
    own_scratch  the scratch base belongs to this worker alone (so it may be emptied).
    private_scratch_fs  the scratch base is a filesystem of its own (a container's tmpfs):
                 a run that left nothing is seen from its free inodes, with no wipe.
    tmpfs        [{"path", "size_mb", "mode"}]: the per-run tmpfs mounts.
    rebind       mount points under a per-run tmpfs that must stay visible (a venv or an
                 extra path under /tmp): cloned before the tmpfs covers them.
    procfs       {"options", "rights"}: each run mounts its own /proc (e.g. hidepid, so
                 that it sees only the processes it may trace); its Landlock rights.
    landlock     {"abi" (null: probe), "fs", "net", "scoped", "rules": [[path, rights]],
                 "fresh_rights"}: a ruleset every run restricts itself with; the roots of
                 the per-run tmpfs mounts get `fresh_rights`.
    seccomp      a classic BPF program every run installs (built by the host), as
                 [code, jt, jf, k] quadruples.
    process_seccomp  a second program (the process filter: exec and fork refused, threads
                 allowed) a run installs on top once it has read its policy, when the
                 policy denies processes.
    scrubbed_dirs  directories the runs share besides the scratch base (a container's
                 /dev/shm): writable by runs, emptied and checked after every run.
    caps         drop every capability in each run (securebits locked, bounding set
                 emptied).
    zygotes      how many zygotes fork runs (2: the next run's process is ready while a
                 run executes; only with `pidns`, so that their runs share no PID
                 namespace).
    pidns        each zygote is PID 1 of a PID namespace of its own.
    nproc        RLIMIT_NPROC is exact here (a private user namespace).
    oom_score_adj  written for each run's process, so the OOM killer takes the run first.
    policies     policies the operator configured, prepared once before any request.
    preload      module names the operator configured, imported once in M before it forks
                 its zygotes: every run's process is forked with them loaded, each with
                 its own copy-on-write copy (see `preload_modules`).
    warmup       Python code the operator configured, run once in M after the preload,
                 and whose writes each run's process copies while it waits
                 (`learn_prefault`). Operator code, like the preload, never a caller's.
    """

    def __init__(self, data):
        data = data or {}
        self.fresh = data.get("fresh") or FRESH_SCRUB
        if self.fresh not in (FRESH_NAMESPACES, FRESH_SCRUB):
            raise ValueError("plan: fresh must be %r or %r" % (FRESH_NAMESPACES, FRESH_SCRUB))
        self.scratch = data.get("scratch")
        self.own_scratch = bool(data.get("own_scratch"))
        self.tmpfs = [
            (str(t["path"]), int(t["size_mb"]), str(t.get("mode") or "1777"))
            for t in data.get("tmpfs") or []
        ]
        self.rebind = [str(p) for p in data.get("rebind") or []]
        procfs = data.get("procfs")
        self.procfs = None
        if procfs is not None:
            self.procfs = (str(procfs.get("options") or ""), int(procfs.get("rights") or 0))
        ll = data.get("landlock")
        self.landlock = None
        if ll is not None:
            self.landlock = {
                "abi": ll.get("abi"),
                "fs": int(ll.get("fs") or 0),
                "net": int(ll.get("net") or 0),
                "scoped": int(ll.get("scoped") or 0),
                "rules": [(str(p), int(r)) for p, r in ll.get("rules") or []],
                "fresh_rights": int(ll.get("fresh_rights") or 0),
            }
        # [code, jt, jf, k] per instruction, packed as `struct sock_filter`s.
        program = data.get("seccomp")
        self.seccomp = None
        if program:
            self.seccomp = b"".join(struct.pack("=HBBI", *ins) for ins in program)
        program = data.get("process_seccomp")
        self.process_seccomp = None
        if program:
            self.process_seccomp = b"".join(struct.pack("=HBBI", *ins) for ins in program)
        self.scrubbed_dirs = [str(p) for p in data.get("scrubbed_dirs") or []]
        self.caps = bool(data.get("caps"))
        self.private_scratch_fs = bool(data.get("private_scratch_fs"))
        self.zygotes = max(1, min(int(data.get("zygotes") or 1), 4))
        self.pidns = bool(data.get("pidns"))
        self.nproc = bool(data.get("nproc"))
        self.oom_score_adj = data.get("oom_score_adj")
        self.policies = list(data.get("policies") or [])
        self.preload = [str(name) for name in data.get("preload") or []]
        self.warmup = data.get("warmup") or None
        if self.warmup is not None and not isinstance(self.warmup, str):
            raise ValueError("plan: warmup is not a string")
        for name in self.preload:
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError("plan: preload entry %r is not a module name" % name)


def parse_args(argv):
    """`--plan JSON` (the host's way) or, for a bare harness, `--scratch DIR`."""
    data = {}
    if "--plan" in argv:
        data = _loads(argv[argv.index("--plan") + 1])
        if not isinstance(data, dict):
            raise ValueError("--plan must be a JSON object")
    if "--scratch" in argv:
        data["scratch"] = argv[argv.index("--scratch") + 1]
        data.setdefault("own_scratch", True)
    return Plan(data)


# ---------------------------------------------------------------------------------
# The kernel, beyond the os module


CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
O_PATH = getattr(os, "O_PATH", 0o10000000)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_SET_SECUREBITS = 28
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
# NOROOT, NO_SETUID_FIXUP and NO_CAP_AMBIENT_RAISE, each with its lock, and the lock of
# KEEP_CAPS (left off): root in the namespace can never regain a capability.
SECUREBITS_LOCKED = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40 | 0x80
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
# The Landlock rights a rule on a file (not a directory) may carry.
LANDLOCK_FILE_RIGHTS = 1 | 2 | 4 | (1 << 14) | (1 << 15)
LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1
LANDLOCK_SCOPE_SIGNAL = 2


class Kernel:
    """The system calls the harness needs beyond `os`, through ctypes. Loaded once in M;
    Z and every run inherit it. Each method raises OSError with the call's errno.

    A run's process makes these calls before its request exists, on the path to its
    readiness: arguments are prepared once (`prepared_*`), so that a call costs little
    more than the system call itself."""

    def __init__(self):
        import ctypes

        self.ct = ctypes
        self.libc = libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.prctl.restype = ctypes.c_int
        libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
        libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        libc.unshare.argtypes = [ctypes.c_int]
        self.nr_add_rule = ctypes.c_long(SYS_LANDLOCK_ADD_RULE)
        self.path_beneath = ctypes.c_long(LANDLOCK_RULE_PATH_BENEATH)
        self.zero = ctypes.c_uint(0)
        # Looked up now, in M: ctypes resolves and caches a function on first use, and
        # every run's process would otherwise pay for that itself.
        libc.madvise.restype = ctypes.c_int
        for name in ("syscall", "prctl", "mount", "unshare", "capset", "capget", "madvise"):
            getattr(libc, name)
        self.cap_header_type = ctypes.c_uint32 * 2
        self.cap_data_type = ctypes.c_uint32 * 6

    def _fail(self, what):
        e = self.ct.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))

    def _syscall(self, what, number, *args):
        ct = self.ct
        rc = self.libc.syscall(ct.c_long(number), *args)
        if rc < 0:
            self._fail(what)
        return rc

    def prctl(self, option, a=0, b=0, what="prctl"):
        if self.libc.prctl(option, a, b, 0, 0) != 0:
            self._fail(what)

    def unshare(self, flags):
        if self.libc.unshare(flags) != 0:
            self._fail("unshare")

    def mount(self, source, target, fstype, flags, data):
        enc = lambda s: None if s is None else s.encode()  # noqa: E731
        if self.libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)) != 0:
            self._fail("mount %s" % target)

    def umount_detached(self, path):
        """Detach the mount at `path` (never following a symbolic link at its end)."""
        if self.libc.umount2(os.fsencode(path), MNT_DETACH | UMOUNT_NOFOLLOW) != 0:
            self._fail("umount %s" % path)

    def bind_read_only(self, path):
        self.mount(path, path, None, MS_BIND | MS_REC, None)
        self.mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)

    def madvise(self, start, length, advice):
        c = self.ct
        if self.libc.madvise(c.c_void_p(start), c.c_size_t(length), c.c_int(advice)) != 0:
            self._fail("madvise")

    def write_sysctl(self, name, value):
        """Write a sysctl of this process's namespaces (/proc/sys/<name>)."""
        fd = os.open("/proc/sys/" + name, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value)
        finally:
            os.close(fd)

    def open_tree(self, path):
        c = self.ct
        flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE
        return self._syscall(
            "open_tree %s" % path, SYS_OPEN_TREE, c.c_long(AT_FDCWD), c.c_char_p(path.encode()),
            c.c_ulong(flags),
        )

    def move_mount(self, tree, target):
        c = self.ct
        self._syscall(
            "move_mount %s" % target, SYS_MOVE_MOUNT, c.c_long(tree), c.c_char_p(b""),
            c.c_long(AT_FDCWD), c.c_char_p(target.encode()), c.c_ulong(MOVE_MOUNT_F_EMPTY_PATH),
        )

    def landlock_abi(self):
        c = self.ct
        return self._syscall(
            "landlock_create_ruleset", SYS_LANDLOCK_CREATE_RULESET, c.c_void_p(None),
            c.c_size_t(0), c.c_uint(LANDLOCK_CREATE_RULESET_VERSION),
        )

    def prepared_ruleset(self, abi, fs, net, scoped):
        """The arguments of landlock_create_ruleset, made once."""
        c = self.ct
        attr = (c.c_uint64 * 3)(fs, net, scoped)
        # Older ABIs know a shorter attribute; its size tells the kernel which fields exist.
        size = 8 if abi <= 3 else 16 if abi <= 5 else 24
        return (c.c_long(SYS_LANDLOCK_CREATE_RULESET), c.byref(attr), c.c_size_t(size), c.c_uint(0), attr)

    def landlock_ruleset(self, prepared):
        rc = self.libc.syscall(*prepared[:4])
        if rc < 0:
            self._fail("landlock_create_ruleset")
        return rc

    def prepared_rule(self, fd, rights):
        """The `struct landlock_path_beneath_attr` of a rule, made once."""
        return self.ct.create_string_buffer(struct.pack("=Qi", rights, fd), 12)

    def landlock_add_rule(self, ruleset, attr):
        if self.libc.syscall(self.nr_add_rule, ruleset, self.path_beneath, attr, self.zero) < 0:
            self._fail("landlock_add_rule")

    def landlock_restrict_self(self, ruleset):
        c = self.ct
        self._syscall(
            "landlock_restrict_self", SYS_LANDLOCK_RESTRICT_SELF, c.c_long(ruleset), c.c_uint(0)
        )

    def drop_capabilities(self, bounding):
        """Lock root out of capabilities for good, then empty every set. `bounding`: the
        capabilities in the bounding set (the only ones worth dropping from it)."""
        c = self.ct
        try:
            self.prctl(PR_SET_SECUREBITS, SECUREBITS_LOCKED, what="lock the securebits")
            for cap in bounding:
                self.prctl(PR_CAPBSET_DROP, cap, what="drop capability %d from the bounding set" % cap)
        except OSError as exc:
            # Without CAP_SETPCAP there is nothing in the bounding set to fear: such a
            # process holds no capability it could pass on (checked below). gVisor
            # knows no securebits (EINVAL): the same holds of its unprivileged runs.
            if exc.errno not in (errno.EPERM, errno.EINVAL):
                raise
        self.libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        header = self.cap_header_type(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, self
        data = self.cap_data_type()
        if self.libc.capset(c.byref(header), c.byref(data)) != 0:
            self._fail("capset")
        if self.libc.capget(c.byref(header), c.byref(data)) != 0 or any(data):
            raise OSError(errno.EPERM, "capabilities remain after capset")

    def prepared_filter(self, program):
        """A `struct sock_fprog` for `program`, made once (with the buffer it points to)."""
        c = self.ct

        class SockFprog(c.Structure):
            _fields_ = [("len", c.c_ushort), ("filter", c.c_void_p)]

        buf = c.create_string_buffer(program, len(program))
        return SockFprog(len(program) // 8, c.addressof(buf)), buf

    def seccomp(self, prepared):
        self.prctl(
            PR_SET_SECCOMP, SECCOMP_MODE_FILTER, self.ct.addressof(prepared[0]),
            what="install the seccomp filter",
        )


_kernel = None


def kernel():
    """The process-wide Kernel, made on first use (ctypes costs a few ms to load)."""
    global _kernel
    if _kernel is None:
        _kernel = Kernel()
    return _kernel


def prctl_quiet(option, value):
    try:
        kernel().prctl(option, value)
        return True
    except (OSError, AttributeError, ImportError):
        return False


def bounding_capabilities():
    """The capabilities in this process's bounding set."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapBnd:"):
                    mask = int(line.split()[1], 16)
                    return [cap for cap in range(64) if mask >> cap & 1]
    except (OSError, ValueError):
        pass
    return list(range(41))


# ---------------------------------------------------------------------------------
# Isolation of one run, in its own process, before its request exists


class SetupError(Exception):
    """A step of a run's isolation failed: the run never executes."""

    def __init__(self, step, exc):
        Exception.__init__(self, "%s: %s" % (step, exc.strerror if isinstance(exc, OSError) and exc.strerror else exc))
        self.step = step


class Isolation:
    """What every run of this worker gets, derived from the plan and (for Landlock) a
    probe of the kernel, once in M, with every argument of its system calls prepared.
    `summary()` goes into the hello frame, so the host's receipts say what each run
    really has: a run whose isolation fails never executes."""

    def __init__(self, plan, k):
        self.plan = plan
        self.landlock_abi = None
        self.landlock = None
        ll = plan.landlock
        if ll is not None:
            abi = ll["abi"]
            if abi is None:
                try:
                    abi = k.landlock_abi()
                except OSError:
                    abi = None
            if abi:
                scoped = ll["scoped"] if abi >= 6 else 0
                net = ll["net"] if abi >= 4 else 0
                if ll["fs"] or net or scoped:
                    self.landlock_abi = abi
                    self.landlock = dict(ll, abi=abi, scoped=scoped, net=net)
        # The fixed rule paths are opened once here (they are the worker's view, not
        # tenant data); each run adds them to a ruleset of its own.
        self.rule_fds = []
        self.rules = []
        self.ruleset = None
        if self.landlock is not None:
            ll = self.landlock
            self.ruleset = k.prepared_ruleset(ll["abi"], ll["fs"], ll["net"], ll["scoped"])
            if ll["fs"]:
                for path, rights in ll["rules"]:
                    try:
                        fd = os.open(path, O_PATH | os.O_CLOEXEC)
                    except OSError:
                        continue  # a path this machine lacks (e.g. /lib32)
                    if not stat.S_ISDIR(os.fstat(fd).st_mode):
                        rights &= LANDLOCK_FILE_RIGHTS
                    self.rule_fds.append(fd)
                    self.rules.append(k.prepared_rule(fd, rights & ll["fs"]))
        self.fresh_rules = [(path, ll_fresh(self.landlock)) for path, _s, _m in plan.tmpfs]
        if plan.procfs is not None:
            self.fresh_rules.append(("/proc", plan.procfs[1]))
        self.filter = k.prepared_filter(plan.seccomp) if plan.seccomp is not None else None
        # Prepared here, in M: a run whose policy denies processes installs it after it
        # has read its request, on the latency path, for little more than the syscall.
        self.process_filter = (
            k.prepared_filter(plan.process_seccomp) if plan.process_seccomp is not None else None
        )
        self.bounding = bounding_capabilities() if plan.caps else []
        self.tmpfs = [
            (path, "size=%dm,mode=%s" % (size_mb, mode)) for path, size_mb, mode in plan.tmpfs
        ]
        self.ipc_sysctls = ipc_sysctls(plan)

    def summary(self):
        plan = self.plan
        return {
            "fresh_namespaces": ["mount", "ipc"] if plan.fresh == FRESH_NAMESPACES else [],
            "scratch": "tmpfs" if plan.fresh == FRESH_NAMESPACES else "scrubbed",
            "landlock_abi": self.landlock_abi,
            "landlock_scoped": bool(self.landlock and self.landlock["scoped"]),
            "seccomp": plan.seccomp is not None,
            "capabilities_dropped": plan.caps,
            "process_filter": self.process_filter is not None,
            "dev_shm": self.dev_shm(),
        }

    def dev_shm(self):
        plan = self.plan
        if plan.fresh == FRESH_NAMESPACES and any(p == "/dev/shm" for p, _s, _m in plan.tmpfs):
            return "tmpfs"
        if plan.fresh != FRESH_NAMESPACES and "/dev/shm" in plan.scrubbed_dirs:
            return "scrubbed"
        return None

    def refuse_processes(self, k):
        """Install the process filter (a run's, once its policy denies processes). Filters
        stack: it narrows the run filter, never widens it. no_new_privs is set already in
        a sandboxed worker; set here too so that the filter needs no privilege anywhere."""
        k.prctl(PR_SET_NO_NEW_PRIVS, 1, what="set no_new_privs")
        k.seccomp(self.process_filter)

    def apply(self, k):
        """Isolate the calling process (a run's, before its request). Raises SetupError."""
        plan = self.plan

        def step(name, fn, *args):
            try:
                return fn(*args)
            except OSError as exc:
                raise SetupError(name, exc)

        if plan.fresh == FRESH_NAMESPACES:
            step("unshare the run's mount and IPC namespaces", k.unshare, CLONE_NEWNS | CLONE_NEWIPC)
            # Mounts under a per-run tmpfs (a venv in /tmp) are cloned first, then put
            # back on top of the new tmpfs.
            trees = [(p, step("clone the mount at %s" % p, k.open_tree, p)) for p in plan.rebind]
            flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
            for path, data in self.tmpfs:
                step("mount the run's tmpfs on %s" % path, k.mount, "tmpfs", path, "tmpfs", flags, data)
            for path, tree in trees:
                step("restore the mount at %s" % path, restore_mount_point, k, tree, path)
            if plan.procfs is not None:
                step("mount the run's /proc", k.mount, "proc", "/proc", "proc", flags, plan.procfs[0] or None)
                # The run's own IPC namespace: its SysV segments die with it (not after
                # the namespace's deferred release), message queues stay small.
                for name, value in self.ipc_sysctls:
                    step("limit the run's SysV IPC", k.write_sysctl, name, value)
                # The kernel's knobs are the host's (a run that is the host's uid 0, in a
                # namespace that maps only it, would pass their permission checks).
                step("make the run's /proc/sys read-only", k.bind_read_only, "/proc/sys")
                if os.path.exists("/proc/sysrq-trigger"):  # absent without CONFIG_MAGIC_SYSRQ
                    step("hide /proc/sysrq-trigger", k.mount, "/dev/null", "/proc/sysrq-trigger", None, MS_BIND, None)
        if plan.oom_score_adj is not None:
            try:
                fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.write(fd, b"%d" % int(plan.oom_score_adj))
                finally:
                    os.close(fd)
            except OSError:
                pass  # no /proc in this view: the cgroup limit still holds
        if self.landlock is not None:
            step("apply the run's Landlock ruleset", self.restrict, k)
        if plan.caps:
            step("drop the run's capabilities", k.drop_capabilities, self.bounding)
        if self.filter is not None:
            step("install the run's seccomp filter", k.seccomp, self.filter)

    def restrict(self, k):
        ruleset = k.landlock_ruleset(self.ruleset)
        try:
            if self.landlock["fs"]:
                for attr in self.rules:
                    k.landlock_add_rule(ruleset, attr)
                for path, rights in self.fresh_rules:
                    fd = os.open(path, O_PATH | os.O_CLOEXEC)
                    try:
                        k.landlock_add_rule(ruleset, k.prepared_rule(fd, rights & self.landlock["fs"]))
                    finally:
                        os.close(fd)
            k.landlock_restrict_self(ruleset)
        finally:
            os.close(ruleset)
        self.close()

    def close(self):
        """Close the rule descriptors (a run's own copies, once restricted)."""
        for fd in self.rule_fds:
            os.close(fd)
        self.rule_fds = []


def ll_fresh(landlock):
    return landlock["fresh_rights"] if landlock is not None else 0


# Per-run IPC namespace sysctls: shared memory destroyed with its last user, and few
# and small message queues (their memory is the kernel's).
IPC_SYSCTLS = (
    ("kernel/shm_rmid_forced", b"1"),
    ("kernel/msgmni", b"16"),
    ("kernel/msgmnb", b"65536"),
)
# SysV shared memory in all, per run, when the plan gives no /dev/shm size.
DEFAULT_SYSV_SHM_MB = 64


def ipc_sysctls(plan):
    """The sysctls of a run's IPC namespace: SysV shared memory limited like its
    /dev/shm tmpfs."""
    shm_mb = next((size for path, size, _m in plan.tmpfs if path == "/dev/shm"), DEFAULT_SYSV_SHM_MB)
    shm = shm_mb << 20
    return IPC_SYSCTLS + (
        ("kernel/shmmax", b"%d" % shm),
        ("kernel/shmall", b"%d" % (shm // 4096)),
    )



def restore_mount_point(k, tree, path):
    """Recreate `path` on the new tmpfs and move the cloned mount `tree` onto it."""
    if stat.S_ISDIR(os.fstat(tree).st_mode):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
    try:
        k.move_mount(tree, path)
    finally:
        os.close(tree)


# ---------------------------------------------------------------------------------
# Process hygiene


def children_of(pid):
    # os.open and os.read rather than open(): cheaper, and nothing of io is needed.
    try:
        fd = os.open("/proc/%d/task/%d/children" % (pid, pid), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        return [int(p) for p in read_to_end(fd).split()]
    except (OSError, ValueError):
        return []
    finally:
        os.close(fd)


def sweep_tree(me):
    """Kill every descendant of `me` (a subreaper: orphans re-parent to it) until none
    remain, reaping as it goes. Returns how many were killed."""
    killed = set()
    for _ in range(1000):
        reap_all()
        kids = children_of(me)
        if not kids:
            break
        for pid in kids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        time.sleep(0.001)
    reap_all()
    return len(killed)


def sweep_namespace():
    """With M as PID 1 of the namespace: kill every process but M and this one, and reap
    them (orphans re-parent to this subreaper). Once `waitpid` finds no child, nothing
    the run started is left."""
    reaped = 0
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return reaped
        except InterruptedError:
            continue
        reaped += 1


def reap_all():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wipe_dir(base):
    """Empty `base` whatever modes the run left behind (it owns everything it made, so
    it can always be made writable again), without crossing into another filesystem or
    mount (a bind mount below it holds the host's files). Returns True when `base` is
    empty."""
    try:
        dev = os.lstat(base).st_dev
    except OSError:
        return False
    _wipe(base, dev)
    try:
        return not os.listdir(base)
    except OSError:
        return False


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8


def fdinfo_field(fd, key):
    """The integer field `key` (bytes, with its colon) of /proc/self/fdinfo/<fd>, or
    None where /proc does not say."""
    try:
        with open("/proc/self/fdinfo/%d" % fd, "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def mount_id(fd):
    """The id of the mount `fd` is on, or None."""
    return fdinfo_field(fd, b"mnt_id:")


def _same_mount(dirfd, name, mount):
    """Whether directory `name` (relative to `dirfd`) is on `mount` rather than a mount
    of its own. A run that could mount (root without the sandbox) may have bound a host
    directory there, and the device number of a bind mount is its source's. Such a
    mount is detached where M may (then the directory under it is wiped); else it stays,
    untouched, and the scratch is reported not empty."""
    if mount is None:
        return True
    for _ in range(8):  # mounts stacked on one another
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dirfd)
        except OSError:
            return False
        try:
            if mount_id(fd) == mount:
                return True
        finally:
            os.close(fd)
        try:
            kernel().umount_detached("/proc/self/fd/%d/%s" % (dirfd, name))
        except OSError:
            return False
    return False


def _wipe(path, dev):
    """Remove what `path` holds, depth first, one directory descriptor open at a time
    and every name relative to it: a run's tree may be deeper than Python's recursion
    limit or PATH_MAX allows a path to be. Every process of the run is gone by now, so
    nothing moves under the walk. Names it cannot remove (another filesystem, a failure)
    are left and make `wipe_dir` report the directory not empty."""
    _make_enterable(None, path, None)
    try:
        fd = os.open(path, DIR_FLAGS)
    except OSError:
        return
    mount = mount_id(fd)
    # Where the walk is in each directory above this one: its name in its parent, and
    # the parent's listing with the position after it. Each directory is listed once.
    above = []
    try:
        names = os.listdir(fd)
        at = 0
        while True:
            child = None
            while at < len(names):
                name = names[at]
                at += 1
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                if st.st_dev != dev:
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    _remove(fd, name, os.unlink, mount)
                    continue
                if not _same_mount(fd, name, mount):
                    continue
                _make_enterable(fd, name, mount)
                try:
                    child = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                break
            if child is not None:
                os.close(fd)
                fd = child
                above.append((name, names, at))
                names = os.listdir(fd)
                at = 0
                continue
            if not above:
                return
            parent = os.open("..", DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = parent
            name, names, at = above.pop()
            _remove(fd, name, os.rmdir, mount)
    except OSError:
        return
    finally:
        os.close(fd)


def _make_enterable(dirfd, name, mount):
    """Mode 0700 for directory `name` (relative to `dirfd`, or a path when None; on
    `mount`, when given): the run owns what it made, so M can always give itself access
    back."""
    try:
        os.chmod(name, 0o700, dir_fd=dirfd)
    except PermissionError:
        # Immutable: only a run with CAP_LINUX_IMMUTABLE (root without the sandbox)
        # can have made it so, and M, as that same user, can undo it.
        if unfreeze(dirfd, name, mount):
            try:
                os.chmod(name, 0o700, dir_fd=dirfd)
            except OSError:
                pass
    except OSError:
        pass


def _remove(dirfd, name, remove, mount):
    try:
        remove(name, dir_fd=dirfd)
        return True
    except PermissionError:
        # The entry or its directory is immutable or append-only.
        if unfreeze(dirfd, name, mount) | _unfreeze_fd(dirfd):
            try:
                remove(name, dir_fd=dirfd)
                return True
            except OSError:
                pass
    except OSError:
        pass
    return False


FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_APPEND_FL = 0x00000020
FS_IMMUTABLE_FL = 0x00000010


def unfreeze(dirfd, name, mount=None):
    """Clear the immutable and append-only flags of regular file or directory `name`
    (relative to `dirfd`, or a path when None), when it is on `mount` (if given) and a
    file has no other name: the flags of a file bound or linked from outside the
    scratch are not the run's to lose. Only these types carry the flags: an ioctl on
    anything else goes to its driver, so nothing else is opened. True when a flag was
    cleared."""
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except OSError:
        return False
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return False
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    except OSError:
        return False
    try:
        if mount is not None and mount_id(fd) != mount:
            return False
        if stat.S_ISREG(st.st_mode) and os.fstat(fd).st_nlink != 1:
            return False
        return _unfreeze_fd(fd)
    finally:
        os.close(fd)


def _unfreeze_fd(fd):
    try:
        # The kernel reads and writes an int, whatever the request number's size says.
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4])[0]
        frozen = FS_IMMUTABLE_FL | FS_APPEND_FL
        if not flags & frozen:
            return False
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags & ~frozen) + bytes(4))
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------
# Descriptor passing between Z and M (a SOCK_SEQPACKET pair: one message per send)


def send_message(sock, text, fds=()):
    data = text.encode("ascii")
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("%di" % len(fds), *fds))])
    else:
        sock.send(data)


def recv_message(sock, max_fds=4):
    """(text, fds); text is "" when the peer is gone. A peer that closed its end with
    messages of ours unread in it (a zygote that stopped without reading M's last "E")
    makes the kernel report ECONNRESET once, before the messages it had sent: read on."""
    try:
        data, ancdata, _flags, _addr = sock.recvmsg(256, socket.CMSG_SPACE(max_fds * 4))
    except ConnectionResetError:
        data, ancdata, _flags, _addr = sock.recvmsg(256, socket.CMSG_SPACE(max_fds * 4))
    fds = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(struct.unpack("%di" % (usable // 4), payload[:usable]))
    return data.decode("ascii", "replace"), fds

# ---------------------------------------------------------------------------------
# Z, the zygote: forks the runs, never sees a request or an output


class Zygote:
    """Forks each run's process ahead of its request, once the previous run is over and
    swept (no user code exists anywhere while a new run's process is made), hands M the
    ends of its pipes, and reports how it ended.

    Messages from M: "K <serial>" (kill the current run now), "I <serial>" (interrupt
    it: SIGINT, for a session's cell past its deadline), "E <serial>" (the run wrote its
    report and closed its pipes: report its exit as soon as the kernel shows it, see
    `report_exit_seen`), "P" and "U" (pause a session's process group between its
    cells, and resume it), "Q" (quit). One naming another run
    than the current one is stale (it crossed that run's end) and ignored: its pid
    would not tell, every run's process being pid 2 of this namespace. To M:
    "R <pid> <serial>" with the run's descriptors (request write end, stdout, stderr and
    result read ends), "I <serial>" once the interrupt is sent, and "X <pid> <serial>
    <wait status> <exit time> <killed> <leftovers> <reset>" once the run and everything
    it started are gone."""

    def __init__(self, sock, plan, isolation, base, index=0):
        self.sock = sock
        self.index = index
        self.plan = plan
        self.isolation = isolation
        self.base = base
        # PID 1 of a namespace of its own, or the child of M as PID 1 of the worker's
        # namespace or container: kill(-1) reaches every process a run may have left,
        # and spares M.
        self.pid1 = os.getpid() == 1 or os.getppid() == 1
        self.clean_inodes = None
        self.exit_codes_readable = False
        # PID 1 of a namespace of its own (and allowed to set its pid counter).
        self.renumber = os.getpid() == 1 and plan.pidns

    def serve(self):
        prctl_quiet(PR_SET_CHILD_SUBREAPER, 1)
        if os.getppid() != 1 and os.getpid() != 1:
            prctl_quiet(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() == 1:  # M died before the death signal was armed
                return 0
        if self.plan.fresh != FRESH_NAMESPACES and in_child(self.scrub, 0):
            self.measure_clean()
        self.exit_codes_readable = self.probe_exit_codes()
        # Numbers of this zygote's runs, distinct from the other zygotes' (scratch names).
        serial = self.index + 1 - self.plan.zygotes
        while True:
            serial += self.plan.zygotes
            pid, pidfd = self.fork_run(serial)
            if not self.watch(pid, pidfd, serial):
                return 0

    def fork_run(self, serial):
        req_r, req_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        zpid = os.getpid()
        if self.renumber:
            # Every run's process is pid 2 of this namespace, its processes 3, 4...:
            # pids would otherwise tell a run how many processes ran before it.
            try:
                kernel().write_sysctl("kernel/ns_last_pid", b"1")
            except OSError:
                self.renumber = False
        pid = os.fork()
        if pid == 0:
            status = 70
            try:
                for fd in (self.sock.fileno(), req_w, out_r, err_r, res_r):
                    os.close(fd)
                status = run_process(
                    self.plan, self.isolation, self.base, serial, req_r, out_w, err_w, res_w,
                    zpid, self.pid1,
                )
            except BaseException:
                child_failed()
            finally:
                _os_exit(status)
        for fd in (req_r, out_w, err_w, res_w):
            os.close(fd)
        pidfd = open_pidfd(pid)
        try:
            send_message(self.sock, "R %d %d" % (pid, serial), [req_w, out_r, err_r, res_r])
        finally:
            for fd in (req_w, out_r, err_r, res_r):
                os.close(fd)
        return pid, pidfd

    def watch(self, pid, pidfd, serial):
        """Wait for the run to end (or be killed on M's word); sweep; report. Returns
        False when Z should stop."""
        sock_fd = self.sock.fileno()
        poller = select.poll()
        poller.register(sock_fd, select.POLLIN)
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        killed = False
        keep_going = True
        status = None
        # Where the exit of the run can be seen before it is reaped (`report_exit_seen`).
        stat = stat_path_of(pidfd) if pidfd is not None and self.exit_codes_readable else None
        reported = False
        while status is None:
            for fd, _ev in poller.poll(None if pidfd is not None else 5):
                if fd != sock_fd:
                    continue
                text, fds = recv_message(self.sock)
                for extra in fds:
                    os.close(extra)
                text, _, target = text.partition(" ")
                if target and target != str(serial):
                    # About an earlier run: M sent it before that run's end reached it.
                    continue
                if text == "K":
                    killed = self.kill(pid) or killed
                elif text == "I":
                    # Only the session's process: KeyboardInterrupt in its main thread.
                    try:
                        os.kill(pid, signal.SIGINT)
                    except OSError:
                        pass
                    send_message(self.sock, "I %d" % serial)
                elif text == "E" and not killed and not reported:
                    reported = self.report_exit_seen(pid, serial, stat)
                elif text in ("P", "U"):
                    # Between cells nothing of a session runs: its threads and every
                    # process it started are stopped until the next cell.
                    self.signal_all(pid, signal.SIGSTOP if text == "P" else signal.SIGCONT)
                elif text in ("Q", ""):  # quit, or M is gone
                    self.kill(pid)
                    keep_going = False
            status = reap(pid)
        exited_at = time.monotonic()
        if pidfd is not None:
            os.close(pidfd)
        leftovers = sweep_namespace() if self.pid1 else sweep_tree(os.getpid())
        reset = self.reset(serial)
        if keep_going and not reported:
            send_message(
                self.sock,
                "X %d %d %d %.6f %d %d %d"
                % (pid, serial, status, exited_at, killed, leftovers, reset),
            )
        return keep_going and reset

    def probe_exit_codes(self):
        """Whether runs' exits can be reported before they are reaped: only where the run
        has namespaces of its own and this zygote is PID 1 of its namespace (nothing to
        reset, and kill(-1) reaches all the run left), and where this zygote's /proc shows
        it its runs' exit codes (the kernel shows them only to whom it lets trace the
        process: the same uid and no LSM in the way, for a dumpable process, as every
        run's process makes itself). Probed once with a child of its own; where not,
        each run's exit is seen when it is reaped."""
        if not self.pid1 or self.plan.fresh != FRESH_NAMESPACES:
            return False
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                prctl_quiet(PR_SET_DUMPABLE, 1)
                os.write(w, b"x")
                time.sleep(ZYGOTE_ANSWER_SECONDS)
            finally:
                _os_exit(0)
        os.close(w)
        pidfd = open_pidfd(pid)
        try:
            os.read(r, 1)
            path = stat_path_of(pidfd) if pidfd is not None else None
            fields = read_stat(path) if path else None
            # 1 is what the kernel shows for the start of code to whom it hides it.
            return fields is not None and fields[STAT_START_CODE] not in (0, 1)
        finally:
            os.close(r)
            if pidfd is not None:
                os.close(pidfd)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
            os.waitpid(pid, 0)

    def report_exit_seen(self, pid, serial, stat):
        """M has the run's whole report and every pipe it had is closed. If the kernel
        shows its process past the point of no return of its exit (exiting, and its
        address space already released: its exit code is set), kill whatever the run
        left and report its real wait status now, without waiting for the teardown of
        its address space and its reaping (they follow, then the sweep, before the next
        run's process is forked). A process still running (user code that closed the
        pipes itself) is not reported: its run ends as any other. True if reported."""
        if stat is None:
            return False
        for _ in range(EXIT_SEEN_TRIES):
            fields = read_stat(stat)
            if fields is None:
                return False  # reaped already: the usual X follows
            # Exiting, and its address space released: its exit code is set by then.
            if fields[STAT_FLAGS] & PF_EXITING and fields[STAT_VSIZE] == 0:
                status = fields[STAT_EXIT_CODE]
                try:
                    os.kill(-1, signal.SIGKILL)
                except OSError:
                    pass
                send_message(
                    self.sock,
                    "X %d %d %d %.6f 0 0 1" % (pid, serial, status, time.monotonic()),
                )
                return True
            time.sleep(EXIT_SEEN_PAUSE_SECONDS)
        return False

    def signal_all(self, pid, signum):
        """Send `signum` to the run's process and everything it started, whatever its
        process group or session: kill(-1) in a namespace where this zygote (or M) is
        PID 1, else every descendant of this subreaper, twice, for a fork in flight."""
        for _ in range(2):
            if self.pid1:
                try:
                    os.kill(-1, signum)
                except OSError:
                    pass
                continue
            todo = [os.getpid()]
            seen = set()
            while todo:
                for child in children_of(todo.pop()):
                    if child not in seen:
                        seen.add(child)
                        todo.append(child)
            for child in seen | {pid}:
                try:
                    os.kill(child, signum)
                except OSError:
                    pass

    def kill(self, pid):
        """SIGKILL the run's process and its process group. True if it was alive (it
        stays unreaped: `watch` collects its status)."""
        try:
            alive = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:
            alive = False
        for kill, target in ((os.kill, pid), (os.killpg, pid)):
            try:
                kill(target, signal.SIGKILL)
            except OSError:
                pass
        return alive

    def reset(self, serial):
        """Make what the run could write fresh for the next one. With per-run namespaces
        there is nothing to do (the run's tmpfs mounts died with it); otherwise the
        scratch base is emptied and checked, in a child of Z: the names a run gave its
        files (tenant data, often) would stay in Z's freed memory, and every later run's
        process is a copy of Z."""
        if self.plan.fresh == FRESH_NAMESPACES:
            return True
        # The usual case, without reading a name: the run's own directory was all it
        # left (rmdir fails on anything in it) and the scratch filesystem, ours alone,
        # has exactly as many inodes in use as when it was clean.
        if self.clean_inodes is not None:
            try:
                os.rmdir(scratch_path(self.base, serial))
                if self.free_inodes() == self.clean_inodes:
                    return True
            except OSError:
                pass
        ok = in_child(self.scrub, serial)
        if ok:
            self.measure_clean()
        return ok

    def measure_clean(self):
        """Free inodes of the scratch filesystem (and of each scrubbed directory, a
        filesystem of its own too) when clean, if it is the worker's own."""
        self.clean_inodes = None
        if self.plan.private_scratch_fs and self.plan.own_scratch:
            self.clean_inodes = self.free_inodes()

    def free_inodes(self):
        counts = []
        for path in [self.base] + self.plan.scrubbed_dirs:
            try:
                st = os.statvfs(path)
            except OSError:
                return None
            if not st.f_files:
                return None
            counts.append(st.f_ffree)
        return tuple(counts)

    def scrub(self, serial):
        # Every scrubbed directory, whatever the first one's result: each must be clean.
        shared = [wipe_dir(path) for path in self.plan.scrubbed_dirs]
        if not all(shared):
            return False
        if self.plan.own_scratch:
            return wipe_dir(self.base)
        own = scratch_path(self.base, serial)
        if os.path.lexists(own):
            remove_tree(own)
        return not os.path.lexists(own)


def in_child(fn, *args):
    """True when fn(*args), run in a forked child, returned a true value. Nothing fn
    reads enters this process's memory, and a failure of fn (a tree deeper than its
    recursion) is a False, not this process's end."""
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            ok = bool(fn(*args))
        except BaseException:
            pass
        finally:
            _os_exit(0 if ok else 1)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# /proc/<pid>/stat, fields counted from the state (field 3 of proc(5)) on.
STAT_STATE = 0
STAT_FLAGS = 6
STAT_VSIZE = 20
STAT_START_CODE = 23
STAT_EXIT_CODE = 49
PF_EXITING = 0x4
# How often, and how far apart, Z looks for the exit of a run that closed its pipes (it
# exits microseconds after; a process still running after this is left to its deadline).
EXIT_SEEN_TRIES = 5
EXIT_SEEN_PAUSE_SECONDS = 0.0002


def open_pidfd(pid):
    """A pidfd for `pid`, or None (a kernel before 5.3, or a Python without it)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def stat_path_of(pidfd):
    """The /proc/<pid>/stat of the process of `pidfd`, as this process's /proc numbers
    it, or None."""
    pid = fdinfo_field(pidfd, b"Pid:")
    return "/proc/%d/stat" % pid if pid is not None and pid > 0 else None


def read_stat(path):
    """The fields of a /proc/<pid>/stat after the command, the state first (bytes, the
    rest ints), or None when the process is gone."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rindex(b")") + 2:].split()
    if len(rest) <= STAT_EXIT_CODE:
        return None
    return [rest[0]] + [int(x) for x in rest[1:]]


def reap(pid):
    """The wait status of `pid` if it has ended (reaping it), else None."""
    while True:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except InterruptedError:
            continue
        except ChildProcessError:
            # Already reaped elsewhere: never report that as a success.
            return signal.SIGKILL
        return status if got else None


def remove_tree(path):
    for _ in range(3):
        _wipe(path, os.lstat(path).st_dev if os.path.lexists(path) else 0)
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            try:
                os.unlink(path)
                return
            except OSError:
                pass


def scratch_path(base, serial):
    # The same name for every run: a number would tell a run how many ran before it.
    return "%s/run" % (base,)


# ---------------------------------------------------------------------------------
# U, a run's process


_run_streams = None


def make_run_streams():
    """sys.stdin, sys.stdout and sys.stderr of a run's process: fds 0 (/dev/null), 1 and
    2 (pipes) wrapped as a run sees them (UTF-8, line-buffered, never closing the fd)."""
    return (
        open(0, "r", closefd=False),
        open(1, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False),
        open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False),
    )


def prepare_run_streams():
    """Build the run's standard streams once, at start-up, so that every run's process
    finds them ready. They are built while fds 1 and 2 are a pipe, as in a run, so the
    io objects learn the same facts about their fds (not seekable, not a tty)."""
    global _run_streams
    r, w = os.pipe()
    saved_stderr = os.dup(2)
    try:
        os.dup2(w, 1)
        os.dup2(w, 2)
        streams = make_run_streams()
    finally:
        os.dup2(saved_stderr, 2)
        os.dup2(0, 1)  # /dev/null again, as main() left it
        for fd in (r, w, saved_stderr):
            os.close(fd)
    _run_streams = streams


def child_failed():
    """A process failed in the harness's own code (not the user's): say why on its
    stderr, so that the status that follows is not a silent mystery."""
    try:
        text = "spr harness: %s" % "".join(traceback.format_exception(*sys.exc_info()))
        write_all(2, text.encode("utf-8", "replace"))
    except BaseException:
        pass


def run_process(plan, isolation, base, serial, req_r, out_w, err_w, res_w, zpid, pid1):
    """A run's process, forked from Z: isolate, wait for the request, run it."""
    global _kernel
    began = time.monotonic()
    reopen_shared_files()
    if not pid1:
        # If Z dies (its worker was killed), the run dies with it; in a namespace the
        # death of M, PID 1, takes every process with it anyway.
        prctl_quiet(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != zpid:
            return 70
    os.setsid()
    # Z and M are not dumpable (nothing of theirs may be read through /proc); the run's
    # own process is, so that it can read its own /proc entries as programs expect.
    # Before the isolation: a process that is not dumpable has its /proc entries owned
    # by root, so an unprivileged run (Docker's uid 65534) could not write its own
    # oom_score_adj. Nothing but this process exists to read it yet (the previous run
    # was swept before it was forked).
    prctl_quiet(PR_SET_DUMPABLE, 1)
    k = kernel()
    try:
        isolation.apply(k)
    except SetupError as exc:
        write_all(res_w, MARK_FAILED + str(exc).encode("utf-8", "replace"))
        return EXIT_SETUP_FAILED
    _kernel = None
    scratch = make_scratch(base, serial)
    writable = (os.path.join(_real_base, os.path.basename(scratch)),) + _writable_roots
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for fd in (devnull, out_w, err_w):
        if fd > 2:
            os.close(fd)
    os.chdir(scratch)
    # The rest of the environment was made clean once, at start-up (`clean_environ`).
    environ = os.environ
    environ["HOME"] = scratch
    environ["TMPDIR"] = scratch
    # matplotlib's config and font cache: in the run's own scratch, fresh for each run
    # (HOME is there too, but a run may change HOME before it imports matplotlib).
    environ["MPLCONFIGDIR"] = os.path.join(scratch, ".matplotlib")
    tempfile.tempdir = scratch
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.stdin, sys.stdout, sys.stderr = _run_streams or make_run_streams()
    sys.__stdout__ = sys.stdout
    sys.__stderr__ = sys.stderr
    sys.argv = ["<user_code>"]
    # `import __main__` must give the user's namespace, not this module.
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    reseed_preloaded()
    # The harness's module globals as they are before any request: restored after user
    # code (see `execute`). Taken here, while the process waits, with the warm-up.
    snapshot = dict(globals())
    warm_run_path()
    write_all(res_w, MARK_ARMED + struct.pack("<Q", int((time.monotonic() - began) * 1e6)))
    prefault(k, req_r)

    # Ready: wait for the request. End of stream means M discarded this process.
    body = read_frame_bytes(req_r)
    if body is None:
        return 0
    request = _loads(body.decode("utf-8"))
    del body
    is_cell = request.get("type") == "cell"
    if not is_cell:
        os.close(req_r)
    policy = request["policy"]
    deadline = time.monotonic() + float(policy.get("timeout_seconds", 5))
    prepared = prepared_for(policy, plan)
    refused = False
    if isolation.process_filter is not None and (prepared.denied.processes or prepared.denied.os):
        # Libraries may import _posixsubprocess (its fork_exec raises no audit event):
        # from here on the kernel refuses exec and fork, whoever asks.
        try:
            isolation.refuse_processes(k)
            refused = True
        except OSError as exc:
            write_all(res_w, encode_report({
                "outcome": "exception",
                "error": "spr: the kernel's refusal of processes could not be installed: %s" % exc,
            }))
            return EXIT_SETUP_FAILED
    k = None
    if is_cell:
        return serve_session(plan, request, req_r, res_w, scratch, writable, main, prepared, refused)
    apply_rlimits(prepared.rlimits)
    collect = request.get("collect") or ()
    ident = None
    try:
        # Before the audit hook and user code; the run's rlimits already apply.
        write_files(scratch, request.get("files"))
        ident = open_scratch_ident(scratch) if collect else None
    except (AttachmentError, OSError) as exc:
        report, status = {"outcome": "exception", "error": "FileError: %s" % exc}, 1
    else:
        report, status = execute(
            request.get("code", ""), request.get("input_data"), policy, prepared, writable, main,
            refused, snapshot,
        )
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    try:
        data = encode_report(report)
    except MemoryError:
        data = b'{"outcome":"memory_error"}'
    try:
        if report.get("outcome") != "memory_error" and (collect or "matplotlib.pyplot" in _sys_modules):
            data = attach_outputs(data, scratch, ident, collect, deadline)
    except BaseException as exc:
        # User state (a patched module, a hostile figure) cannot cost the report; the
        # caller is told what it lost.
        note_lost_attachments(exc)
    try:
        write_all(res_w, data)
    except OSError:
        pass
    let_go_of_pipes(res_w)
    return status


def let_go_of_pipes(res_w):
    """Close this process's ends of M's pipes once its report is written, before it
    exits: M sees them end at once, not after the kernel has taken the process's address
    space down (milliseconds for a copy of a zygote with large preloaded modules), and
    asks Z whether the process is past the point of no return of its exit (see
    `Zygote.report_exit_seen`). A copy of a pipe kept elsewhere (a `dup`, a child process) keeps
    it open, and the run ends as any other. Plain closes, bound at start-up: nothing
    here may be judged by the audit hook or replaced by user code."""
    for fd in (1, 2, res_w):
        try:
            _close(fd)
        except OSError:
            pass


def serve_session(plan, request, req_r, res_w, scratch, writable, main, prepared, refused):
    """A session's process: one cell after another in the same globals, until M closes
    the request pipe. Between cells SIGINT is ignored, so an interrupt meant for a cell
    that had just finished cannot reach the next one (M waits for Z's word that the
    signal was sent before it reports the cell). Each cell's files are written into the
    session's scratch (they stay there), its `collect` globs and open figures returned."""
    _set_signal(_SIGINT, _SIG_IGN)
    policy = request["policy"]
    # The CPU-time rlimit counts the whole process life: a session's cells are bounded by
    # their deadlines and the session by its idle TTL instead.
    cpu = getattr(resource, "RLIMIT_CPU", None)
    apply_rlimits(tuple((w, v) for w, v in prepared.rlimits if w != cpu))
    session = Session(policy, prepared, writable, main, refused)
    timeout = float(policy.get("timeout_seconds", 5))
    while True:
        deadline = _monotonic() + timeout
        collect = request.get("collect") or ()
        report, ident = None, None
        try:
            write_cell_files(scratch, request.get("files"))
            ident = open_scratch_ident(scratch) if collect else None
        except (AttachmentError, OSError) as exc:
            report = {"outcome": "exception", "error": "FileError: %s" % exc, "value": None}
        if report is None:
            report = guarded_cell(session, request)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        try:
            data = encode_report(report)
        except MemoryError:
            data = b'{"outcome":"memory_error"}'
        if report.get("outcome") != "memory_error" and (collect or "matplotlib.pyplot" in sys.modules):
            try:
                data = attach_outputs(data, scratch, ident, collect, deadline)
            except BaseException as exc:
                # User state (a patched module, a hostile figure) cannot cost the report.
                note_lost_attachments(exc)
        if len(data) > MAX_RESULT_BYTES:
            data = _dumps(
                {"outcome": "exception", "error": "The result is larger than the %d MiB limit" % (MAX_RESULT_BYTES >> 20)}
            ).encode("utf-8")
        nonce = str(request.get("cell_nonce", "")).encode("ascii", "replace")
        del report, request
        try:
            write_all(res_w, (len(nonce) + len(data)).to_bytes(4, "big") + nonce + data)
        except OSError:
            return 0
        del data
        body = read_frame_bytes(req_r)
        if body is None:
            return 0
        request = _loads(body.decode("utf-8"))
        del body


def write_cell_files(scratch, files):
    """`write_files` for a later cell: from scratch as the working directory (the audit
    hook, installed by the first cell, judges relative paths from it), then back."""
    if not files:
        return
    previous = None
    try:
        previous = os.getcwd()
    except OSError:
        pass
    os.chdir(scratch)
    try:
        write_files(scratch, files)
    finally:
        if previous is not None:
            try:
                os.chdir(previous)
            except OSError:
                pass


def guarded_cell(session, request):
    """Run one cell with SIGINT raising KeyboardInterrupt, and ignore SIGINT again after
    it, whenever the interrupt lands."""
    report = None
    while True:
        try:
            if report is None:
                _set_signal(_SIGINT, _default_int_handler)
                report = session.cell(request.get("code", ""), request.get("input_data"))
            # Also drops an interrupt that arrived but was not handled yet.
            _set_signal(_SIGINT, _SIG_IGN)
            return report
        except KeyboardInterrupt:
            if report is None:
                report = {"outcome": "exception", "error": "KeyboardInterrupt"}


# What `warm_run_path` feeds the harness's own code: constants, never a caller's data.
WARM_REQUEST = (
    b'{"type":"run","id":0,"code":"result = None","input_data":{},'
    b'"policy":{"timeout_seconds":5,"memory_limit_mb":256}}'
)


def warm_run_path():
    """Walk the harness's request path once with constant data, while the process waits
    for its request: decoding a request, compiling code, encoding a report. The first
    time in a forked process each of these writes to pages it shares with its zygote,
    and each such write copies a page (a few microseconds each, hundreds of them);
    done now, the copies are off the run's latency. Nothing of it is kept."""
    try:
        _loads(WARM_REQUEST.decode("utf-8"))
        compile("result = None\n", "<warm>", "exec")
        encode_report({"outcome": "completed", "result": None})
    except Exception:
        pass  # a warm-up only: the run itself reports whatever fails


# numpy's legacy generator (MT19937): 624 32-bit words of key.
MT19937_KEY_WORDS = 624


def reseed_preloaded():
    """A fork copies random generators with their state: the stdlib's `random`
    reseeds itself in a forked child, numpy's global RandomState does not (it was
    seeded once, when M imported it). Reseeded from the OS in each run's process, so
    runs never share a sequence: a key straight from the OS, with no cached Gaussian,
    which costs a third of `seed()` (that derives its key through numpy's SeedSequence,
    touching pages of numpy a run may never use)."""
    module = sys.modules.get("numpy.random")
    if module is None:
        return
    try:
        numpy = sys.modules["numpy"]
        key = numpy.frombuffer(os.urandom(4 * MT19937_KEY_WORDS), dtype=numpy.uint32)
        module.set_state(("MT19937", key, MT19937_KEY_WORDS, 0, 0.0))
    except Exception:
        try:
            module.seed()
        except Exception:
            pass


# The scratch base and the other writable roots every run has, resolved once at start-up.
_real_base = None
_writable_roots = ()


def resolve_writable_roots(plan, base):
    global _real_base, _writable_roots
    _real_base = os.path.realpath(base)
    roots = []
    if plan.fresh == FRESH_NAMESPACES or plan.own_scratch:
        roots.append(_real_base)
    roots.extend(os.path.realpath(p) for p, _s, _m in plan.tmpfs)
    if plan.fresh != FRESH_NAMESPACES:
        roots.extend(os.path.realpath(p) for p in plan.scrubbed_dirs)
    _writable_roots = tuple(roots)


def make_scratch(base, serial):
    """A fresh, private directory for one run; a random name if the usual one exists."""
    path = scratch_path(base, serial)
    try:
        os.mkdir(path, 0o700)
        return path
    except OSError:
        return tempfile.mkdtemp(prefix="run-", dir=base)


# ---------------------------------------------------------------------------------
# M, the monitor: the protocol with the host, and each run watched from outside


class Capture:
    """Bytes read from one pipe, kept up to a cap, the rest counted and dropped."""

    def __init__(self, cap):
        self.cap = cap
        self.parts = []
        self.size = 0
        self.truncated = False

    def feed(self, data):
        room = self.cap - self.size
        if room > 0:
            keep = data[:room]
            self.parts.append(keep)
            self.size += len(keep)
        if len(data) > max(room, 0):
            self.truncated = True

    def data(self):
        return b"".join(self.parts)

    def text(self, limit=None):
        data = self.data()
        truncated = self.truncated
        if limit is not None and len(data) > limit:
            data, truncated = data[:limit], True
        if not data:
            return ""
        if not truncated:
            return data.decode("utf-8", "replace")
        # Cut at a character boundary: an incomplete tail is dropped, not mangled.
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return decoder.decode(data, final=False)


class Run:
    """A run's process as M sees it: its pid and M's ends of its pipes."""

    __slots__ = (
        "pid", "req_w", "out_r", "err_r", "res_r", "started", "unsent", "marked", "link",
        "setup_us", "session", "serial",
    )

    def __init__(self, pid, fds, link=None, serial=0):
        self.pid = pid
        self.link = link
        # Its zygote's number for it: unlike its pid (every run's process is pid 2 of
        # its zygote's namespace), never the same for two runs of one zygote.
        self.serial = serial
        self.req_w, self.out_r, self.err_r, self.res_r = fds
        os.set_blocking(self.req_w, False)
        self.started = None
        self.unsent = None
        self.marked = False  # its "armed" marker was already read
        self.setup_us = None
        # A session's process: its request pipe stays open for the next cell.
        self.session = False

    def deliver(self, body):
        """Start the run: the clock starts and the request frame goes down the process's
        non-blocking request pipe, in one write for a usual request; the rest of a large
        one is written by the run loop, under the run's deadline."""
        self.started = time.monotonic()
        self.unsent = memoryview(len(body).to_bytes(4, "big") + body)
        self.send_more()

    def send_more(self):
        try:
            self.unsent = self.unsent[_os_write(self.req_w, self.unsent):]
        except BlockingIOError:
            pass
        except OSError:  # the process is gone; its end shows in the run's status
            self.unsent = self.unsent[:0]
        if not self.unsent and not self.session:
            os.close(self.req_w)
            self.req_w = None

    def sending(self):
        return bool(self.unsent)

    def close(self):
        for name in ("req_w", "out_r", "err_r", "res_r"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)


class WorkerBroken(Exception):
    """The worker cannot serve another run (M writes a fatal frame and exits)."""


class HostGone(Exception):
    """The host closed the protocol: stop everything."""


# How the host's run requests begin (serde writes the tag first).
RUN_FRAME_PREFIX = b'{"type":"run",'


class ZygoteLink:
    """M's side of one zygote: its pid and socket."""

    __slots__ = ("pid", "sock", "ending", "gone")

    def __init__(self, pid, sock):
        self.pid = pid
        self.sock = sock
        # It reported a run whose writes it could not make fresh: it stops after that
        # report, and its end of the socket closing is then expected.
        self.ending = False
        self.gone = False


class Monitor:
    """M: the frame protocol with the host, and each run watched from outside.

    With several zygotes (each PID 1 of a PID namespace of its own), the next run's
    process is forked by another zygote while a run executes, so it is ready before it
    is needed; runs of different zygotes share no PID, mount or IPC namespace and no
    Landlock domain, and a zygote forks its next run's process only once its own last
    run is swept."""

    def __init__(self, rfd, wfd, zygotes, isolation):
        self.rfd = rfd
        self.wfd = wfd
        self.zygotes = zygotes
        self.by_fd = {z.sock.fileno(): z for z in zygotes}
        self.isolation = isolation
        self.ready = []  # handed-over run processes, oldest first
        # (zygote pid, run serial) -> parsed X message that arrived before it was awaited
        self.exits = {}
        self.broken = None
        # The session's process, once a cell made it (a worker hosts at most one session;
        # the host gives a session a worker of its own).
        self.session = None
        self.interrupts = set()  # (zygote pid, run serial) whose SIGINT Z confirmed

    # -- messages from the zygotes

    def handle_zygote_message(self, link):
        text, fds = recv_message(link.sock)
        if not text:
            if link.ending:
                # The worker retires with the report of that zygote's last run.
                link.gone = True
                return
            raise WorkerBroken("a zygote exited")
        if text.startswith("R "):
            if len(fds) != 4:
                for fd in fds:
                    os.close(fd)
                raise WorkerBroken("the zygote sent a run without its descriptors")
            _r, pid, serial = text.split()
            self.ready.append(Run(int(pid), fds, link, int(serial)))
            return
        for fd in fds:
            os.close(fd)
        if text.startswith("I "):
            self.interrupts.add((link.pid, int(text.split()[1])))
            return
        if text.startswith("X "):
            parts = text.split()
            pid, serial = int(parts[1]), int(parts[2])
            info = {
                "status": int(parts[3]),
                "at": float(parts[4]),
                "killed": parts[5] == "1",
                "leftovers": int(parts[6]),
                "reset": parts[7] == "1",
            }
            link.ending = not info["reset"]
            key = (link.pid, serial)
            for failed in [r for r in self.ready if r.serial == serial and r.link is link]:
                # A process that died waiting for its request: find out why.
                self.ready.remove(failed)
                reason = setup_failure(failed)
                failed.close()
                if reason:
                    self.broken = reason
                return
            self.exits[key] = info
            return
        raise WorkerBroken("the zygote sent %r" % text[:40])

    def pump(self, timeout):
        """Handle the zygotes' messages for at most `timeout` seconds."""
        # poll, not select: a descriptor number past 1023 is not an error for it.
        poller = select.poll()
        for z in self.zygotes:
            if not z.gone:
                poller.register(z.sock.fileno(), select.POLLIN)
        for fd, _ev in poller.poll(max(timeout, 0) * 1000.0):
            self.handle_zygote_message(self.by_fd[fd])

    def wait_ready(self):
        """The next run's process, once a zygote has handed one over."""
        deadline = time.monotonic() + ZYGOTE_ANSWER_SECONDS
        while not self.ready:
            if self.broken:
                raise WorkerBroken(self.broken)
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerBroken("the zygote did not hand over a run's process in time")
            self.pump(left)
        return self.ready.pop(0)

    # -- the loop

    def serve(self, harden):
        try:
            first = self.wait_ready()
            reason = wait_armed(first, ZYGOTE_ANSWER_SECONDS)
            if reason is not None:
                raise WorkerBroken("the isolation of a run failed: %s" % reason)
            self.ready.insert(0, first)
        except WorkerBroken as exc:
            write_frame(self.wfd, {"type": "fatal", "message": str(exc)})
            return 3
        write_frame(
            self.wfd,
            {
                "type": "hello",
                "protocol_version": PROTOCOL_VERSION,
                "harness_hash": harness_hash(),
                "python_version": "%d.%d.%d" % sys.version_info[:3],
                "pid": os.getpid(),
                "isolation": self.isolation.summary(),
                "preload": _preload_cost,
                "base_data_kb": _base_data_kb,
                "memory": _memory_layout,
            },
        )
        harden()
        try:
            return self.loop()
        except HostGone:
            return 0
        except WorkerBroken as exc:
            try:
                write_frame(self.wfd, {"type": "fatal", "message": str(exc)})
            except OSError:
                pass
            return 4
        finally:
            self.stop()

    def loop(self):
        socks = [z.sock for z in self.zygotes]
        while True:
            ready, _, _ = select.select([self.rfd] + socks, [], [])
            if self.rfd not in ready:
                for sock in ready:
                    self.handle_zygote_message(self.by_fd[sock.fileno()])
                continue
            try:
                body = read_frame_bytes(self.rfd)
            except ValueError as exc:
                write_frame(self.wfd, {"type": "fatal", "message": "bad request frame: %s" % exc})
                return 3
            if body is None:
                return 0
            run = None
            if body.startswith(RUN_FRAME_PREFIX):
                # The host's run requests start so: hand the frame over at once and
                # decode it here while the run's process does the same.
                run = self.wait_ready()
                run.deliver(body)
            try:
                message = _loads(body.decode("utf-8"))
                if not isinstance(message, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                write_frame(self.wfd, {"type": "fatal", "message": "bad request frame: %s" % exc})
                return 3
            kind = message.get("type")
            if kind == "cell" and run is None:
                del body
                write_frame(self.wfd, self.cell(message))
                continue
            if kind != "run":
                if run is not None:  # not a run after all: that process is spent
                    self.discard(run)
                if kind == "shutdown":
                    return 0
                write_frame(self.wfd, {"type": "fatal", "message": "unknown message type"})
                return 3
            del body
            if run is None:
                run = self.wait_ready()
                run.deliver(_dumps(message, separators=(",", ":")).encode("utf-8"))
            try:
                report = self.watch(message, run)
            except (WorkerBroken, HostGone):
                raise
            except Exception as exc:  # a bug here must not look like a user error
                raise WorkerBroken("worker failure: %s" % describe(exc))
            write_frame(self.wfd, report)
            if report.get("retire"):
                return 0

    def discard(self, run):
        """A handed-over process that will not run: its zygote kills it and forks the next."""
        send_message(run.link.sock, "K %d" % run.serial)
        run.close()
        self.await_exit(run)

    def await_exit(self, run):
        key = (run.link.pid, run.serial)
        deadline = time.monotonic() + ZYGOTE_ANSWER_SECONDS
        while key not in self.exits:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerBroken("the zygote did not confirm the end of a run")
            self.pump(left)
        return self.exits.pop(key)

    def stop(self):
        for z in self.zygotes:
            try:
                send_message(z.sock, "Q")
            except OSError:
                pass
        for run in self.ready:
            run.close()
        self.ready = []
        deadline = time.monotonic() + 1.0
        waiting = [z.pid for z in self.zygotes]
        while waiting and time.monotonic() < deadline:
            for pid in list(waiting):
                try:
                    got, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    got = pid
                if got:
                    waiting.remove(pid)
            if waiting:
                time.sleep(0.002)
        for pid in waiting:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def run_poller(self, run, fds):
        """The poll set of a run being watched: its pipes `fds`, the zygotes, the host's
        end (no events asked: poll still reports POLLHUP, i.e. the host went away) and the
        request pipe while part of the request is still to be sent."""
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        for z in self.zygotes:
            poller.register(z.sock.fileno(), select.POLLIN)
        poller.register(self.rfd, 0)
        if run.sending():
            poller.register(run.req_w, select.POLLOUT)
        return poller

    def common_event(self, fd, ev, run, poller):
        """Handle what every watch handles alike (the host hanging up, a zygote's message,
        room in the request pipe); False for an event of the run's own pipes."""
        if fd == self.rfd:
            if ev & (select.POLLHUP | select.POLLERR):
                raise HostGone()
        elif fd in self.by_fd:
            link = self.by_fd[fd]
            self.handle_zygote_message(link)
            if link.gone:
                poller.unregister(fd)
        elif fd == run.req_w:
            run.send_more()
            if not run.sending():
                poller.unregister(fd)
        else:
            return False
        return True

    def cell(self, message):
        """One cell of the worker's session: its process is taken for the first cell and
        kept, with its namespace and globals, for the next ones."""
        run = self.session
        stale = False
        if run is None:
            run = self.wait_ready()
            run.session = True
            self.session = run
        else:
            # Bytes waiting before the cell begins were written by the code, not by a
            # harness: the session's reports could no longer be trusted to be its own.
            ready, _, _ = select.select([run.res_r], [], [], 0)
            stale = bool(ready)
            send_message(run.link.sock, "U")
        # Each cell's frame must carry the nonce of its own request: a frame the code
        # wrote ahead (on its result pipe, from a thread that outlived its cell) cannot
        # pass for a later cell's.
        nonce = os.urandom(CELL_NONCE_LEN // 2).hex().encode("ascii")
        message["cell_nonce"] = nonce.decode("ascii")
        run.deliver(_dumps(message, separators=(",", ":")).encode("utf-8"))
        try:
            report = self.watch_cell(message, run, nonce, stale)
        except (WorkerBroken, HostGone):
            raise
        except Exception as exc:  # a bug here must not look like a user error
            raise WorkerBroken("worker failure: %s" % describe(exc))
        if report["session_lost"]:
            run.close()
            self.session = None
        else:
            send_message(run.link.sock, "P")
        return report

    def watch_cell(self, request, run, nonce, stale=False):
        """Watch a session's cell until its result frame arrives (the process lives on)
        or the process ends (the session is lost). Past the deadline the cell is
        interrupted; past the grace after that, the process is killed."""
        policy = request["policy"]
        timeout = float(policy.get("timeout_seconds", 5))
        cap = min(int(policy.get("max_output_kb", 128)) * 1024, MAX_CAPTURE_BYTES)
        deadline = run.started + timeout
        streams = {run.out_r: Capture(cap), run.err_r: Capture(cap)}
        frame = CellFrame(run, nonce)
        frame.broken = stale
        poller = self.run_poller(run, (run.out_r, run.err_r, run.res_r))
        key = (run.link.pid, run.serial)
        exit_info = self.exits.pop(key, None)
        interrupted = killed = None
        while exit_info is None and frame.body is None:
            now = time.monotonic()
            if interrupted is None and now >= deadline:
                send_message(run.link.sock, "I %d" % run.serial)
                interrupted = now
            if killed is None and (
                frame.broken or (interrupted is not None and now >= interrupted + CELL_INTERRUPT_GRACE_SECONDS)
            ):
                send_message(run.link.sock, "K %d" % run.serial)
                killed = now
            if killed is not None:
                if now - killed > ZYGOTE_ANSWER_SECONDS:
                    raise WorkerBroken("the zygote did not confirm killing a session")
                limit = 0.05
            elif interrupted is not None:
                limit = interrupted + CELL_INTERRUPT_GRACE_SECONDS - now
            else:
                limit = deadline - now
            try:
                events = poller.poll(max(limit, 0) * 1000.0)
            except InterruptedError:
                continue
            for fd, ev in events:
                if self.common_event(fd, ev, run, poller):
                    if exit_info is None and key in self.exits:
                        exit_info = self.exits.pop(key)
                else:
                    try:
                        data = os.read(fd, READ_CHUNK)
                    except OSError:
                        data = b""
                    if not data:
                        poller.unregister(fd)
                    elif fd == run.res_r:
                        frame.feed(data)
                    else:
                        streams[fd].feed(data)
        if exit_info is None:
            ended = frame.at
            if interrupted is not None:
                # The signal must be delivered before the report lets the next cell
                # start, or it would interrupt that cell instead.
                wait_until = time.monotonic() + ZYGOTE_ANSWER_SECONDS
                while key not in self.interrupts:
                    if time.monotonic() > wait_until:
                        raise WorkerBroken("the zygote did not confirm interrupting a session")
                    self.pump(wait_until - time.monotonic())
            drain_streams(streams, CELL_DRAIN_BYTES, CELL_DRAIN_SECONDS)
        else:
            ended = exit_info["at"]
            drain_streams(streams, MAX_CAPTURE_BYTES, DRAIN_GRACE_SECONDS)
        self.interrupts.discard(key)
        out, err = streams[run.out_r], streams[run.err_r]
        body = frame.body
        report = {
            "type": "report",
            "id": request.get("id", 0),
            "exit_code": None,
            "signal": None,
            "timed_out": interrupted is not None or ended >= deadline,
            "duration_ms": (max(ended, run.started) - run.started) * 1000.0,
            "stdout": out.text(),
            "stderr": err.text(),
            "stdout_truncated": out.truncated,
            "stderr_truncated": err.truncated,
            "child_frame": body.decode("utf-8", "replace") if body is not None else None,
            "child_frame_overflow": frame.overflow,
            "leftover_processes": 0,
            "retire": False,
            "setup_us": run.setup_us,
            "cell": True,
            "session_lost": exit_info is not None,
        }
        run.setup_us = None  # paid once, by the session's first cell
        if exit_info is not None:
            status = exit_info["status"]
            if os.WIFSIGNALED(status):
                report["signal"] = os.WTERMSIG(status)
            else:
                report["exit_code"] = os.WEXITSTATUS(status)
            # Killed for writing what no harness writes on its result pipe: that is not
            # a timeout, whatever the kill looks like.
            refused = frame.broken and not stale
            report["timed_out"] = report["timed_out"] or (exit_info["killed"] and not refused)
            report["frame_refused"] = refused
            report["leftover_processes"] = exit_info["leftovers"]
            report["retire"] = not exit_info["reset"]
        return bounded(report, out, err)

    def watch(self, request, run):
        """Watch `run` (its request delivered) to its end; return the report."""
        policy = request["policy"]
        timeout = float(policy.get("timeout_seconds", 5))
        cap = min(int(policy.get("max_output_kb", 128)) * 1024, MAX_CAPTURE_BYTES)
        started = run.started
        deadline = started + timeout
        outputs = {
            run.out_r: Capture(cap),
            run.err_r: Capture(cap),
            run.res_r: Capture(MAX_RESULT_BYTES + ARMED_LEN),  # the marker too
        }
        poller = self.run_poller(run, outputs)
        key = (run.link.pid, run.serial)
        open_fds = set(outputs)
        exit_info = None
        kill_sent = None
        asked_exit = False
        drain_deadline = None
        while True:
            now = time.monotonic()
            if exit_info is None:
                if (
                    not open_fds and not asked_exit and kill_sent is None and now < deadline
                    and outputs[run.res_r].size > (0 if run.marked else ARMED_LEN)
                ):
                    # Report written and every pipe closed: the run is likely exiting.
                    send_message(run.link.sock, "E %d" % run.serial)
                    asked_exit = True
                if kill_sent is None and now >= deadline:
                    send_message(run.link.sock, "K %d" % run.serial)
                    kill_sent = now
                if kill_sent is not None and now - kill_sent > ZYGOTE_ANSWER_SECONDS:
                    raise WorkerBroken("the zygote did not confirm killing a run")
                limit = deadline - now if kill_sent is None else 0.05
            else:
                if not open_fds:
                    break
                if drain_deadline is None:
                    drain_deadline = now + DRAIN_GRACE_SECONDS
                if now >= drain_deadline:
                    break
                limit = drain_deadline - now
            try:
                events = poller.poll(max(limit, 0) * 1000.0)
            except InterruptedError:
                continue
            for fd, ev in events:
                if self.common_event(fd, ev, run, poller):
                    if exit_info is None and key in self.exits:
                        exit_info = self.exits.pop(key)
                elif fd in open_fds:
                    try:
                        data = os.read(fd, READ_CHUNK)
                    except OSError:
                        data = b""
                    if data:
                        outputs[fd].feed(data)
                    else:
                        open_fds.discard(fd)
                        poller.unregister(fd)
        if run.req_w is not None:
            try:
                poller.unregister(run.req_w)
            except KeyError:
                pass
        out, err, res = outputs[run.out_r], outputs[run.err_r], outputs[run.res_r]
        run.close()
        return build_report(request, run, exit_info, deadline, out, err, res)


class CellFrame:
    """The result pipe of a session's process: its "armed" marker (first cell only),
    then one frame per cell, a 4-byte big-endian length and the JSON."""

    def __init__(self, run, nonce):
        self.run = run
        self.nonce = nonce
        self.buf = bytearray()
        self.body = None
        self.at = None
        self.overflow = False
        self.broken = False  # the process wrote something no harness writes: kill it

    def feed(self, data):
        if self.body is not None or self.broken:
            return
        self.buf += data
        run = self.run
        if not run.marked:
            if self.buf[:1] == MARK_FAILED:
                raise WorkerBroken(
                    "the isolation of a run failed: %s" % bytes(self.buf[1:]).decode("utf-8", "replace")
                )
            if len(self.buf) < ARMED_LEN:
                return
            if self.buf[:1] != MARK_ARMED:
                self.broken = True
                return
            run.marked = True
            run.setup_us = struct.unpack("<Q", bytes(self.buf[1:ARMED_LEN]))[0]
            del self.buf[:ARMED_LEN]
        if len(self.buf) < 4:
            return
        length = int.from_bytes(self.buf[:4], "big")
        if length > MAX_RESULT_BYTES + CELL_NONCE_LEN:
            # The harness never writes one: user code wrote on the pipe itself.
            self.overflow = self.broken = True
            self.buf = bytearray()
            return
        if len(self.buf) > 4 + length:
            # More than one frame: the code wrote on the pipe itself.
            self.broken = True
            self.buf = bytearray()
            return
        if len(self.buf) == 4 + length:
            body = bytes(self.buf[4:])
            self.buf = bytearray()
            if length < CELL_NONCE_LEN or body[:CELL_NONCE_LEN] != self.nonce:
                self.broken = True
                return
            self.body = body[CELL_NONCE_LEN:]
            self.at = time.monotonic()


def drain_streams(streams, most, seconds):
    """Read what the pipes hold now (at most `most` bytes each, for at most `seconds`)."""
    until = time.monotonic() + seconds
    for fd, capture in streams.items():
        got = 0
        while got < most:
            left = until - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(left, 0))
            if not ready:
                break
            try:
                data = os.read(fd, READ_CHUNK)
            except OSError:
                break
            if not data:
                break
            capture.feed(data)
            got += len(data)


def wait_armed(run, timeout):
    """Read the marker a new run's process writes once it is isolated. None when armed,
    else the reason its isolation failed."""
    ready, _, _ = select.select([run.res_r], [], [], timeout)
    if not ready:
        return "the run's process did not finish its set-up in time"
    data = os.read(run.res_r, ARMED_LEN)
    if data[:1] == MARK_ARMED and len(data) == ARMED_LEN:
        run.marked = True
        run.setup_us = struct.unpack("<Q", data[1:])[0]
        return None
    rest = data[1:]
    if data[:1] == MARK_FAILED:
        try:
            os.set_blocking(run.res_r, False)
            rest += os.read(run.res_r, 4096)
        except OSError:
            pass
    return rest.decode("utf-8", "replace") or "the run's process exited during its set-up"


def setup_failure(run):
    """Why a process that died before its request failed its set-up, or None."""
    try:
        os.set_blocking(run.res_r, False)
        data = os.read(run.res_r, 4096)
    except OSError:
        data = b""
    if run.marked or data.startswith(MARK_ARMED):
        return None  # it was armed: killed from outside (e.g. the OOM killer)
    if data.startswith(MARK_FAILED):
        return "the isolation of a run failed: %s" % data[1:].decode("utf-8", "replace")
    return "a run's process died during its set-up"


def build_report(request, run, exit_info, deadline, out, err, res):
    """The report of one run, from what M and Z observed (never from the run's word,
    except its result frame, which the host checks against the status)."""
    frame = res.data()
    if not run.marked:
        if frame.startswith(MARK_ARMED) and len(frame) >= ARMED_LEN:
            run.setup_us = struct.unpack("<Q", frame[1:ARMED_LEN])[0]
            frame = frame[ARMED_LEN:]
        elif frame.startswith(MARK_FAILED):
            raise WorkerBroken(
                "the isolation of a run failed: %s" % frame[1:].decode("utf-8", "replace")
            )
        else:
            raise WorkerBroken("a run's process died during its set-up")
    overflow = res.truncated or len(frame) > MAX_RESULT_BYTES
    exit_code = signum = None
    timed_out = False
    leftovers = 0
    reset = True
    if exit_info is not None:
        status = exit_info["status"]
        if os.WIFSIGNALED(status):
            signum = os.WTERMSIG(status)
        else:
            exit_code = os.WEXITSTATUS(status)
        # Alive at the deadline (killed for it, or seen ending only after it): a timeout.
        timed_out = exit_info["killed"] or exit_info["at"] >= deadline
        leftovers = exit_info["leftovers"]
        reset = exit_info["reset"]
        ended = exit_info["at"]
    else:
        ended = time.monotonic()
    report = {
        "type": "report",
        "id": request.get("id", 0),
        "exit_code": exit_code,
        "signal": signum,
        "timed_out": timed_out,
        "duration_ms": (max(ended, run.started) - run.started) * 1000.0,
        "stdout": out.text(),
        "stderr": err.text(),
        "stdout_truncated": out.truncated,
        "stderr_truncated": err.truncated,
        "child_frame": frame.decode("utf-8", "replace") if frame and not overflow else None,
        "child_frame_overflow": overflow,
        "leftover_processes": leftovers,
        "retire": not reset,
        "setup_us": run.setup_us,
    }
    return bounded(report, out, err)


def bounded(report, out, err):
    """Cut a report down until it fits the host's frame limit: the output first (the
    captures are the bulk, and the run said it was truncated), then, only if the result
    alone still cannot fit, the result frame (reported as an oversized result)."""
    size = len(_dumps(report, separators=(",", ":")))
    limit = max(out.size, err.size)
    while size > MAX_REPORT_BYTES and limit > 0:
        limit //= 2
        report["stdout"] = out.text(limit)
        report["stderr"] = err.text(limit)
        report["stdout_truncated"] = out.truncated or out.size > limit
        report["stderr_truncated"] = err.truncated or err.size > limit
        size = len(_dumps(report, separators=(",", ":")))
    if size > MAX_REPORT_BYTES and report["child_frame"] is not None:
        report["child_frame"] = None
        report["child_frame_overflow"] = True
    return report


def harden_monitor(plan, isolation):
    """M never runs user code and opens nothing after start-up: take away what it does
    not need (best effort; the runs' own isolation is what is promised)."""
    k = kernel()
    ll = isolation.landlock
    if ll is not None and ll["fs"]:
        try:
            ruleset = k.landlock_ruleset(k.prepared_ruleset(ll["abi"], ll["fs"], ll["net"], 0))
            try:
                k.landlock_restrict_self(ruleset)
            finally:
                os.close(ruleset)
        except OSError:
            pass
    if plan.caps:
        try:
            k.drop_capabilities(isolation.bounding)
        except OSError:
            pass


try:
    import resource
except ImportError:  # not POSIX: no rlimits to apply
    resource = None


def sandbox_knobs(policy):
    sb = policy.get("sandbox") or {}
    return (
        int(sb.get("max_processes") or DEFAULT_MAX_PROCESSES),
        int(sb.get("max_file_size_mb") or DEFAULT_MAX_FILE_SIZE_MB),
        int(sb.get("max_open_files") or DEFAULT_MAX_OPEN_FILES),
    )


MIB = 1024 * 1024
# Address space a run may map beyond its memory limit: the code and read-only data of
# the libraries it loads, and the guard gaps between their segments (numpy, pandas,
# matplotlib and scipy map some 160 MiB of it). Memory itself is RLIMIT_DATA.
ADDRESS_SPACE_HEADROOM_MB = 256


def ceil_mib(kb):
    """KiB in whole MiB, rounded up (as the host's receipt rounds them)."""
    return -(-kb // 1024)


def rlimit_plan(policy, plan):
    """The (resource, limit) pairs of a run under `policy`, clamped to the hard limits
    the run's process inherits from the worker.

    `memory_limit_mb` is the run's RLIMIT_DATA: the private writable memory its code may
    map (heap, arrays, thread stacks) on top of what the interpreter, this harness and
    the preloaded modules hold when it starts; that is what it can take from the host. An
    address-space limit of that size (the original's) would also count the code of
    every library loaded and the address space libraries reserve without touching, so
    that pandas and a matplotlib drawing would not fit in 256 MiB. RLIMIT_AS stays, as a
    backstop `ADDRESS_SPACE_HEADROOM_MB` above the policy's memory (and the preload's
    address space): it bounds the shared mappings RLIMIT_DATA does not count."""
    if resource is None:
        return ()
    mem = int(policy.get("memory_limit_mb", 256)) * MIB
    timeout = int(policy.get("timeout_seconds", 5))
    max_processes, max_file_mb, max_files = sandbox_knobs(policy)
    # Every run's process is forked with the interpreter, this harness and the preloaded
    # modules mapped: the policy's memory is what the run may allocate on top of them.
    data_kb, vm_kb = _base_data_kb, 0
    if _preload_cost is not None:
        data_kb += _preload_cost["data_kb"]
        vm_kb += _preload_cost["vm_kb"]
    data = mem + ceil_mib(data_kb) * MIB
    space = mem + (ADDRESS_SPACE_HEADROOM_MB + ceil_mib(vm_kb)) * MIB
    limits = [
        (resource.RLIMIT_DATA, data),
        (resource.RLIMIT_AS, space),
        (resource.RLIMIT_CORE, 0),
        # CPU time: a backstop behind the wall-clock deadline the worker enforces.
        (resource.RLIMIT_CPU, timeout + 1),
        (resource.RLIMIT_FSIZE, max_file_mb * 1024 * 1024),
        (resource.RLIMIT_NOFILE, max_files),
    ]
    if plan.nproc:
        # RLIMIT_NPROC counts the tasks of one uid in one user namespace: in the
        # sandbox that is this worker's namespace alone, so the cap is exact. Outside
        # it would count every process of the host user, so it is not set there.
        limits.append((resource.RLIMIT_NPROC, max_processes + namespace_overhead_tasks(plan)))
    if plan.fresh != FRESH_NAMESPACES and hasattr(resource, "RLIMIT_MSGQUEUE"):
        # Without a private IPC namespace per run, a POSIX message queue would outlive
        # the run: none can be created.
        limits.append((resource.RLIMIT_MSGQUEUE, 0))
    plan = []
    for which, value in limits:
        try:
            _soft, hard = resource.getrlimit(which)
        except (ValueError, OSError):
            continue
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        plan.append((which, value))
    return tuple(plan)


def apply_rlimits(plan):
    setrlimit = resource.setrlimit if resource is not None else None
    for which, value in plan:
        try:
            setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


# ---------------------------------------------------------------------------------
# What a policy decides before the code runs


class Prepared:
    """The policy-derived parts of a run: capability switches, rlimits, the builtins
    namespace with its import hook, and the guard's fixed path roots.

    Made in the run's own process from its request's policy, or found ready among the
    policies the operator configured (the plan's `policies`, prepared at start-up, before
    any request): nothing a caller sent is ever prepared outside the run's process."""

    __slots__ = ("policy", "denied", "rlimits", "builtins", "guard")

    def __init__(self, policy, plan):
        self.policy = policy
        self.denied = denied = _Denied(policy)
        self.rlimits = rlimit_plan(policy, plan)
        self.builtins = make_builtins(policy)
        self.guard = guard_plan(policy, denied)


_prepared = []


def prepare_known(plan):
    """At start-up: the operator's policies, so a run under one of them finds it ready."""
    for policy in plan.policies:
        try:
            _prepared.append(Prepared(policy, plan))
        except Exception:
            pass  # a run under it will say what is wrong


def prepared_for(policy, plan):
    for entry in _prepared:
        if entry.policy == policy:
            return entry
    return Prepared(policy, plan)


# ---------------------------------------------------------------------------------
# The guard: a PEP 578 audit hook enforcing the policy's capabilities in the run


class _Denied:
    """Capability switches derived from a policy."""

    def __init__(self, policy):
        allow_mode = policy.get("mode") == "allow"
        allowed = list(policy.get("allowed_imports") or [])
        blocked = list(policy.get("blocked_imports") or [])
        allowed_builtins = set(policy.get("allowed_builtins") or [])
        blocked_builtins = set(policy.get("blocked_builtins") or [])

        def module_blocked(name):
            return (not matches(name, allowed)) if allow_mode else matches(name, blocked)

        def builtin_blocked(name):
            return (name not in allowed_builtins) if allow_mode else (name in blocked_builtins)

        self.os = module_blocked("os") or module_blocked("posix")
        self.processes = module_blocked("subprocess")
        self.network = module_blocked("socket")
        self.native = module_blocked("ctypes")
        self.files = builtin_blocked("open") or self.os
        self.any = self.os or self.processes or self.network or self.native or self.files


# Events that start, replace or signal processes.
_PROCESS_EVENTS = frozenset(
    [
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "subprocess.Popen", "os.startfile", "pty.spawn",
    ]
)
_SIGNAL_EVENTS = frozenset(["os.kill", "os.killpg", "signal.pthread_kill"])
# Events whose path arguments must all lie in a writable root.
_MUTATION_EVENTS = frozenset(
    [
        "os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.link", "os.symlink",
        "os.truncate", "os.chmod", "os.chown", "os.utime", "os.chflags", "os.lchflags",
        "os.lchmod", "os.lchown", "os.setxattr", "os.removexattr", "shutil.rmtree",
        "shutil.move", "shutil.copyfile", "shutil.copymode", "shutil.copystat",
        "shutil.copytree", "shutil.chown", "shutil.make_archive", "shutil.unpack_archive",
        "sqlite3.connect",
    ]
)
_LISTING_EVENTS = frozenset(["os.listdir", "os.scandir", "os.chdir", "glob.glob", "os.getxattr", "os.listxattr"])
# Ways to see or alter the interpreter itself (and so the guard and the harness).
_INTROSPECTION_EVENTS = frozenset(
    [
        "sys.addaudithook", "sys._current_frames", "sys.settrace", "sys.setprofile",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "code.__new__",
        "function.__new__", "sys.remote_exec", "cpython.remote_debugger_script",
    ]
)
_READ_ONLY_EXTRA = (
    "/dev/null", "/dev/zero", "/dev/urandom", "/dev/random", "/usr/share/zoneinfo",
    "/usr/lib/locale", "/usr/share/locale", "/etc/localtime", "/etc/mime.types",
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


_base_read_roots = None


def base_read_roots():
    """The Python installation and a few harmless system files, resolved once in the
    worker so that each run's process inherits them ready."""
    global _base_read_roots
    if _base_read_roots is None:
        roots = set()
        for p in [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]:
            roots.add(os.path.realpath(p))
        for p in sys.path:
            if p:
                roots.add(os.path.realpath(p))
        for p in _READ_ONLY_EXTRA:
            roots.add(os.path.realpath(p))
        _base_read_roots = tuple(sorted(roots))
    return _base_read_roots


def guard_plan(policy, denied):
    """The policy's part of the guard: its switches and its resolved extra paths (None
    when the policy denies nothing the guard enforces)."""
    if not denied.any:
        return None
    sb = policy.get("sandbox") or {}
    realpath = os.path.realpath
    extra_write = frozenset(realpath(str(p)) for p in (sb.get("extra_write_paths") or []))
    extra_read = frozenset(realpath(str(p)) for p in (sb.get("extra_read_paths") or []))
    switches = (denied.os, denied.processes, denied.network, denied.native, denied.files)
    return switches, extra_write, extra_write | extra_read | frozenset(base_read_roots())


def install_guard(plan, writable, processes_refused=False):
    """Add the audit hook for this run (hooks cannot be removed: the run's process
    keeps it until it exits). Everything the hook uses is bound here, privately, so
    patching `os`, `os.path`, `pathlib` or this module cannot make it answer otherwise.
    `writable` are the run's own directories, already resolved; `processes_refused`:
    the kernel refuses exec and fork in this process (the process filter).

    The hook judges what the code does (start a process, open a socket, load or call
    native code, touch files outside scratch), whoever does it: the user's code or a
    library on its behalf. What the user's code may import is the import hook's
    business (`make_import_hook`): a library imports what it needs for itself."""
    if plan is None:
        return False
    # Plain booleans bound in the closure: no object user code could find and flip.
    switches, extra_write, ro_fixed = plan
    deny_os, deny_processes, deny_network, deny_native, deny_files = switches
    # _posixsubprocess.fork_exec raises no audit event: where the kernel does not refuse
    # what it does, the module itself stays out of reach, even of libraries.
    refuse_fork_exec = (deny_processes or deny_os) and not processes_refused
    rw = extra_write.union(writable)
    rw_roots = tuple(sorted(rw))
    ro_roots = tuple(sorted(ro_fixed.union(rw)))

    import pathlib

    path_types = (pathlib.PosixPath, pathlib.PurePosixPath)
    orig_fspath = pathlib.PurePath.__fspath__
    orig_str = pathlib.PurePath.__str__
    getcwd = os.getcwd
    lstat = os.lstat
    readlink = os.readlink
    is_link = stat.S_ISLNK
    getframe = sys._getframe
    bytes_type, str_type, int_type = bytes, str, int
    none = None
    guard_error = PermissionError

    def to_text(p):
        t = type(p)
        if t is str_type:
            return p
        if t is bytes_type:
            return p.decode("utf-8", "surrogateescape")
        # A PathLike is converted twice (here and by the call): only pathlib's own
        # classes, unpatched, are trusted to give the same answer both times.
        if t in path_types and t.__fspath__ is orig_fspath and t.__str__ is orig_str:
            return orig_str(p)
        return none

    def normalize(text):
        if not text.startswith("/"):
            text = getcwd() + "/" + text
        parts = []
        for seg in text.split("/"):
            if seg == "" or seg == ".":
                continue
            if seg == "..":
                if parts:
                    parts.pop()
            else:
                parts.append(seg)
        return parts

    def resolve(text):
        # realpath without Python-level helpers: lstat and readlink are C functions.
        todo = normalize(text)
        done = []
        hops = 0
        while todo:
            seg = todo.pop(0)
            candidate = "/" + "/".join(done + [seg])
            try:
                st = lstat(candidate)
            except OSError:
                done.append(seg)
                done.extend(todo)
                break
            if is_link(st.st_mode):
                hops += 1
                if hops > 40:
                    return none
                target = readlink(candidate)
                if target.startswith("/"):
                    todo = normalize(target) + todo
                    done = []
                else:
                    todo = normalize("/" + "/".join(done) + "/" + target) + todo
                    done = []
            else:
                done.append(seg)
        return "/" + "/".join(done)

    def inside(path, roots):
        for r in roots:
            if r == "/" or path == r or path.startswith(r + "/"):
                return True
        return False

    def check_path(p, roots, verb):
        if p is none or type(p) is int_type:
            return
        text = to_text(p)
        if text is none:
            raise guard_error(
                "%s a path of type %s is blocked by policy (use str or pathlib)" % (verb, type(p).__name__)
            )
        path = resolve(text)
        if path is none or not inside(path, roots):
            where = "only the scratch directory is writable" if roots is rw_roots else "outside the scratch directory and the Python installation"
            raise guard_error("%s '%s' is blocked by policy: %s" % (verb, text, where))

    def deny(event, what):
        raise guard_error("%s is blocked by policy (%s)" % (what, event))

    def hook(event, args):
        if event == "import":
            if refuse_fork_exec and args[0] == "_posixsubprocess":
                raise ImportError("Import '_posixsubprocess' is blocked by policy")
            return
        if event == "open":
            if not deny_files:
                return
            path, mode, flags = args
            if mode is none:
                # os.open: a descriptor from it can anchor *at() calls anywhere, so
                # outside the writable roots only the harmless devices are allowed.
                if type(path) is not int_type and to_text(path) in _READ_ONLY_EXTRA[:4]:
                    return
                check_path(path, rw_roots, "Opening")
                return
            if "w" in mode or "a" in mode or "x" in mode or "+" in mode or (flags & _WRITE_FLAGS):
                check_path(path, rw_roots, "Writing")
            else:
                check_path(path, ro_roots, "Reading")
            return
        if event in _INTROSPECTION_EVENTS:
            deny(event, "Introspecting the interpreter")
        if event == "marshal.loads" or event == "marshal.load":
            # The import system unmarshals cached bytecode; user code may not build
            # code objects from bytes (crafted bytecode can corrupt the interpreter).
            caller = getframe(1)
            if caller is none or not caller.f_code.co_filename.startswith("<frozen importlib"):
                deny(event, "Loading code objects")
            return
        if event.startswith("socket."):
            if deny_network:
                deny(event, "Network access")
            return
        if event.startswith("ctypes."):
            if deny_native:
                # Importing ctypes opens the process itself (`dlopen(NULL)`, for
                # `pythonapi`): nothing new is loaded. Loading a library, every symbol
                # looked up (ctypes.dlsym), every object made at a raw address
                # (ctypes.cdata), string_at and _ctypes.call_function stay refused.
                # CPython raises no event for calls through the pointers ctypes makes
                # at import (memmove, cast): docs/SECURITY.md, "The Python layer alone".
                if event == "ctypes.dlopen" and args and args[0] is none:
                    return
                deny(event, "Native code (ctypes)")
            return
        if event in _PROCESS_EVENTS:
            if deny_processes or deny_os:
                deny(event, "Starting processes")
            return
        if event in _SIGNAL_EVENTS:
            if deny_os:
                deny(event, "Signalling processes")
            return
        if deny_files:
            if event in _MUTATION_EVENTS:
                for a in args:
                    check_path(a, rw_roots, "Changing")
            elif event in _LISTING_EVENTS:
                check_path(args[0] if args else none, ro_roots, "Listing")

    sys.addaudithook(hook)
    return True


def scrub(denied_native, denied_os):
    """Before user code: drop what this process holds that user code should not find."""
    if denied_native:
        for name in ("ctypes", "_ctypes", "ctypes._endian"):
            sys.modules.pop(name, None)
    if denied_os:
        # Signalling by pidfd is not audited: remove the functions from this process.
        for module in (os, sys.modules.get("posix"), signal):
            for name in ("pidfd_open", "pidfd_send_signal"):
                try:
                    delattr(module, name)
                except (AttributeError, TypeError):
                    pass


def _fork_exec_blocked(*args, **kwargs):
    raise PermissionError("Starting processes is blocked by policy (_posixsubprocess.fork_exec)")


def disarm_preloaded(denied):
    """Before user code, where the policy denies processes: `_posixsubprocess.fork_exec`
    starts a process without an audit event, so the guard refuses to load that module
    in a run. A preloaded library may have loaded it in the worker already (pandas
    does, through subprocess), so the run's copy of its function is replaced (in this
    process only; the next run starts from the zygote's, and disarms it again)."""
    if not (denied.processes or denied.os):
        return
    module = sys.modules.get("_posixsubprocess")
    if module is None:
        return
    real = getattr(module, "fork_exec", None)
    module.fork_exec = _fork_exec_blocked
    # Python 3.12+ binds the function in subprocess at import time.
    sp = sys.modules.get("subprocess")
    if sp is not None and real is not None and getattr(sp, "_fork_exec", None) is real:
        sp._fork_exec = _fork_exec_blocked


def run_user_code(compiled, g):
    """exec `compiled` in `g`; return the exception it raised or None.

    User code runs on the main thread (signal handlers, `signal.alarm` work as usual).
    Its frames lead up into this module, as do object-graph walks to any class defined
    here: nothing reachable that way grants a capability the audit hook would not stop,
    the hook's own switches are closure constants out of reach, and the run's status is
    observed by the worker from outside."""
    try:
        exec(compiled, g)
    except BaseException as exc:
        return exc
    return None


def matches(name, entries):
    for entry in entries:
        if name == entry or name.startswith(entry + "."):
            return True
    return False


# The C modules behind a wrapper: a user's code that imports one directly is judged as
# importing the wrapper (libraries import them for themselves, unjudged).
_IMPORT_ALIASES = {
    "_posixsubprocess": "subprocess", "_ctypes": "ctypes", "posix": "os", "_socket": "socket",
}


def make_import_hook(policy):
    allow_mode = policy.get("mode") == "allow"
    allowed = list(policy.get("allowed_imports") or [])
    blocked = list(policy.get("blocked_imports") or [])
    real_import = _real_import
    aliases = _IMPORT_ALIASES

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level:
            raise ImportError("attempted relative import with no known parent package")
        if name == "importlib" or name.startswith("importlib."):
            raise ImportError("Import 'importlib' is blocked by policy")
        if allow_mode:
            if not matches(name, allowed):
                raise ImportError("Import '%s' is not allowed by policy" % name)
        else:
            if matches(name, blocked):
                raise ImportError("Import '%s' is blocked by policy" % name)
            wrapper = aliases.get(name.partition(".")[0])
            if wrapper is not None and matches(wrapper, blocked):
                raise ImportError("Import '%s' is blocked by policy" % name)
            for item in fromlist or ():
                full = "%s.%s" % (name, item)
                if isinstance(item, str) and matches(full, blocked):
                    raise ImportError("Import '%s' is blocked by policy" % full)
        return real_import(name, globals, locals, fromlist, level)

    return guarded_import


def make_builtins(policy):
    source = dict(vars(builtins))
    if policy.get("mode") == "allow":
        keep = set(policy.get("allowed_builtins") or [])
        safe = {k: v for k, v in source.items() if k in keep}
    else:
        drop = set(policy.get("blocked_builtins") or [])
        safe = {k: v for k, v in source.items() if k not in drop}
    # The builtins module's own attributes are not builtins: `__loader__` is the
    # built-in importer (it loads `posix` by name) and `__spec__` points to it.
    for name in ("__loader__", "__spec__", "__package__"):
        safe.pop(name, None)
    safe["__import__"] = make_import_hook(policy)
    return safe


def make_globals(policy, safe_builtins, input_data):
    allow_mode = policy.get("mode") == "allow"
    allowed = set(policy.get("allowed_globals") or [])
    blocked = set(policy.get("blocked_globals") or [])
    g = {
        "__builtins__": safe_builtins,
        "__name__": "__main__",
        "__doc__": None,
        "input_data": input_data,
        "result": None,
    }
    for key, value in (policy.get("extra_globals") or {}).items():
        key = str(key)
        if key in RESERVED_GLOBALS:
            continue
        if (key not in allowed) if allow_mode else (key in blocked):
            continue
        g[key] = value
    for key, value in input_globals(policy, input_data):
        if key not in g:
            g[key] = value
    return g


def input_globals(policy, input_data):
    """The (name, value) pairs of `input_data` that become globals of the code."""
    if not isinstance(input_data, dict):
        return []
    allow_mode = policy.get("mode") == "allow"
    allowed = set(policy.get("allowed_globals") or [])
    blocked = set(policy.get("blocked_globals") or [])
    pairs = []
    for key, value in input_data.items():
        key = str(key)
        if not key.isidentifier() or key in RESERVED_GLOBALS or key.startswith("_"):
            continue
        if (key not in allowed) if allow_mode else (key in blocked):
            continue
        pairs.append((key, value))
    return pairs


def describe(exc):
    # The exception may be of the user's class, with a __str__ that raises.
    try:
        text = str(exc)
    except BaseException:
        text = "<str() of the exception failed>"
    return "%s: %s" % (type(exc).__name__, text)


def print_user_traceback(exc):
    # Only the user's frames and the libraries it called: the harness's own frames
    # (the exec call, the import hook) are noise to the user and a map to an attacker.
    try:
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if f.filename != __file__
        ]
        text = "".join(traceback.format_list(frames))
        if text:
            text = "Traceback (most recent call last):\n" + text
        text += "".join(traceback.format_exception_only(type(exc), exc))
        sys.stderr.write(text)
    except Exception:
        pass


def execute(
    code, input_data, policy, prepared, writable, main, processes_refused=False, snapshot=None
):
    """Run user code in the namespace of module `main`; return (report, exit status).
    `snapshot`: this module's globals as they were before the request (taken now if
    None), restored after user code."""
    g = None
    try:
        try:
            compiled = compile(code, "<user_code>", "exec")
        except (SyntaxError, ValueError) as exc:
            try:
                sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
            except Exception:
                pass
            return {"outcome": "exception", "error": describe(exc)}, 1
        linecache.cache["<user_code>"] = (len(code), None, code.splitlines(True), "<user_code>")
        scrub(prepared.denied.native, prepared.denied.os)
        disarm_preloaded(prepared.denied)
        g = main.__dict__
        g.update(make_globals(policy, prepared.builtins, input_data))
        # This module's globals, as they are now: restored after user code so that
        # patching them (they are reachable by object-graph walks) cannot change how
        # the run is reported.
        harness_globals = globals()
        if snapshot is None:
            snapshot = dict(harness_globals)
        install_guard(prepared.guard, writable, processes_refused)
        exc = run_user_code(compiled, g)
        harness_globals.update(snapshot)
        if isinstance(exc, MemoryError):
            g = None
            return {"outcome": "memory_error"}, 1
        return outcome_report(exc, g)
    except MemoryError:
        g = None
        return {"outcome": "memory_error"}, 1


def outcome_report(exc, g):
    """The child's report of code that ended with `exc` (None: it completed)."""
    if exc is None:
        return {"outcome": "completed", "result": g.get("result")}, 0
    if isinstance(exc, SystemExit):
        return exit_report(exc, g)
    if isinstance(exc, MemoryError):
        return {"outcome": "memory_error"}, 1
    print_user_traceback(exc)
    return {"outcome": "exception", "error": describe(exc)}, 1


def compile_cell(code):
    """A cell's code, and its last statement apart when it is an expression (its value
    is the cell's `value`, as in a notebook)."""
    tree = ast.parse(code, "<user_code>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), "<user_code>", "eval")
    return compile(tree, "<user_code>", "exec"), last


def eval_user_expr(compiled, g):
    """(exception or None, value) of evaluating the cell's last expression."""
    try:
        return None, eval(compiled, g)
    except BaseException as exc:
        return exc, None


class Session:
    """The state a session's cells share: one globals namespace, with the policy's
    builtins and guard set up by the first cell (an audit hook cannot be removed, so it
    is installed once)."""

    def __init__(self, policy, prepared, writable, main, processes_refused=False):
        self.policy = policy
        self.prepared = prepared
        self.writable = writable
        self.main = main
        self.processes_refused = processes_refused
        self.g = None

    def cell(self, code, input_data):
        """Run one cell; return its report (the process's status never depends on it)."""
        try:
            try:
                compiled, last = compile_cell(code)
            except (SyntaxError, ValueError) as exc:
                try:
                    sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
                except Exception:
                    pass
                return {"outcome": "exception", "error": describe(exc), "value": None}
            linecache.cache["<user_code>"] = (len(code), None, code.splitlines(True), "<user_code>")
            harness_globals = globals()
            snapshot = dict(harness_globals)
            g = self.g
            if g is None:
                scrub(self.prepared.denied.native, self.prepared.denied.os)
                disarm_preloaded(self.prepared.denied)
                g = self.main.__dict__
                g.update(make_globals(self.policy, self.prepared.builtins, input_data))
                install_guard(self.prepared.guard, self.writable, self.processes_refused)
                self.g = g
            else:
                g["input_data"] = input_data
                g.update(input_globals(self.policy, input_data))
                g["result"] = None
            exc = run_user_code(compiled, g)
            value = None
            if exc is None and last is not None:
                exc, value = eval_user_expr(last, g)
            harness_globals.update(snapshot)
            report, _status = outcome_report(exc, g)
            report["value"] = value if exc is None else None
            return report
        except MemoryError:
            return {"outcome": "memory_error", "value": None}


def exit_report(exc, g):
    code = exc.code
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = int(code)
    else:
        if isinstance(code, str):
            try:
                sys.stderr.write(code + "\n")
            except Exception:
                pass
        status = 1
    report = {"outcome": "exit", "result": g.get("result"), "exit_status": status}
    if status != 0:
        report["error"] = "SystemExit: %s" % (code,)
    return report, status & 0xFF


def json_safe(value, seen=None):
    """Replace NaN and infinities (not JSON) by their Python spellings as strings."""
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def encode_report(report):
    try:
        return paired_surrogates(_dumps(report, default=str, allow_nan=False)).encode("utf-8")
    except ValueError as exc:
        if "Out of range float" in str(exc):
            try:
                report["result"] = json_safe(report.get("result"))
                if "value" in report:
                    report["value"] = json_safe(report["value"])
                return paired_surrogates(_dumps(report, default=str, allow_nan=False)).encode("utf-8")
            except (ValueError, TypeError, RecursionError) as exc2:
                exc = exc2
        return unserializable(report, exc)
    except MemoryError:
        raise
    except Exception as exc:
        # TypeError and RecursionError from json; anything from a result object's own
        # __str__ (`default=str`), which is user code.
        return unserializable(report, exc)


def paired_surrogates(text):
    """`text` (JSON from `json.dumps`, which escapes every non-ASCII character) with each
    unpaired UTF-16 surrogate in its strings replaced by U+FFFD. Python strings may hold
    one (`'\\udcff'`, bytes decoded with `surrogateescape`) and json writes it as a lone
    `\\udXXX` escape, which strict JSON readers refuse: the host would fail to read the
    report, a client reading the result would fail after it. Text without an unpaired
    one (nearly every report, pairs and escaped backslashes included) is returned as it
    is. Applied where the run's process encodes its report, the one place user values
    become JSON; M's frames carry that text inside strings, and the host checks it again."""
    if "\\ud" not in text or not any(len(m.group()) == 6 for m in _SURROGATE_ESCAPES.finditer(text)):
        return text
    return _dumps(_without_lone_surrogates(_loads(text)), allow_nan=False)


# In json.dumps text: an escaped backslash (so that the scan stays aligned on escapes),
# a surrogate pair, or a surrogate escape alone (the only 6-character match).
_SURROGATE_ESCAPES = re.compile(r"\\\\|\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}|\\ud[89a-f][0-9a-f]{2}")


def _without_lone_surrogates(value):
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            # Through UTF-16, a high and low surrogate next to each other pair up; any
            # other surrogate is one code unit the decoder replaces.
            return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def unserializable(report, exc):
    if isinstance(exc, (TypeError, ValueError, RecursionError)):
        try:
            why = str(exc)
        except BaseException:
            why = type(exc).__name__
    else:
        why = "str() of a value raised %s" % describe(exc)
    failed = {
        "outcome": "exception",
        "error": "Result is not JSON-serializable: %s" % (why,),
    }
    return paired_surrogates(_dumps(failed)).encode("utf-8")


# ---------------------------------------------------------------------------------
# Files in and out, and figures (CONTRACTS.md "Files and rich outputs")
#
# Request files are written into the run's scratch before the audit hook and user code;
# `collect` globs and open matplotlib figures are gathered after user code, in the run's
# own process and so under its deadline and its sandbox. Every path is opened component
# by component from a descriptor of scratch with O_NOFOLLOW: a symlink (planted by an
# earlier cell of a session, or by the code) is never followed, whatever it points at.
# The caps are spr-protocol's (files.rs), where they are documented.

MAX_FILES_OUT = 256
MAX_FILES_OUT_BYTES = 8 << 20
MAX_OUTPUTS = 16
MAX_OUTPUTS_BYTES = 3 << 20
# Most directory entries one collection looks at: a run that made a million files
# does not make its report wait for a walk of them.
MAX_COLLECT_ENTRIES = 20000
MAX_COLLECT_DEPTH = 32
# Most seconds the figures may take to render (less when the run's deadline is nearer).
FIGURE_SECONDS = 10.0
FIGURE_DPI = 100
# Room for the JSON around the returned files and figures in the result frame.
ATTACHMENT_SLACK = 64 << 10
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
_a2b_base64 = binascii.a2b_base64
_b2a_base64 = binascii.b2a_base64
_os_open = os.open
_os_close = os.close
_os_read = os.read
_os_fstat = os.fstat
_os_mkdir = os.mkdir
_os_scandir = os.scandir
_os_ftruncate = os.ftruncate
_fnmatchcase = fnmatch.fnmatchcase
# The render bound must hold whatever the code did to the shared `signal` and `time`.
_signal = signal.signal
_setitimer = signal.setitimer
_pthread_sigmask = signal.pthread_sigmask
_monotonic = time.monotonic
# The interpreter's own module table (the code may rebind `sys.modules`, not replace it).
_sys_modules = sys.modules


class AttachmentError(Exception):
    """A request file that cannot be written, or a bad `collect` glob."""


def path_segments(path, what):
    """The segments of a relative path that stays inside scratch (the host checked it
    already: this is the harness's own refusal for a bare harness or a bad host)."""
    if not isinstance(path, str) or not path:
        raise AttachmentError("%s: the path is empty or not a string" % what)
    if path.startswith("/"):
        raise AttachmentError("%s: absolute paths are refused" % what)
    if "\0" in path or "\\" in path:
        raise AttachmentError("%s: NUL and backslash are refused" % what)
    parts = path.split("/")
    for seg in parts:
        if seg in ("", ".", ".."):
            raise AttachmentError("%s: '%s' segments are refused" % (what, seg or "empty"))
    if len(parts) > MAX_COLLECT_DEPTH:
        raise AttachmentError("%s: too deep" % what)
    return parts


def open_scratch(scratch):
    """A descriptor of the run's scratch directory and its identity (dev, ino)."""
    fd = _os_open(scratch, _O_DIR)
    st = _os_fstat(fd)
    return fd, (st.st_dev, st.st_ino)


def open_scratch_ident(scratch):
    """The identity of scratch before user code: collection refuses another directory
    put in its place."""
    fd, ident = open_scratch(scratch)
    _os_close(fd)
    return ident


def write_files(scratch, files):
    """Write the request's `files` into `scratch`. Parent directories are made; an
    existing entry is only replaced when it is a regular file with one link (never a
    symlink, directory, FIFO or device). Raises AttachmentError naming the file."""
    if not files:
        return
    root, _ident = open_scratch(scratch)
    # Beyond RLIMIT_FSIZE a write fails (EFBIG) instead of killing the run with SIGXFSZ.
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        for index, entry in enumerate(files):
            path = entry.get("path") if isinstance(entry, dict) else None
            what = "files[%d] %r" % (index, path)
            parts = path_segments(path, what)
            try:
                if entry.get("encoding", "utf-8") == "base64":
                    data = decode_base64(entry.get("content", ""))
                else:
                    data = str(entry.get("content", "")).encode("utf-8", "surrogatepass")
            except (binascii.Error, ValueError, TypeError) as exc:
                raise AttachmentError("%s: bad content: %s" % (what, exc))
            try:
                write_one(root, parts, data)
            except OSError as exc:
                raise AttachmentError("Cannot write %s: %s" % (what, exc.strerror or exc))
    finally:
        signal.signal(signal.SIGXFSZ, previous)
        _os_close(root)


def decode_base64(text):
    try:
        return _a2b_base64(text, strict_mode=True)
    except TypeError:
        # Before Python 3.11: no strict mode (the host has checked the text already).
        return _a2b_base64(text)


def write_one(root, parts, data):
    fds = []
    try:
        here = root
        for seg in parts[:-1]:
            try:
                _os_mkdir(seg, 0o755, dir_fd=here)
            except FileExistsError:
                pass
            # O_NOFOLLOW|O_DIRECTORY: a symlink in the way is ELOOP, a file ENOTDIR.
            here = _os_open(seg, _O_DIR, dir_fd=here)
            fds.append(here)
        leaf = parts[-1]
        try:
            fd = _os_open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=here)
        except FileExistsError:
            fd = _os_open(leaf, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=here)
            st = _os_fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                _os_close(fd)
                raise OSError(errno.EEXIST, "something that is not a plain file is in the way")
            _os_ftruncate(fd, 0)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            _os_close(fd)
    finally:
        for fd in fds:
            _os_close(fd)


def glob_steps(pattern, name, here):
    """Advance the positions `here` of one glob (segments) over one name."""
    out = set()
    for i in here:
        if i >= len(pattern):
            continue
        seg = pattern[i]
        if seg == "**":
            out.add(i)
            out.add(i + 1)
        elif _fnmatchcase(name, seg):
            out.add(i + 1)
    return glob_closure(pattern, out)


def glob_closure(pattern, positions):
    # A `**` followed by more segments may match no directory at all; a trailing one
    # matches at least one name (so "out/**" is what is under out, not out itself).
    out = set(positions)
    for i in sorted(positions):
        j = i
        while j < len(pattern) - 1 and pattern[j] == "**":
            j += 1
            out.add(j)
    return out


def collect_files(scratch, ident, globs, budget, notes):
    """The regular files under `scratch` that match `globs`, as FileOut dicts, within
    `budget` bytes and MAX_FILES_OUT files. Symlinks are not followed and not collected
    (named in `notes`), nor are other non-regular files."""
    patterns = [path_segments(g, "collect[%d] %r" % (i, g)) for i, g in enumerate(globs)]
    if not patterns:
        return []
    root = _os_open(scratch, _O_DIR)
    st = _os_fstat(root)
    if (st.st_dev, st.st_ino) != ident:
        _os_close(root)
        notes.append("collect: the scratch directory was replaced; nothing collected")
        return []
    found = []
    state = {"entries": 0, "bytes": budget, "stopped": False}
    start = [glob_closure(p, {0}) for p in patterns]
    try:
        walk(root, "", start, patterns, found, state, notes, 0)
    finally:
        _os_close(root)
    if state["stopped"]:
        if len(found) >= MAX_FILES_OUT:
            notes.append("collect: stopped at %d files, the most a run returns" % MAX_FILES_OUT)
        else:
            notes.append("collect: stopped after looking at %d entries, the most a run looks at" % MAX_COLLECT_ENTRIES)
    cut = [f for f in found if f["truncated"]]
    if cut:
        notes.append(
            "collect: %s cut to fit the %d bytes the collected files may hold together%s"
            % (
                cut[0]["path"] if len(cut) == 1 else "%s and %d more %s" % (cut[0]["path"], len(cut) - 1, "file" if len(cut) == 2 else "files"),
                budget,
                "" if len(cut) == 1 else " (see each file's `truncated`)",
            )
        )
    return found


def walk(dirfd, prefix, positions, patterns, found, state, notes, depth):
    try:
        with _os_scandir(dirfd) as it:
            # Never more than the entries left to look at: a directory of a million
            # names is not read whole (nor sorted) to find the first few.
            left = MAX_COLLECT_ENTRIES - state["entries"] + 1
            entries = []
            for entry in it:
                entries.append(entry)
                if len(entries) >= left:
                    break
            entries.sort(key=lambda e: e.name)
    except OSError as exc:
        notes.append("collect: cannot list %s: %s" % (prefix or ".", exc.strerror or exc))
        return
    for entry in entries:
        state["entries"] += 1
        if state["entries"] > MAX_COLLECT_ENTRIES or len(found) >= MAX_FILES_OUT:
            state["stopped"] = True
            return
        name = entry.name
        rel = prefix + name
        if not returnable(rel):
            notes.append("collect: %s has a name that cannot be returned (not UTF-8, a control character, too long): skipped" % ascii(rel))
            continue
        nxt = [glob_steps(p, name, here) for p, here in zip(patterns, positions)]
        matched = any(len(p) in here for p, here in zip(patterns, nxt))
        deeper = any(any(i < len(p) for i in here) for p, here in zip(patterns, nxt))
        try:
            if entry.is_symlink():
                if matched:
                    notes.append("collect: %s is a symlink: not collected (symlinks are never followed)" % rel)
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if is_dir:
            if deeper and depth + 1 < MAX_COLLECT_DEPTH:
                try:
                    sub = _os_open(name, _O_DIR, dir_fd=dirfd)
                except OSError as exc:
                    notes.append("collect: cannot open %s: %s" % (rel, exc.strerror or exc))
                    continue
                try:
                    walk(sub, rel + "/", nxt, patterns, found, state, notes, depth + 1)
                finally:
                    _os_close(sub)
                if state["stopped"]:
                    return
            continue
        if matched:
            item = read_collected(dirfd, name, rel, state, notes)
            if item is not None:
                found.append(item)


def returnable(rel):
    """Whether the host takes `rel` as a returned path (files.rs: UTF-8, no control
    character, at most 4096 bytes)."""
    try:
        size = len(rel.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    if size > 4096:
        return False
    for c in rel:
        o = ord(c)
        if o < 0x20 or 0x7F <= o <= 0x9F:
            return False
    return True


def safe_describe(exc):
    """`describe`, for exceptions of user classes whose __str__ may raise too."""
    try:
        return describe(exc)
    except BaseException:
        try:
            return type(exc).__name__
        except BaseException:
            return "an exception"


def read_collected(dirfd, name, rel, state, notes):
    try:
        fd = _os_open(name, _O_FILE, dir_fd=dirfd)
    except OSError as exc:
        notes.append("collect: cannot open %s: %s" % (rel, exc.strerror or exc))
        return None
    try:
        st = _os_fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            notes.append("collect: %s is not a regular file: not collected" % rel)
            return None
        want = min(st.st_size, state["bytes"])
        chunks = []
        got = 0
        while got < want:
            chunk = _os_read(fd, min(want - got, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        notes.append("collect: cannot read %s: %s" % (rel, exc.strerror or exc))
        return None
    finally:
        _os_close(fd)
    data = b"".join(chunks)
    state["bytes"] -= len(data)
    return {
        "path": rel,
        "content": _b2a_base64(data, newline=False).decode("ascii"),
        "size": st.st_size,
        "truncated": len(data) < st.st_size,
    }


class _RenderTimeout(BaseException):
    """Raised by the alarm that bounds rendering (BaseException: user code that catches
    Exception inside a draw callback does not swallow it)."""


def _render_alarm(signum, frame):
    raise _RenderTimeout()


def render_figures(budget, seconds, notes):
    """Every figure left open in matplotlib.pyplot, as PNG outputs, then closed. The
    figures are user state: any failure is a note, never a broken report."""
    try:
        plt = _sys_modules.get("matplotlib.pyplot")
    except BaseException:
        plt = None
    if plt is None:
        return []
    outputs = []
    if seconds <= 0:
        notes.append("figures: no time left before the deadline; not rendered")
        return outputs
    previous = None
    try:
        previous = _signal(signal.SIGALRM, _render_alarm)
        # The code may have blocked SIGALRM: the bound must hold anyway.
        _pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGALRM])
        _setitimer(signal.ITIMER_REAL, seconds)
        try:
            numbers = list(plt.get_fignums())
            for n in numbers:
                if len(outputs) >= MAX_OUTPUTS:
                    notes.append("figures: only the first %d are returned" % MAX_OUTPUTS)
                    break
                try:
                    buf = io.BytesIO()
                    plt.figure(n).savefig(buf, format="png", dpi=FIGURE_DPI)
                    data = bytes(buf.getbuffer())
                except _RenderTimeout:
                    raise
                except BaseException as exc:  # SystemExit from a draw callback too
                    notes.append("figures: figure %s could not be rendered: %s" % (n, safe_describe(exc)))
                    continue
                if not data.startswith(PNG_SIGNATURE):
                    notes.append("figures: figure %s did not render as PNG" % n)
                    continue
                if len(data) > budget:
                    notes.append("figures: figure %s (%d bytes) is over what is left of the cap" % (n, len(data)))
                    continue
                budget -= len(data)
                outputs.append({"mime_type": "image/png", "data": _b2a_base64(data, newline=False).decode("ascii")})
            try:
                plt.close("all")
            except _RenderTimeout:
                raise
            except BaseException as exc:
                # What was rendered stays rendered; the figures are user state.
                notes.append("figures: closing them failed: %s" % safe_describe(exc))
        finally:
            _setitimer(signal.ITIMER_REAL, 0)
    except _RenderTimeout:
        notes.append("figures: rendering took more than %.1fs; stopped" % seconds)
    except BaseException as exc:
        notes.append("figures: %s" % safe_describe(exc))
    finally:
        if previous is not None:
            try:
                _signal(signal.SIGALRM, previous)
            except Exception:
                pass
    return outputs


def note_lost_attachments(exc):
    try:
        sys.stderr.write("spr: the run's files and figures could not be returned: %s\n" % safe_describe(exc))
        sys.stderr.flush()
    except BaseException:
        pass


def attach_outputs(data, scratch, ident, collect, deadline):
    """`data` (the encoded report) with the collected files and the figures added,
    each cut to what the result frame has room for; notes go to stderr."""
    notes = []
    room = MAX_RESULT_BYTES - len(data) - ATTACHMENT_SLACK
    # base64 makes 3 bytes 4.
    room = max(0, room * 3 // 4)
    outputs = render_figures(min(MAX_OUTPUTS_BYTES, room), min(FIGURE_SECONDS, deadline - _monotonic() - 0.25), notes)
    room -= sum(len(o["data"]) * 3 // 4 for o in outputs)
    files = []
    if collect:
        try:
            os.chdir(scratch)
        except OSError:
            pass
        try:
            files = collect_files(scratch, ident, collect, max(0, min(MAX_FILES_OUT_BYTES, room)), notes)
        except AttachmentError as exc:
            notes.append(str(exc))
        except OSError as exc:
            notes.append("collect: %s" % (exc.strerror or exc))
    if notes:
        try:
            sys.stderr.write("".join("spr: %s\n" % n for n in notes))
            sys.stderr.flush()
        except Exception:
            pass
    if not files and not outputs:
        return data
    extra = b""
    if files:
        extra += b',"files":' + _dumps(files).encode("ascii")
    if outputs:
        extra += b',"outputs":' + _dumps(outputs).encode("ascii")
    return data[:-1] + extra + b"}"


# ---------------------------------------------------------------------------------
# The worker loop


# ---------------------------------------------------------------------------------
# Start-up


class PreloadFailed(Exception):
    """The plan's preload or warm-up cannot give a worker its runs may share: the same
    plan fails the same way in every worker."""


# What the plan's preloaded modules cost (set once in M, before the zygotes exist).
_preload_cost = None
# M's private writable memory (VmData, KiB) besides the preload's, once it is ready to
# fork: every run's process has it mapped before its code starts.
_base_data_kb = 0


MEMORY_STATUS_FIELDS = (b"VmSize:", b"VmRSS:", b"VmData:")


def memory_status():
    """(VmSize, VmRSS, VmData) of this process in KiB, zeros where /proc cannot say."""
    found = dict.fromkeys(MEMORY_STATUS_FIELDS, 0)
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                key = line.split(None, 1)[0] if line.strip() else b""
                if key in found:
                    found[key] = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return tuple(found[k] for k in MEMORY_STATUS_FIELDS)


def measure_base_memory():
    """Note what M holds besides the preload once it is ready to fork (the interpreter,
    this harness, what the preload's imports left after the trim), so that a run's
    `memory_limit_mb` is what its code may allocate on top of everything its process is
    forked with (see `rlimit_plan`). Measured last, before the policies are prepared:
    their rlimits depend on it."""
    global _base_data_kb
    preload_kb = _preload_cost["data_kb"] if _preload_cost is not None else 0
    _base_data_kb = max(0, memory_status()[2] - preload_kb)


WARMUP_FILENAME = "<warm-up>"


# How long the warm-up took in M (the second run, in `learn_prefault`, is timed from it).
_warmup_seconds = 0.0


def run_warmup(code):
    """Run the operator's warm-up in M, in a namespace of its own, and put back what of
    M's process state it may change: the working directory, the umask, signal handlers
    (and the signal mask, in `preload_modules`).
    What it printed is dropped (flushed to M's null stdout, never into a run's pipe).
    Raises PreloadFailed naming its exception, or the threads it left running: every
    run's process is a fork of M, and a fork copies no thread (nor any lock one held)."""
    global _warmup_seconds
    try:
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        cwd = None
    umask = os.umask(0o077)
    os.umask(umask)
    handlers = {}
    for signum in signal.valid_signals():
        try:
            handlers[signum] = signal.getsignal(signum)
        except (OSError, ValueError):
            pass
    began = time.monotonic()
    try:
        exec(compile(code, WARMUP_FILENAME, "exec"), {"__name__": "__warmup__"})
    except BaseException as exc:
        raise PreloadFailed("the warm-up failed: %s" % describe(exc)) from exc
    finally:
        _warmup_seconds = time.monotonic() - began
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        if cwd is not None:
            try:
                os.fchdir(cwd)
            finally:
                os.close(cwd)
        os.umask(umask)
        for signum, handler in handlers.items():
            try:
                signal.signal(signum, handler)
            except (OSError, ValueError, TypeError):
                pass
    threads = thread_count()
    if threads > 1:
        raise PreloadFailed(
            "the warm-up left %s running besides the main one"
            % plural(threads - 1, "thread", "threads")
        )


def plural(n, one, many):
    return "%d %s" % (n, one if n == 1 else many)


def thread_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def shareable_state():
    """What of M every run's process would share rather than copy: its open files (a file
    offset is shared by every process that inherited it), its shared mappings that are or
    may become writable, its child processes."""
    fds = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = []
    for name in names:
        try:
            fds[int(name)] = os.readlink("/proc/self/fd/" + name)
        except (OSError, ValueError):
            pass
    shared = set()
    try:
        with open("/proc/self/smaps", "rb") as f:
            vma = None
            for line in f:
                if line.startswith(b"VmFlags:"):
                    # A shared mapping that is, or may be made (mprotect), writable: "mw"
                    # is only missing where the file was opened read-only.
                    flags = line.split()[1:]
                    if vma is not None and b"sh" in flags and b"mw" in flags:
                        shared.add(vma)
                    vma = None
                elif not line.split(b" ", 1)[0].endswith(b":"):  # a mapping's own line
                    fields = line.split()
                    name = fields[5] if len(fields) > 5 else fields[0]
                    vma = (fields[0], name.decode("utf-8", "replace"))
    except OSError:
        pass
    # M's main thread's children: a thread left running fails the warm-up on its own.
    return fds, shared, set(children_of(os.getpid()))


# Read-only regular files the preload or the warm-up left open (matplotlib keeps open
# each font it drew text with), as (fd, path, device, inode, offset, close-on-exec):
# every run's process opens its own (`reopen_shared_files`), so no two share an offset.
_reopened = ()
MAX_REOPENED = 64


def reopenable(fd, target):
    """The `_reopened` entry for a descriptor that a run's process can replace by its own
    opening of the same file: a regular file, opened for reading only, that its path
    still names. None for anything else (written files, directories, pipes, sockets)."""
    try:
        st = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        named = os.stat(target)
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        cloexec = not os.get_inheritable(fd)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode) or flags & (os.O_ACCMODE | O_PATH) != os.O_RDONLY:
        return None
    if (named.st_dev, named.st_ino) != (st.st_dev, st.st_ino):
        return None
    return (fd, target, st.st_dev, st.st_ino, offset, cloexec)


def reopen_shared_files():
    """First thing in a run's process: give each of `_reopened` a file description of
    its own, at the offset M left it at, so that what this run reads (and where it
    seeks) stays its own. A file that is gone or was replaced since reads as empty
    (/dev/null) rather than through M's description."""
    for fd, path, dev, ino, offset, cloexec in _reopened:
        new = None
        try:
            new = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
            st = os.fstat(new)
            if (st.st_dev, st.st_ino) != (dev, ino):
                raise OSError(errno.ESTALE, "replaced")
            os.lseek(new, offset, os.SEEK_SET)
        except OSError:
            if new is not None:
                os.close(new)
            new = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        os.dup2(new, fd, inheritable=not cloexec)
        os.close(new)


def check_nothing_shared(before):
    """Raise PreloadFailed if the preload or the warm-up left M with an open file (but
    one `reopenable`), a shared writable mapping or a child process it did not have:
    every run's process would inherit the same one, and what one run did with it a
    later run could see."""
    global _reopened
    fds0, shared0, children0 = before
    fds1, shared1, children1 = shareable_state()
    # The listing's own descriptor is gone by now; any other new one was left open.
    opened = sorted(
        (fd, target)
        for fd, target in fds1.items()
        if fd not in fds0 and os.path.exists("/proc/self/fd/%d" % fd)
    )
    reopened = [reopenable(fd, target) for fd, target in opened]
    left = ["fd %d (%s)" % opened[i] for i, entry in enumerate(reopened) if entry is None]
    readable = [entry for entry in reopened if entry is not None]
    if len(readable) > MAX_REOPENED:
        # Each is reopened by every run's process, on the way to its request.
        left.append("%d files open for reading (each run reopens at most %d)" % (len(readable), MAX_REOPENED))
    # A descriptor M had that now names something else (dup2 over it) is a new one too,
    # never reopened: it may have been M's own pipe to the host.
    left += sorted(
        "fd %d (%s, where M had %s)" % (fd, target, fds0[fd])
        for fd, target in fds1.items()
        if fd in fds0 and fds0[fd] != target and os.path.exists("/proc/self/fd/%d" % fd)
    )
    left += sorted("a shared mapping of %s" % name for _, name in shared1 - shared0)
    left += sorted("process %s" % pid for pid in children1 - children0)
    if left:
        raise PreloadFailed(
            "the preload and warm-up left %s: every run would share %s with the others"
            % (", ".join(left), "them" if len(left) > 1 else "it")
        )
    _reopened = tuple(readable)


def preload_modules(names, warmup=None):
    """Import the operator's modules in M, before any zygote or request exists: this is
    the operator's code (like the venv it comes from), never a caller's. Each run's
    process is a fork of a zygote forked from here, so it finds them in `sys.modules`
    as they are now, and what a run changes in them (options, attributes, patches,
    caches) lives in its own copy-on-write pages and dies with it. They do not enter a
    run's globals; a run's own `import` of one is judged by its policy like any other.

    Import-time writes go to a private directory made for the imports and removed
    after them (matplotlib builds its font cache in MPLCONFIGDIR): the environment runs
    get stays exactly what `clean_environ` made. Raises PreloadFailed naming the module
    and the exception.

    Then the operator's warm-up, if any, runs once in a namespace of its own that is
    dropped after it: what the modules set up lazily on first use (submodules imported
    on demand, caches, specialized bytecode) is then in the memory every run is forked
    with, counted in the preload's cost. Raises PreloadFailed naming its exception."""
    global _preload_cost
    if not names and not warmup:
        return
    vm0, rss0, data0 = memory_status()
    before = shareable_state()
    saved = dict(os.environ)
    # Every run's process inherits M's signal mask: a blocked SIGINT would keep a session's
    # cell from being interrupted.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
    private = None
    if "MPLCONFIGDIR" not in os.environ:
        try:
            private = tempfile.mkdtemp(prefix="spr-preload-")
            os.environ["MPLCONFIGDIR"] = private
        except OSError:
            private = None
    try:
        for name in names:
            try:
                __import__(name)
            except BaseException as exc:
                raise PreloadFailed(
                    "could not preload module '%s': %s" % (name, describe(exc))
                ) from exc
        if warmup:
            run_warmup(warmup)
        check_nothing_shared(before)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.environ.clear()
        os.environ.update(saved)
        if private is not None:
            import shutil

            shutil.rmtree(private, ignore_errors=True)
    vm1, rss1, data1 = memory_status()
    _preload_cost = {
        "modules": list(names),
        "vm_kb": max(0, vm1 - vm0),
        "rss_kb": max(0, rss1 - rss0),
        "data_kb": max(0, data1 - data0),
    }


MADV_COLLAPSE = 25


def system_page_size():
    try:
        return os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4096


def pmd_size():
    """The size of the kernel's huge pages (2 MiB on x86-64 and on arm64 with 4 KiB pages)."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 2 << 20


PAGE = system_page_size()
HUGE_PAGE = pmd_size()
# A huge page is made of a range only when at least half of it is in use already: the
# kernel fills the rest with zeroes, and that memory is the worker's for good.
HUGE_PAGE_MIN_PRESENT = (HUGE_PAGE // PAGE) // 2
# Ranges refused with EINVAL before any succeeded: then the kernel has no MADV_COLLAPSE.
COLLAPSE_TRIES = 3
# What M's memory holds once it is ready to fork, in KiB (the hello's `memory`).
_memory_layout = {"huge_pages_kb": 0, "huge_pages_filled_kb": 0, "prefault_kb": 0}


def collapse_to_huge_pages(k):
    """Map M's private anonymous memory (the heap the imports built) with huge pages where
    an aligned huge page's worth of it is at least half in use, once, before any zygote
    exists. Every run's process is a fork of it, and a fork copies (and an exit drops) one
    entry per huge page instead of 512; a run's first write to one still copies 4 KiB.
    Best effort: a kernel without MADV_COLLAPSE (before 6.1), or a range it cannot
    collapse, keeps its small pages. Returns (KiB now in huge pages, KiB of them that
    were not in use and the kernel filled)."""
    try:
        with open("/proc/self/maps", "rb") as f:
            maps = f.read().splitlines()
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0, 0
    collapsed = filled = refused = 0
    try:
        for start, end in private_writable_ranges(maps, anonymous=True):
            lo = -(-start // HUGE_PAGE) * HUGE_PAGE
            for at in range(lo, end - HUGE_PAGE + 1, HUGE_PAGE):
                present = present_pages(pagemap, at)
                if present < HUGE_PAGE_MIN_PRESENT:
                    continue
                try:
                    k.madvise(at, HUGE_PAGE, MADV_COLLAPSE)
                except OSError as exc:
                    if exc.errno == errno.EINVAL:
                        # Not this mapping (VM_NOHUGEPAGE), or not this kernel.
                        refused += 1
                        if not collapsed and refused >= COLLAPSE_TRIES:
                            return 0, 0
                        break
                    continue
                collapsed += HUGE_PAGE // 1024
                filled += (HUGE_PAGE // PAGE - present) * PAGE // 1024
    finally:
        os.close(pagemap)
    return collapsed, filled


MADV_POPULATE_WRITE = 23
PAGEMAP_PRESENT = 1 << 63
PAGEMAP_FILE = 1 << 61
PAGEMAP_EXCLUSIVE = 1 << 56
# How long the second run of the warm-up, in `learn_prefault`, may take: a few times the
# first, within limits well inside the host's wait for the worker's greeting.
LEARN_MIN_SECONDS = 2.0
LEARN_MAX_SECONDS = 10.0
# How many ranges the waiting process pre-faults between two looks for its request, and
# how large one may be.
PREFAULT_BATCH = 16
PREFAULT_SPAN_BYTES = 256 << 10
# At most this much is pre-faulted in each run's process, whatever the warm-up wrote.
PREFAULT_MAX_BYTES = 32 << 20
# How many pagemap entries `written_pages` reads at once.
PAGEMAP_CHUNK = 1 << 16
# The pages a run typically writes, as (start, length) ranges: learned once in M from
# the operator's warm-up (`learn_prefault`), never from a run.
_prefault = ()


def learn_prefault(code, first_seconds):
    """Run the request path and the operator's warm-up once more in a forked child of M
    and note the pages the child had to copy or allocate (those /proc/self/pagemap shows
    in memory, anonymous and mapped by the child alone), after it gave back what it freed.
    A run that uses the preloaded modules the way the warm-up does writes mostly the same
    pages, at the same addresses (every run's process is a fork of the same memory): each
    one's process copies them while it waits for its request (`prefault`), so that the
    run itself finds them copied. Learned from constant operator code only, before any
    zygote exists: what a run writes must never shape a later run's process. Best effort:
    where the kernel cannot say or cannot pre-fault, or the second run of the warm-up
    takes too long, nothing is learned. Returns the KiB learned."""
    global _prefault
    limit = min(LEARN_MAX_SECONDS, max(LEARN_MIN_SECONDS, 5 * first_seconds + 1))
    try:
        r, w = os.pipe()
    except OSError:
        return 0
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return 0
    if pid == 0:
        try:
            os.close(r)
            warm_run_path()
            exec(compile(code, WARMUP_FILENAME, "exec"), {"__name__": "__warmup__"})
            gc.collect()
            try:
                kernel().libc.malloc_trim(0)
            except (AttributeError, OSError):
                pass
            write_all(w, b"".join(struct.pack("<QQ", *span) for span in written_pages()))
        except BaseException:
            pass
        finally:
            _os_exit(0)
    os.close(w)
    try:
        data = read_until(r, time.monotonic() + limit)
    finally:
        os.close(r)
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        os.waitpid(pid, 0)
    if data is None or not can_prefault():
        return 0
    spans = []
    total = 0
    for start, length in struct.iter_unpack("<QQ", data[: len(data) - len(data) % 16]):
        length = min(length, PREFAULT_MAX_BYTES - total)
        for at in range(start, start + length, PREFAULT_SPAN_BYTES):
            spans.append((at, min(PREFAULT_SPAN_BYTES, start + length - at)))
        total += length
        if total >= PREFAULT_MAX_BYTES:
            break
    _prefault = tuple(spans)
    return total // 1024


def read_until(fd, deadline):
    """Everything written to `fd` until its end, or None if that takes past `deadline`."""
    chunks = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def can_prefault():
    """Whether this kernel has MADV_POPULATE_WRITE (5.14), tried on a page of M's heap."""
    import ctypes

    page = bytearray(2 * PAGE)
    address = ctypes.addressof((ctypes.c_char * len(page)).from_buffer(page))
    try:
        kernel().madvise(address - address % PAGE + PAGE, PAGE, MADV_POPULATE_WRITE)
        return True
    except (OSError, AttributeError):
        return False


def written_pages():
    """(start, length) of the runs of pages of this process's writable private mappings
    that are in memory, anonymous (not a file's page cache) and mapped by it alone: what
    it copied or allocated since it was forked."""
    with open("/proc/self/maps", "rb") as f:
        maps = f.read().splitlines()
    spans = []
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for start, end in private_writable_ranges(maps):
            first = None
            for base in range(start, end, PAGEMAP_CHUNK * PAGE):
                count = min(PAGEMAP_CHUNK, (end - base) // PAGE)
                for i, entry in enumerate(pagemap_entries(fd, base, count)):
                    at = base + i * PAGE
                    mine = entry & PAGEMAP_PRESENT and entry & PAGEMAP_EXCLUSIVE
                    if mine and not entry & PAGEMAP_FILE:
                        if first is None:
                            first = at
                    elif first is not None:
                        spans.append((first, at - first))
                        first = None
            if first is not None:
                spans.append((first, end - first))
    finally:
        os.close(fd)
    return spans


def prefault(k, req_r):
    """Copy the pages a run typically writes (`learn_prefault`) while this process waits
    for its request, a few ranges at a time, and stop as soon as the request is there:
    the copies are off the run's latency when the worker has time, and never in its way
    when it has not."""
    spans = _prefault
    if not spans:
        return
    c = k.ct
    madvise = k.libc.madvise
    advice = c.c_int(MADV_POPULATE_WRITE)
    poller = select.poll()
    poller.register(req_r, select.POLLIN)
    for i in range(0, len(spans), PREFAULT_BATCH):
        if poller.poll(0):
            return
        for start, length in spans[i : i + PREFAULT_BATCH]:
            # A range this process no longer has writable fails alone: nothing to copy.
            madvise(c.c_void_p(start), c.c_size_t(length), advice)


def private_writable_ranges(maps, anonymous=False):
    """(start, end) of the writable private mappings in /proc/<pid>/maps lines; with
    `anonymous`, only those of no file (the brk heap, what malloc and Python's allocator
    mapped)."""
    for line in maps:
        fields = line.split()
        if len(fields) < 5 or fields[1][:2] != b"rw" or fields[1][3:4] != b"p":
            continue
        if anonymous and len(fields) > 5 and fields[5] != b"[heap]":
            continue
        start, _, end = fields[0].partition(b"-")
        yield int(start, 16), int(end, 16)


def pagemap_entries(pagemap, start, count):
    """The /proc/self/pagemap entries (64-bit words) of `count` pages from `start`, fewer
    where the kernel gives fewer, none where it cannot read them."""
    try:
        data = os.pread(pagemap, count * 8, start // PAGE * 8)
    except OSError:
        return ()
    return memoryview(data[: len(data) - len(data) % 8]).cast("Q")


def present_pages(pagemap, start):
    """How many of the pages of the huge page's worth at `start` are in memory."""
    entries = pagemap_entries(pagemap, start, HUGE_PAGE // PAGE)
    if len(entries) != HUGE_PAGE // PAGE:
        return 0
    return sum(1 for entry in entries if entry & PAGEMAP_PRESENT)


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def clean_environ():
    """Runs get only these variables (plus HOME and TMPDIR, their scratch directory,
    set in each run's process). Done once here: every run's process inherits it."""
    os.environ.clear()
    os.environ.update(
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            # No display in a sandbox: matplotlib draws with Agg (PNG) from the start.
            "MPLBACKEND": "Agg",
            # One thread for the numeric libraries: a run's CPU-time limit counts every
            # thread, and each OpenBLAS thread takes its own stack and buffer (some 72
            # MiB) out of the run's memory, as many threads as the host has cores.
            **dict.fromkeys(BLAS_THREAD_VARIABLES, "1"),
        }
    )


def main(argv):
    try:
        plan = parse_args(argv)
    except (ValueError, KeyError, TypeError) as exc:
        sys.stderr.write("spr harness: bad arguments: %s\n" % exc)
        return 2
    base = plan.scratch
    if not base:
        base = tempfile.mkdtemp(prefix="spr-worker-")
        plan.own_scratch = True
    if plan.fresh != FRESH_NAMESPACES:
        os.makedirs(base, exist_ok=True)

    # Move the protocol off fds 0 and 1 so that nothing written to them by accident
    # (or inherited by a run) can touch it.
    rfd = os.dup(0)
    wfd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)

    for name in PRELOAD:
        try:
            __import__(name)
        except Exception:
            pass
    # A run may signal M or Z; they outlive such games (the host decides when a worker
    # stops). As PID 1 of a namespace, signals without a handler are ignored by the
    # kernel already; SIGINT has Python's handler, so ignore it here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    k = kernel()
    one_malloc_arena(k)
    # Nothing of M or Z may be read through /proc/<pid>/mem or the like by a run.
    prctl_quiet(PR_SET_DUMPABLE, 0)
    isolation = Isolation(plan, k)
    base_read_roots()
    resolve_writable_roots(plan, base)
    clean_environ()
    preloading = bool(plan.preload or plan.warmup)
    if preloading:
        # Should this process die in the operator's code (a warm-up calling os._exit, a
        # module that crashes the interpreter, a memory limit the preload does not fit
        # in), no fatal frame can say so: the host knows it from where it stopped.
        write_frame(wfd, {"type": "stage", "stage": "preload"})
    try:
        preload_modules(plan.preload, plan.warmup)
    except PreloadFailed as exc:
        child_failed()
        # The cause tells the host that every worker with this plan fails the same way.
        write_frame(wfd, {"type": "fatal", "message": str(exc), "cause": "preload"})
        return 5
    if preloading:
        write_frame(wfd, {"type": "stage", "stage": "started"})
        # What the imports freed goes back to the system: every page M holds is copied
        # (as a page-table entry) by each fork of a run and dropped by its exit.
        try:
            k.libc.malloc_trim(0)
        except (AttributeError, OSError):
            pass  # not glibc
    try:
        prepare_run_streams()
    except OSError:
        pass  # each run's process makes its own
    measure_base_memory()
    prepare_known(plan)
    # Everything so far lives as long as the worker: keep the collector (here and in
    # every run's process) from walking it, and so from writing to its pages.
    gc.freeze()
    lay_out_memory(plan, k)

    zygotes = []
    try:
        for _ in range(plan.zygotes):
            zygotes.append(spawn_zygote(plan, isolation, base, rfd, wfd, zygotes, k))
    except OSError as exc:
        write_frame(wfd, {"type": "fatal", "message": "could not start the zygote: %s" % exc})
        return 3
    isolation.close()
    monitor = Monitor(rfd, wfd, zygotes, isolation)
    return monitor.serve(lambda: harden_monitor(plan, isolation))


def lay_out_memory(plan, k):
    """Huge pages for M's heap, and what each run's process copies while it waits (see
    `collapse_to_huge_pages` and `learn_prefault`), before any zygote exists. Both read
    /proc/self/pagemap, which a process that is not dumpable cannot open unless it is root
    (a Docker worker's harness is not): M is dumpable for them, as it was until the
    preload, and no run exists yet to read it."""
    prctl_quiet(PR_SET_DUMPABLE, 1)
    try:
        huge, filled = collapse_to_huge_pages(k)
        _memory_layout["huge_pages_kb"] = huge
        _memory_layout["huge_pages_filled_kb"] = filled
        if plan.warmup:
            _memory_layout["prefault_kb"] = learn_prefault(plan.warmup, _warmup_seconds)
    finally:
        prctl_quiet(PR_SET_DUMPABLE, 0)


M_ARENA_MAX = -8


def one_malloc_arena(k):
    """Each malloc arena glibc makes for a thread reserves 64 MiB of address space, and
    a run's address space is limited (RLIMIT_AS, the backstop above its memory limit):
    a run whose libraries start threads would need more of it than it uses, and how
    much more would depend on timing. One arena, set here and inherited by every run's
    process."""
    try:
        k.libc.mallopt(M_ARENA_MAX, 1)
    except (AttributeError, OSError):
        pass  # not glibc: no per-thread arenas to bound


def spawn_zygote(plan, isolation, base, rfd, wfd, others, k):
    """Fork a zygote (from M, which holds no tenant data yet). With `plan.pidns` it is PID
    1 of a PID namespace of its own: an intermediate process unshares the namespace,
    forks the zygote into it and exits, so that the zygote re-parents to M."""
    sock_m, sock_z = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    report_r, report_w = os.pipe()
    first = os.fork()
    if first == 0:
        status = 70
        try:
            os.close(report_r)
            if plan.pidns:
                k.unshare(CLONE_NEWPID)
                zpid = os.fork()
                if zpid:
                    write_all(report_w, b"%d" % zpid)
                    _os_exit(0)
            os.close(report_w)
            os.close(rfd)
            os.close(wfd)
            sock_m.close()
            for other in others:
                other.sock.close()
            status = Zygote(sock_z, plan, isolation, base, len(others)).serve()
        except BaseException:
            child_failed()
        finally:
            _os_exit(status)
    sock_z.close()
    os.close(report_w)
    zpid = first
    if plan.pidns:
        data = read_exact(report_r, 1) or b""
        rest = os.read(report_r, 32)
        os.waitpid(first, 0)
        if not data:
            os.close(report_r)
            raise OSError(errno.ECHILD, "the zygote's PID namespace could not be made")
        zpid = int(data + rest)
    os.close(report_r)
    return ZygoteLink(zpid, sock_m)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
