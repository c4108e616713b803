# A watch on the read-only view every run shares (the stdlib here) would tell this run which
# files the other runs and sessions open, which modules they import.
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
if fd < 0:
    raise PermissionError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
IN_OPEN = 0x20
if libc.inotify_add_watch(fd, os.path.dirname(os.__file__).encode(), IN_OPEN) < 0:
    raise PermissionError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
result = "SPOOF"
