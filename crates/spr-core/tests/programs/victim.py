# A victim run for tests/isolation.rs: it spreads its secret (@SECRET@ is replaced by the
# test) everywhere a run can write, and leaves all of it behind. Its input and its
# policy's extra_globals carry the secret too (set by the test).
import ctypes
import os
import socket
import sys

s = "@SECRET@"
planted = {}
keep = []


def plant(name, fn):
    try:
        fn()
        planted[name] = True
    except Exception as e:  # what this worker refuses is fine: it is recorded
        planted[name] = "%s: %s" % (type(e).__name__, e)


def write(path):
    with open(path, "w") as f:
        f.write(s)


print("stdout " + s)
print("stderr " + s, file=sys.stderr)
plant("scratch", lambda: write("scratch-" + s))
plant("tmp", lambda: write("/tmp/tmp-" + s))


def hidden():
    os.makedirs("/tmp/.hidden-" + s, exist_ok=True)
    write("/tmp/.hidden-%s/f" % s)


plant("tmp_hidden", hidden)
plant("dev_shm", lambda: write("/dev/shm/shm-" + s))
plant("fifo", lambda: os.mkfifo("/tmp/fifo-" + s))


def unix_socket():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("/tmp/sock-" + s)
    sock.listen(1)
    keep.append(sock)


plant("unix_socket", unix_socket)


def abstract_socket():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("\0abstract-" + s)
    sock.listen(1)
    keep.append(sock)


plant("abstract_socket", abstract_socket)
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p


def fail(what):
    e = ctypes.get_errno()
    raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def sysv_shm():
    sid = libc.shmget(0x5350, 4096, 0o1666)  # IPC_CREAT | 0666
    if sid < 0:
        fail("shmget")
    addr = libc.shmat(sid, None, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        fail("shmat")
    ctypes.memmove(addr, s.encode(), len(s))
    libc.shmdt(ctypes.c_void_p(addr))


plant("sysv_shm", sysv_shm)


def sysv_msg():
    qid = libc.msgget(0x5351, 0o1666)
    if qid < 0:
        fail("msgget")
    body = s.encode()
    buf = ctypes.create_string_buffer(8 + len(body))
    ctypes.memmove(ctypes.addressof(buf), (1).to_bytes(8, "little"), 8)
    ctypes.memmove(ctypes.addressof(buf) + 8, body, len(body))
    if libc.msgsnd(qid, buf, len(body), 0o4000) != 0:  # IPC_NOWAIT
        fail("msgsnd")


plant("sysv_msg", sysv_msg)


def posix_mq():
    mqd = libc.mq_open(b"/spr-victim", ctypes.c_int(0o100 | 0o1), ctypes.c_int(0o666), None)
    if mqd < 0:
        fail("mq_open")
    body = s.encode()
    if libc.mq_send(mqd, body, ctypes.c_size_t(len(body)), ctypes.c_uint(0)) != 0:
        fail("mq_send")


plant("posix_mq", posix_mq)
os.environ["VICTIM"] = s
keep.append([s + str(i) for i in range(1000)])
result = {"planted": planted, "echo": s + "-result"}
