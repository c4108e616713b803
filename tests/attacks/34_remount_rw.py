# mount(2) to make the read-only view writable.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND = 32, 4096
print(libc.mount(None, b'/usr', None, MS_REMOUNT | MS_BIND, None), ctypes.get_errno())
print(libc.umount2(b'/usr', 2), ctypes.get_errno())
open('/usr/spr_attack_marker', 'w').write('x')
