# An attacker run for tests/isolation.rs: it looks for any secret of an earlier run
# (text of the form SPRSECRET- and 24 hex digits, which it does not know) everywhere a
# run can look, and says what it found and how much it searched. Only the kernel
# boundary stops it: its policy blocks nothing.
import ctypes
import gc
import os
import re
import socket
import stat
import sys

PATTERN = re.compile(r"SPRSECRET-[0-9a-f]{24}")
BYTES_PATTERN = re.compile(rb"SPRSECRET-[0-9a-f]{24}")
found = {}
stats = {}


def note(where, data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        for m in BYTES_PATTERN.finditer(bytes(data)):
            found.setdefault(m.group().decode(), where)
    elif isinstance(data, str):
        for m in PATTERN.finditer(data):
            found.setdefault(m.group(), where)


def count(key, n=1):
    stats[key] = stats.get(key, 0) + n


def attempt(key, fn):
    try:
        return fn()
    except Exception as e:
        stats.setdefault("errors", {})[key] = "%s: %s" % (type(e).__name__, e)
        return None


skip = set()
for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
    skip.add(os.path.realpath(p))

# 1. Every readable byte of this process's memory.
def memory():
    fd = os.open("/proc/self/mem", os.O_RDONLY)
    with open("/proc/self/maps") as f:
        maps = f.read().splitlines()
    for line in maps:
        addr, perms = line.split()[:2]
        if "r" not in perms:
            continue
        a, b = (int(x, 16) for x in addr.split("-"))
        try:
            data = os.pread(fd, b - a, a)
        except OSError:
            count("mem_unreadable_regions")
            continue
        count("mem_bytes", len(data))
        note("memory " + line, data)
    os.close(fd)


attempt("memory", memory)

# 2. Objects: frames up to the top, every module, every class and the globals of its
# functions, everything the collector tracks; strings and bytes inside them.
seen = set()


def walk(obj, where, depth=0):
    if depth > 6 or id(obj) in seen:
        return
    seen.add(id(obj))
    count("objects")
    if isinstance(obj, (str, bytes, bytearray)):
        note(where, obj)
        return
    if isinstance(obj, dict):
        items = list(obj.items())
        for k, v in items:
            walk(k, where, depth + 1)
            walk(v, where, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for v in list(obj):
            walk(v, where, depth + 1)
    elif isinstance(obj, types_with_dict):
        d = getattr(obj, "__dict__", None)
        if isinstance(d, dict):
            walk(d, where, depth + 1)


types_with_dict = (type(sys), type, type(lambda: 0))


def frames():
    f = sys._getframe()
    while f is not None:
        count("frames")
        walk(f.f_globals, "frame globals %s" % f.f_code.co_filename)
        walk(f.f_locals, "frame locals %s" % f.f_code.co_name)
        f = f.f_back


attempt("frames", frames)


def modules():
    for name, module in list(sys.modules.items()):
        count("modules")
        walk(getattr(module, "__dict__", {}), "module " + name)


attempt("modules", modules)


def subclasses():
    todo = [object]
    classes = set()
    while todo:
        cls = todo.pop()
        try:
            subs = type.__subclasses__(cls)
        except TypeError:
            continue
        for sub in subs:
            if sub not in classes:
                classes.add(sub)
                todo.append(sub)
    for cls in classes:
        count("classes")
        for value in list(vars(cls).values()):
            fn = getattr(value, "__func__", value)
            g = getattr(fn, "__globals__", None)
            if isinstance(g, dict):
                walk(g, "globals of %s" % cls.__qualname__)
            walk(getattr(fn, "__defaults__", None), "defaults of %s" % cls.__qualname__)
        init = getattr(cls, "__init__", None)
        g = getattr(init, "__globals__", None)
        if isinstance(g, dict):
            walk(g, "__init__.__globals__ of %s" % cls.__qualname__)


attempt("subclasses", subclasses)


def collector():
    for obj in gc.get_objects():
        count("gc_objects")
        walk(obj, "gc object %s" % type(obj).__name__)


attempt("gc", collector)
note("environ", repr(dict(os.environ)))
note("hostname", socket.gethostname())

# 3. Files: scratch, /tmp, /dev/shm and the whole view (bounded: not /proc, /sys, /usr
# or the Python installation).
def read_file(path):
    try:
        with open(path, "rb") as f:
            note("file " + path, f.read(1 << 20))
        count("files_read")
    except OSError:
        count("files_unreadable")


def scan_tree(top, budget=20000):
    for root, dirs, files in os.walk(top, onerror=lambda e: count("walk_errors")):
        real = os.path.realpath(root)
        if real in skip or any(real.startswith(p + "/") for p in skip):
            dirs[:] = []
            continue
        if root == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "usr")]
        note("name " + root, root)
        for name in dirs + files:
            note("name in " + root, name)
            budget -= 1
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                read_file(path)
        count("dirs_walked")
        if budget < 0:
            stats["walk_truncated"] = top
            return


