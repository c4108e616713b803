# Change the host's hostname.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.sethostname(b'pwned', 5), ctypes.get_errno())
