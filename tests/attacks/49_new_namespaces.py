# unshare, io_uring and bpf: kernel attack surface.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
print(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), ctypes.get_errno())
print(libc.syscall(425, 8, None), ctypes.get_errno())  # io_uring_setup
print(libc.syscall(321, 0, None, 0), ctypes.get_errno())  # bpf