for top in (os.getcwd(), "/tmp", "/dev/shm", "/"):
    attempt("walk " + top, lambda top=top: scan_tree(top))
stats["tmp"] = attempt("list /tmp", lambda: sorted(os.listdir("/tmp")))
stats["dev_shm"] = attempt("list /dev/shm", lambda: sorted(os.listdir("/dev/shm")))

# 4. /proc: every other process's entries (and the harness's pids 1 and 2, even if
# they are hidden), and the IPC tables.
def other_processes():
    pids = set(p for p in os.listdir("/proc") if p.isdigit())
    stats["proc_pids"] = sorted(pids, key=int)
    me = str(os.getpid())
    for pid in sorted(pids | {"1", "2"}):
        if pid == me:
            continue
        for entry in ("environ", "cmdline", "maps", "status", "stat", "comm"):
            path = "/proc/%s/%s" % (pid, entry)
            try:
                with open(path, "rb") as f:
                    note(path, f.read())
                count("proc_entries_read")
            except OSError:
                count("proc_entries_refused")
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                note("fd of " + pid, os.readlink("/proc/%s/fd/%s" % (pid, fd)))
        except OSError:
            count("proc_entries_refused")
        try:
            fd = os.open("/proc/%s/mem" % pid, os.O_RDONLY)
            os.close(fd)
            stats.setdefault("mem_opened", []).append(pid)
        except OSError:
            count("proc_entries_refused")


attempt("processes", other_processes)
for name in ("shm", "msg", "sem"):
    path = "/proc/sysvipc/" + name
    text = attempt(path, lambda path=path: open(path).read())
    if text is not None:
        note(path, text)
        stats["sysvipc_" + name] = len(text.splitlines()) - 1
note("/proc/net/unix", attempt("/proc/net/unix", lambda: open("/proc/net/unix").read()) or "")

# 5. IPC by guessed names and ids: the victim's SysV key and message queue, every
# shm id listed or in a small range, and its POSIX message queue.
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p


def attach(shmid):
    addr = libc.shmat(shmid, None, 0o10000)  # SHM_RDONLY
    if addr is None or addr == ctypes.c_void_p(-1).value:
        return False
    note("shm id %d" % shmid, ctypes.string_at(addr, 4096))
    libc.shmdt(ctypes.c_void_p(addr))
    count("shm_attached")
    return True


def sysv():
    ids = set(range(0, 64)) | set(k * 32768 + i for k in range(1, 4) for i in range(8))
    try:
        for line in open("/proc/sysvipc/shm").read().splitlines()[1:]:
            ids.add(int(line.split()[1]))
    except OSError:
        pass
    key = libc.shmget(0x5350, 0, 0)
    if key >= 0:
        ids.add(key)
        stats["victim_shm_key"] = key
    for shmid in sorted(ids):
        attach(shmid)
    qid = libc.msgget(0x5351, 0)
    if qid >= 0:
        stats["victim_msg_key"] = qid
        buf = ctypes.create_string_buffer(8 + 4096)
        n = libc.msgrcv(qid, buf, 4096, 0, 0o4000)  # IPC_NOWAIT
        if n > 0:
            note("sysv msg", buf.raw[8 : 8 + n])


attempt("sysv", sysv)


def posix_mq():
    mqd = libc.mq_open(b"/spr-victim", ctypes.c_int(0o4000))  # O_RDONLY | O_NONBLOCK
    if mqd < 0:
        stats["mq_open_errno"] = ctypes.get_errno()
        return
    stats["victim_mq_opened"] = True
    buf = ctypes.create_string_buffer(1 << 16)
    n = libc.mq_receive(mqd, buf, ctypes.c_size_t(1 << 16), None)
    if n > 0:
        note("posix mq", buf.raw[:n])


attempt("posix_mq", posix_mq)


def abstract():
    for line in open("/proc/net/unix").read().splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 8 and parts[-1].startswith("@"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect("\0" + parts[-1][1:])
                stats.setdefault("abstract_connected", []).append(parts[-1])
            except OSError:
                pass
            finally:
                sock.close()


attempt("abstract", abstract)
result = {"found": found, "stats": stats}
