"""spr harness: a long-lived worker that runs each request in a fresh forked process.

Protocol (see crates/spr-protocol): frames of a 4-byte big-endian length plus JSON,
read from the worker's stdin and written to its stdout. User code never runs in this
process: every run is a child forked from it, whose stdout, stderr and result channel
are pipes read here with caps, and whose status (exit code, signal, timeout) is observed
here from outside. Standard library only; runs on CPython 3.8+.
"""

import builtins
import codecs
import errno
import io
import json
import linecache
import os
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback

PROTOCOL_VERSION = 1
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
)

# Private references, taken before any user code exists, so that a run that patches
# the shared modules cannot change how its own result is encoded.
_dumps = json.dumps
_loads = json.loads
_real_import = builtins.__import__
_os_write = os.write
_os_exit = os._exit


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


def read_frame(fd):
    header = read_exact(fd, 4)
    if header is None:
        return None
    length = int.from_bytes(header, "big")
    if length > MAX_REQUEST_BYTES:
        raise ValueError("request frame of %d bytes is too large" % length)
    body = read_exact(fd, length)
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
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


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
        data = b"".join(self.parts)
        # Cut at a character boundary: an incomplete tail is dropped, not mangled.
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return decoder.decode(data, final=not self.truncated)


def run_one(request, scratch_base, keep_closed):
    policy = request["policy"]
    timeout = float(policy.get("timeout_seconds", 5))
    cap = int(policy.get("max_output_kb", 128)) * 1024
    scratch = tempfile.mkdtemp(prefix="run-", dir=scratch_base)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            for fd in keep_closed + [out_r, err_r, res_r]:
                os.close(fd)
            status = child_main(request, scratch, out_w, err_w, res_w)
        finally:
            _os_exit(status)
    os.close(out_w)
    os.close(err_w)
    os.close(res_w)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None

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
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            wait_status = reap(pid, block=True)
            leftovers += sweep(me, pid)
            drain_deadline = time.monotonic() + DRAIN_GRACE_SECONDS
            continue
        if drain_deadline is not None and now >= drain_deadline:
            break
        watch = list(open_fds)
        if wait_status is None and pidfd is not None:
            watch.append(pidfd)
        limit = (drain_deadline if drain_deadline is not None else deadline) - now
        if wait_status is None and pidfd is None:
            limit = min(limit, 0.005)
        try:
            ready, _, _ = select.select(watch, [], [], max(limit, 0))
        except InterruptedError:
            continue
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
                leftovers += sweep(me, pid)
                drain_deadline = time.monotonic() + DRAIN_GRACE_SECONDS

    duration_ms = (time.monotonic() - started) * 1000.0
    for fd in outputs:
        os.close(fd)
    if pidfd is not None:
        os.close(pidfd)
    remove_tree(scratch)

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


def child_main(request, scratch, out_w, err_w, res_w):
    # If the worker dies (killed by the host as wedged), the run dies with it.
    prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for fd in (devnull, out_w, err_w):
        if fd > 2:
            os.close(fd)
    os.chdir(scratch)
    os.environ.clear()
    os.environ.update(
        {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": scratch,
            "TMPDIR": scratch,
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
        }
    )
    tempfile.tempdir = scratch
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    policy = request["policy"]
    apply_rlimits(policy)
    sys.stdout = open(1, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False)
    sys.__stdout__ = sys.stdout
    sys.__stderr__ = sys.stderr
    sys.stdin = open(0, "r", closefd=False)
    sys.argv = ["<user_code>"]

    report, status = execute(request.get("code", ""), request.get("input_data"), policy)
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


def apply_rlimits(policy):
    if resource is None:
        return
    mem = int(policy.get("memory_limit_mb", 256)) * 1024 * 1024
    timeout = int(policy.get("timeout_seconds", 5))
    limits = [
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_CORE, 0),
        # CPU time: a backstop behind the wall-clock deadline the worker enforces.
        (resource.RLIMIT_CPU, timeout + 1),
    ]
    for which, value in limits:
        try:
            _soft, hard = resource.getrlimit(which)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


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
    safe["__import__"] = make_import_hook(policy)
    return safe


def make_globals(policy, input_data):
    allow_mode = policy.get("mode") == "allow"
    allowed = set(policy.get("allowed_globals") or [])
    blocked = set(policy.get("blocked_globals") or [])
    g = {
        "__builtins__": make_builtins(policy),
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
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
        text = "".join(traceback.format_list(frames))
        if text:
            text = "Traceback (most recent call last):\n" + text
        text += "".join(traceback.format_exception_only(type(exc), exc))
        sys.stderr.write(text)
    except Exception:
        pass


def execute(code, input_data, policy):
    """Run user code; return (report, process exit status)."""
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
        g = make_globals(policy, input_data)
        try:
            exec(compiled, g)
        except SystemExit as exc:
            return exit_report(exc, g)
        except MemoryError:
            g = None
            return {"outcome": "memory_error"}, 1
        except BaseException as exc:
            print_user_traceback(exc)
            return {"outcome": "exception", "error": describe(exc)}, 1
        return {"outcome": "completed", "result": g.get("result")}, 0
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


def main(argv):
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
    set_child_subreaper()
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
    while True:
        try:
            message = read_frame(rfd)
        except (ValueError, UnicodeDecodeError) as exc:
            write_frame(wfd, {"type": "fatal", "message": "bad request frame: %s" % exc})
            return 3
        if message is None or message.get("type") == "shutdown":
            return 0
        if message.get("type") != "run":
            write_frame(wfd, {"type": "fatal", "message": "unknown message type"})
            return 3
        try:
            report = run_one(message, scratch_base, [rfd, wfd])
        except Exception as exc:  # a bug here must not look like a user error
            write_frame(wfd, {"type": "fatal", "message": "worker failure: %s" % describe(exc)})
            return 4
        write_frame(wfd, report)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
