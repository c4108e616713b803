"""spr harness: a long-lived worker that runs each request in a fresh forked process.

Protocol (see crates/spr-protocol): frames of a 4-byte big-endian length plus JSON,
read from the worker's stdin and written to its stdout. User code never runs in this
process: every run is a child forked from it, whose stdout, stderr and result channel
are pipes read here with caps, and whose status (exit code, signal, timeout) is observed
here from outside. Standard library only; runs on CPython 3.8+.

The next run's process is forked ahead of its request, once the previous run has been
swept and reported (never while user code exists): it does the request-independent
set-up and blocks reading its request from a pipe; the worker hands the frame over and
starts the clock. Policy-derived objects are prepared in the worker per policy and
inherited at fork. On this kind of machine a page copied on write costs several
microseconds, so the run path is shaped to touch as little shared memory as it can.

When the worker is PID 1 of its own PID namespace (the local engine's Linux sandbox put
it there), the sweep after each run is `kill(-1, SIGKILL)`: every other process of the
namespace, however it detached, dies; and the scratch tmpfs is emptied.

Inside the run's process, before user code, a PEP 578 audit hook enforces the policy's
capabilities (processes, network, native code, files outside scratch, introspection of
the interpreter) whatever name reaches them. The hook is a guardrail,
not the boundary: pure Python cannot be made airtight (object-graph walks reach every
loaded module); the kernel sandbox underneath is the boundary.
"""

import builtins
import codecs
import errno
import gc
import io
import json
import linecache
import os
import select
import shutil
import signal
import sys
import stat
import tempfile
import time
import traceback
import types

PROTOCOL_VERSION = 2
MAX_REQUEST_BYTES = 64 << 20
MAX_RESULT_BYTES = 16 << 20
READ_CHUNK = 65536
# After the run's process has exited, how long to wait for pipes still held by
# processes that escaped the sweep (they are killed; this only bounds the wait).
DRAIN_GRACE_SECONDS = 0.2
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
# Imported once in the worker so a forked run finds them already loaded.
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
# Defaults of the `[policy.sandbox]` knobs the harness enforces itself (rlimits).
DEFAULT_MAX_PROCESSES = 64
DEFAULT_MAX_FILE_SIZE_MB = 64
DEFAULT_MAX_OPEN_FILES = 256
# Tasks in a sandboxed worker's user namespace besides the run's: the supervisor and
# the worker (PID 1).
NAMESPACE_OVERHEAD_TASKS = 2


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
    data = len(body).to_bytes(4, "big") + body
    view = memoryview(data)
    while view:
        n = _os_write(fd, view)
        view = view[n:]


def read_exact(fd, n):
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame_bytes(fd):
    """One frame's body, or None at end of stream."""
    header = read_exact(fd, 4)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    if length > MAX_REQUEST_BYTES:
        raise ValueError("request frame of %d bytes is too large" % length)
    return read_exact(fd, length)


def read_frame(fd):
    body = read_frame_bytes(fd)
    if body is None:
        return None
    return _loads(body.decode("utf-8"))


# ---------------------------------------------------------------------------------
# Process hygiene


_libc = None


def prctl(option, value):
    global _libc
    try:
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
        return _libc.prctl(option, value, 0, 0, 0) == 0
    except Exception:
        return False


