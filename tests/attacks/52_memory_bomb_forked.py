# Several processes, each under the address-space limit.
import os
for _ in range(8):
    if os.fork() == 0:
        try:
            b = bytearray(200 * 1024 * 1024)
        except MemoryError:
            pass
        os._exit(0)
os.wait()