def set_child_subreaper():
    """Orphans of a run re-parent to this worker, so the sweep can find them."""
    return prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def children_of(pid):
    # os.open and os.read rather than open(): this runs after every run, and the io
    # stack is much more work (and memory touched) than the two syscalls.
    try:
        fd = os.open("/proc/%d/task/%d/children" % (pid, pid), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return [int(p) for p in b"".join(chunks).split()]
    except (OSError, ValueError):
        return []
    finally:
        os.close(fd)


def sweep(me, pgid):
    """Kill everything the run left: its process group, then every process that
    re-parented to this worker, until none remain. Returns how many were killed."""
    killed = set()
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
    for _ in range(200):
        reap_all()
        kids = children_of(me)
        if not kids:
            break
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        time.sleep(0.001)
    reap_all()
    return len(killed)


def sweep_namespace():
    """As PID 1 of the namespace: kill every other process in it and reap them all.
    Orphans re-parent to PID 1, so once `waitpid` finds no child, nothing is left."""
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


def wipe_dir(base, dev=None):
    """Empty `base` (the scratch tmpfs) without crossing into another filesystem: the
    bind mounts of extra paths may sit below it, and their files are the host's."""
    try:
        if dev is None:
            dev = os.lstat(base).st_dev
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_dev != dev:
            continue
        if stat.S_ISDIR(st.st_mode):
            wipe_dir(path, dev)
            try:
                os.rmdir(path)
            except OSError:
                pass
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def reap_all():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# ---------------------------------------------------------------------------------
# One run, as seen from the worker


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

    def text(self):
        if not self.parts:
            return ""
        data = b"".join(self.parts)
        if not self.truncated:
            return data.decode("utf-8", "replace")
        # Cut at a character boundary: an incomplete tail is dropped, not mangled.
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return decoder.decode(data, final=False)


class RunProcess:
    """A run's process, forked ahead of its request (see `prefork`), and the worker's
    ends of its pipes."""

    __slots__ = ("pid", "pidfd", "scratch", "req_w", "out_r", "err_r", "res_r", "started", "unsent")

    def __init__(self, pid, pidfd, scratch, req_w, out_r, err_r, res_r):
        self.pid = pid
        self.pidfd = pidfd
        self.scratch = scratch
        self.req_w = req_w
        self.out_r = out_r
        self.err_r = err_r
        self.res_r = res_r
        self.started = None
        self.unsent = None

    def deliver(self, body):
        """Start the run: the clock starts, and the request frame goes down the process's
        non-blocking request pipe, in one write for a usual request; the rest of a
        large one is written by `run_one`'s loop, under the run's deadline."""
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
        if not self.unsent:
            os.close(self.req_w)
            self.req_w = None

    def close_fds(self):
        for fd in (self.req_w, self.out_r, self.err_r, self.res_r, self.pidfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.req_w = self.out_r = self.err_r = self.res_r = self.pidfd = None


_scratch_serial = 0
_real_scratch_base = {}


def real_scratch_base(scratch_base):
    real = _real_scratch_base.get(scratch_base)
    if real is None:
        real = _real_scratch_base[scratch_base] = os.path.realpath(scratch_base)
    return real


def make_scratch(scratch_base):
    """A fresh, private directory for one run. A predictable name is tried first (cheaper
    than mkdtemp); mkdir fails on anything already there, symlinks included, and then a
    random name is used instead."""
    global _scratch_serial
    _scratch_serial += 1
    path = "%s/run-%d-%d" % (scratch_base, os.getpid(), _scratch_serial)
    try:
        os.mkdir(path, 0o700)
        return path
    except OSError:
        return tempfile.mkdtemp(prefix="run-", dir=scratch_base)


def prefork(scratch_base, keep_closed, pid1):
    """Fork the next run's process before its request exists.

    It does everything that does not depend on the request (a new session, the pipes on
    fds 0-2, the scratch directory as its working directory and home, signal
    dispositions, fresh standard streams) and then blocks reading its request from a
    pipe. The request's policy (rlimits, the audit hook, builtins and globals) is applied
    only once the request arrives. Called only between runs, after the previous run's
    sweep: no user code exists anywhere while this process is created and waits."""
    scratch = make_scratch(scratch_base)
    # The run's writable roots, resolved (the scratch base was resolved once).
    real = real_scratch_base(scratch_base)
    own = real + "/" + os.path.basename(scratch)
    writable = (own, real) if pid1 else (own,)
    req_r, req_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    worker_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            for fd in keep_closed + [req_w, out_r, err_r, res_r]:
                os.close(fd)
            status = child_main(scratch, writable, req_r, out_w, err_w, res_w, pid1, worker_pid)
        except BaseException:
            child_failed()
        finally:
            _os_exit(status)
    for fd in (req_r, out_w, err_w, res_w):
        os.close(fd)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    os.set_blocking(req_w, False)
    return RunProcess(pid, pidfd, scratch, req_w, out_r, err_r, res_r)


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
    """Build the run's standard streams once, in the worker, so that every run's process
    finds them ready. They are built while fds 1 and 2 are a pipe, as in a run, so the
    io objects learn the same facts about their fds (not seekable, not a tty); fd 0 is
    /dev/null in the worker as in a run. The worker itself never uses them."""
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
    """The run's process failed in the harness's own code (not the user's): say why on
    its stderr (the run's pipe once set up, the worker's before), so that the exit status
    70 that follows is not a silent mystery."""
    try:
        text = "spr harness: the run's process failed: %s" % "".join(
            traceback.format_exception(*sys.exc_info())
        )
        data = text.encode("utf-8", "replace")
        while data:
            data = data[_os_write(2, data):]
    except BaseException:
        pass


def discard(proc, scratch_base, pid1):
    """Kill and reap a run's process that will not be watched to its end (the worker
    exits, or it was found dead, or handed a frame that turned out not to be a run),
    with anything it may have started, and remove its scratch."""
    if proc is None:
        return
    for kill, target in ((os.kill, proc.pid), (os.killpg, proc.pid)):
        try:
            kill(target, signal.SIGKILL)
        except OSError:
            pass
    reap(proc.pid, block=True)
    if pid1:
        sweep_namespace()
    else:
        sweep(os.getpid(), proc.pid)
    proc.close_fds()
    remove_scratch(proc.scratch)
    if pid1 or OWN_SCRATCH:
        wipe_dir(scratch_base)


def is_alive(proc):
    try:
        got, _ = os.waitpid(proc.pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return got == 0


def remove_scratch(path):
    try:
        os.rmdir(path)  # the common case: the run wrote nothing there
    except FileNotFoundError:
        pass
    except OSError:
        remove_tree(path)


def run_one(request, proc, scratch_base, pid1):
    """Watch the run of `request`, already delivered to its process `proc`, to its end."""
    policy = request["policy"]
    timeout = float(policy.get("timeout_seconds", 5))
    cap = int(policy.get("max_output_kb", 128)) * 1024
    pid, pidfd = proc.pid, proc.pidfd
    out_r, err_r, res_r = proc.out_r, proc.err_r, proc.res_r
    started = proc.started

    outputs = {out_r: Capture(cap), err_r: Capture(cap), res_r: Capture(MAX_RESULT_BYTES)}
    open_fds = set(outputs)
    deadline = started + timeout
    timed_out = False
    wait_status = None
    drain_deadline = None
    me = os.getpid()
    leftovers = 0

    while open_fds or wait_status is None:
        now = time.monotonic()
        if wait_status is None and now >= deadline:
            timed_out = True
            for kill, target in ((os.kill, pid), (os.killpg, pid)):
                try:
                    kill(target, signal.SIGKILL)
                except OSError:
                    pass
            wait_status = reap(pid, block=True)
            leftovers += sweep_namespace() if pid1 else sweep(me, pid)
            drain_deadline = time.monotonic() + DRAIN_GRACE_SECONDS
            continue
        if drain_deadline is not None and now >= drain_deadline:
            break
        watch = list(open_fds)
        if wait_status is None and pidfd is not None:
            watch.append(pidfd)
        writing = [proc.req_w] if proc.req_w is not None else []
        limit = (drain_deadline if drain_deadline is not None else deadline) - now
        if wait_status is None and pidfd is None:
            limit = min(limit, 0.005)
        try:
            ready, can_write, _ = select.select(watch, writing, [], max(limit, 0))
        except InterruptedError:
            continue
        if can_write:
            proc.send_more()
        for fd in ready:
            if fd == pidfd:
                continue
            try:
                data = os.read(fd, READ_CHUNK)
            except OSError:
                data = b""
            if data:
                outputs[fd].feed(data)
            else:
                open_fds.discard(fd)
        if wait_status is None and (pidfd is None or pidfd in ready or not open_fds):
            wait_status = reap(pid, block=pidfd in ready or not open_fds)
            if wait_status is not None:
                # The run is over: nothing it started may outlive it.
                leftovers += sweep_namespace() if pid1 else sweep(me, pid)
                drain_deadline = time.monotonic() + DRAIN_GRACE_SECONDS

    duration_ms = (time.monotonic() - started) * 1000.0
    proc.close_fds()
    remove_scratch(proc.scratch)
    if pid1 or OWN_SCRATCH:
        # The run could write anywhere in the scratch base (the /tmp tmpfs, or the
        # worker's own folder), not only its own directory: the next run starts from
        # an empty one.
        wipe_dir(scratch_base)

    exit_code = signum = None
    if wait_status is not None:
        if os.WIFSIGNALED(wait_status):
            signum = os.WTERMSIG(wait_status)
        else:
            exit_code = os.WEXITSTATUS(wait_status)
    out, err, res = outputs[out_r], outputs[err_r], outputs[res_r]
    frame = b"".join(res.parts)
    return {
        "type": "report",
        "id": request.get("id", 0),
        "exit_code": exit_code,
        "signal": signum,
        "timed_out": timed_out,
        "duration_ms": duration_ms,
        "stdout": out.text(),
        "stderr": err.text(),
        "stdout_truncated": out.truncated,
        "stderr_truncated": err.truncated,
        "child_frame": frame.decode("utf-8", "replace") if frame else None,
        "child_frame_overflow": res.truncated,
        "leftover_processes": leftovers,
    }


def reap(pid, block):
    while True:
        try:
            got, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0
        if got == 0:
            return None
        return status


def remove_tree(path):
    # Runs may leave read-only directories behind; make them writable and retry.
    def onerror(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)


# ---------------------------------------------------------------------------------
# One run, inside the forked child


def child_main(scratch, writable, req_r, out_w, err_w, res_w, pid1, worker_pid):
    global _libc
    # If the worker dies (killed by the host as wedged), the run dies with it. (As PID 1
    # of a namespace the worker's death kills the whole namespace anyway.)
    if not pid1:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != worker_pid:
            return 70  # the worker died before the death signal was armed
    _libc = None
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for fd in (devnull, out_w, err_w):
        if fd > 2:
            os.close(fd)
    os.chdir(scratch)
    # The rest of the environment was made clean once, in the worker (`clean_environ`).
    environ = os.environ
    environ["HOME"] = scratch
    environ["TMPDIR"] = scratch
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

    # Ready: wait for the request. End of stream means the worker discarded this process.
    body = read_frame_bytes(req_r)
    os.close(req_r)
    if body is None:
        return 0
    request = _loads(body.decode("utf-8"))
    del body
    policy = request["policy"]
    prepared = prepared_for(policy, pid1)
    apply_rlimits(prepared.rlimits)
    report, status = execute(
        request.get("code", ""), request.get("input_data"), policy, prepared, writable, main
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
    view = memoryview(data)
    try:
        while view:
            view = view[_os_write(res_w, view):]
    except OSError:
        pass
    return status


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


def rlimit_plan(policy, pid1):
    """The (resource, limit) pairs of a run under `policy`, clamped to the hard limits
    the run's process inherits from the worker."""
    if resource is None:
        return ()
    mem = int(policy.get("memory_limit_mb", 256)) * 1024 * 1024
    timeout = int(policy.get("timeout_seconds", 5))
    max_processes, max_file_mb, max_files = sandbox_knobs(policy)
    limits = [
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_CORE, 0),
        # CPU time: a backstop behind the wall-clock deadline the worker enforces.
        (resource.RLIMIT_CPU, timeout + 1),
        (resource.RLIMIT_FSIZE, max_file_mb * 1024 * 1024),
        (resource.RLIMIT_NOFILE, max_files),
    ]
    if pid1:
        # RLIMIT_NPROC counts the tasks of one uid in one user namespace: in the
        # sandbox that is this worker's namespace alone, so the cap is exact. Outside
        # it would count every process of the host user, so it is not set there.
        limits.append((resource.RLIMIT_NPROC, max_processes + NAMESPACE_OVERHEAD_TASKS))
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
# What a policy decides before any run, prepared once per policy


class Prepared:
    """The policy-derived parts of a run: capability switches, rlimits, the builtins
    namespace with its import hook, and the guard's fixed path roots.

    The worker prepares the policy of each run after reporting it, so the processes it
    forks later inherit the result ready and a run under a policy seen before only has
    to look it up (by equality with the policy it was sent). Nothing here is shared
    between runs: each run's process uses its own copy-on-write copy, and the worker
    never runs user code, so its copy stays as prepared."""

    __slots__ = ("policy", "denied", "rlimits", "builtins", "guard")

    def __init__(self, policy, pid1):
        self.policy = policy
        self.denied = denied = _Denied(policy)
        self.rlimits = rlimit_plan(policy, pid1)
        self.builtins = make_builtins(policy)
        self.guard = guard_plan(policy, denied)


# Most recently used first; few entries: a deployment uses a handful of policies.
PREPARED_CACHE_SIZE = 8
_prepared = []


def prepared_for(policy, pid1):
    for entry in _prepared:
        if entry.policy == policy:
            return entry
    return Prepared(policy, pid1)


def remember(policy, pid1):
    """In the worker, after a run: keep `policy` prepared for the runs to come."""
    for i, entry in enumerate(_prepared):
        if entry.policy == policy:
            if i:
                del _prepared[i]
                _prepared.insert(0, entry)
            return
    try:
        entry = Prepared(policy, pid1)
    except Exception:
        return  # the run's process will say what is wrong with it
    _prepared.insert(0, entry)
    del _prepared[PREPARED_CACHE_SIZE:]


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


def install_guard(plan, writable):
    """Add the audit hook for this run (hooks cannot be removed: the run's process
    keeps it until it exits). Everything the hook uses is bound here, privately, so
    patching `os`, `os.path`, `pathlib` or this module cannot make it answer otherwise.
    `writable` are the run's own directories, already resolved."""
    if plan is None:
        return False
    # Plain booleans bound in the closure: no object user code could find and flip.
    switches, extra_write, ro_fixed = plan
    deny_os, deny_processes, deny_network, deny_native, deny_files = switches
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
            name = args[0]
            if deny_native and (name == "_ctypes" or name == "ctypes"):
                raise ImportError("Import '%s' is blocked by policy" % name)
            if deny_processes and name == "_posixsubprocess":
                raise ImportError("Import '%s' is blocked by policy" % name)
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


def make_import_hook(policy):
    allow_mode = policy.get("mode") == "allow"
    allowed = list(policy.get("allowed_imports") or [])
    blocked = list(policy.get("blocked_imports") or [])
    real_import = _real_import

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
    if isinstance(input_data, dict):
        for key, value in input_data.items():
            key = str(key)
            if not key.isidentifier() or key in RESERVED_GLOBALS or key.startswith("_"):
                continue
            if (key not in allowed) if allow_mode else (key in blocked):
                continue
            if key in g:
                continue
            g[key] = value
    return g


def describe(exc):
    return "%s: %s" % (type(exc).__name__, exc)


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


def execute(code, input_data, policy, prepared, writable, main):
    """Run user code in the namespace of module `main`; return (report, exit status)."""
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
        g = main.__dict__
        g.update(make_globals(policy, prepared.builtins, input_data))
        # This module's globals, as they are now: restored after user code so that
        # patching them (they are reachable by object-graph walks) cannot change how
        # the run is reported.
        harness_globals = globals()
        snapshot = dict(harness_globals)
        install_guard(prepared.guard, writable)
        exc = run_user_code(compiled, g)
        harness_globals.update(snapshot)
        if exc is None:
            return {"outcome": "completed", "result": g.get("result")}, 0
        if isinstance(exc, SystemExit):
            return exit_report(exc, g)
        if isinstance(exc, MemoryError):
            g = None
            return {"outcome": "memory_error"}, 1
        print_user_traceback(exc)
        return {"outcome": "exception", "error": describe(exc)}, 1
    except MemoryError:
        g = None
        return {"outcome": "memory_error"}, 1


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
        return _dumps(report, default=str, allow_nan=False).encode("utf-8")
    except ValueError as exc:
        if "Out of range float" in str(exc):
            try:
                report["result"] = json_safe(report.get("result"))
                return _dumps(report, default=str, allow_nan=False).encode("utf-8")
            except (ValueError, TypeError, RecursionError) as exc2:
                exc = exc2
        return unserializable(report, exc)
    except (TypeError, RecursionError) as exc:
        return unserializable(report, exc)


def unserializable(report, exc):
    failed = {
        "outcome": "exception",
        "error": "Result is not JSON-serializable: %s" % (exc,),
    }
    return _dumps(failed).encode("utf-8")


# ---------------------------------------------------------------------------------
# The worker loop


# The scratch base belongs to this worker alone (`--own-scratch`), so whatever a run
# left there can be wiped after it; a base shared with other workers cannot be.
OWN_SCRATCH = False


def main(argv):
    global OWN_SCRATCH
    OWN_SCRATCH = "--own-scratch" in argv
    scratch_base = None
    if "--scratch" in argv:
        scratch_base = argv[argv.index("--scratch") + 1]
    scratch_base = scratch_base or tempfile.mkdtemp(prefix="spr-worker-")
    os.makedirs(scratch_base, exist_ok=True)

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
    # A run may signal its parent; the worker outlives such games (the host decides
    # when a worker stops). As PID 1 of a namespace, signals without a handler are
    # ignored by the kernel already; SIGINT has Python's handler, so ignore it here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pid1 = os.getpid() == 1
    if not pid1:
        set_child_subreaper()
    base_read_roots()
    clean_environ()
    try:
        prepare_run_streams()
    except OSError:
        pass  # each run's process makes its own
    # Everything so far lives as long as the worker: keep the collector (in the worker
    # and in every run's process) from walking it, and so from writing to its pages.
    gc.freeze()
    write_frame(
        wfd,
        {
            "type": "hello",
            "protocol_version": PROTOCOL_VERSION,
            "harness_hash": harness_hash(),
            "python_version": "%d.%d.%d" % sys.version_info[:3],
            "pid": os.getpid(),
        },
    )
    keep_closed = [rfd, wfd]
    proc = None
    try:
        while True:
            if proc is None:
                # The next run's process, forked and set up while the worker waits for
                # the request (no run is in progress here: the last one was swept).
                proc = prefork(scratch_base, keep_closed, pid1)
            try:
                body = read_frame_bytes(rfd)
            except ValueError as exc:
                write_frame(wfd, {"type": "fatal", "message": "bad request frame: %s" % exc})
                return 3
            if body is None:
                return 0
            if body.startswith(RUN_FRAME_PREFIX):
                # The host's run requests start so: hand the frame over at once and
                # decode it here while the run's process does the same.
                proc = start_run(proc, body, scratch_base, keep_closed, pid1)
            try:
                message = _loads(body.decode("utf-8"))
                if not isinstance(message, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                write_frame(wfd, {"type": "fatal", "message": "bad request frame: %s" % exc})
                return 3
            kind = message.get("type")
            if kind != "run" and proc.started is not None:
                discard(proc, scratch_base, pid1)  # not a run after all
                proc = None
            if kind == "shutdown":
                return 0
            if kind != "run":
                write_frame(wfd, {"type": "fatal", "message": "unknown message type"})
                return 3
            try:
                if proc.started is None:
                    proc = start_run(proc, body, scratch_base, keep_closed, pid1)
                current, proc = proc, None
                del body
                report = run_one(message, current, scratch_base, pid1)
            except Exception as exc:  # a bug here must not look like a user error
                write_frame(wfd, {"type": "fatal", "message": "worker failure: %s" % describe(exc)})
                return 4
            write_frame(wfd, report)
            remember(message["policy"], pid1)
    finally:
        discard(proc, scratch_base, pid1)


# How the host's run requests begin (serde writes the tag first).
RUN_FRAME_PREFIX = b'{"type":"run",'


def start_run(proc, body, scratch_base, keep_closed, pid1):
    """Deliver a run's frame to the pre-forked process, replacing the process first if
    it died waiting (it should not): a request is never handed to a corpse."""
    if not is_alive(proc):
        discard(proc, scratch_base, pid1)
        proc = prefork(scratch_base, keep_closed, pid1)
    proc.deliver(body)
    return proc


def clean_environ():
    """Runs get only these variables (plus HOME and TMPDIR, their scratch directory,
    set in each run's process). Done once here: every run's process inherits it."""
    os.environ.clear()
    os.environ.update(
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
        }
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
