# Shared anonymous memory is not private data (RLIMIT_DATA): map 2 GiB of it and touch every page.
import mmap

m = mmap.mmap(-1, 2 << 30)
for offset in range(0, len(m), mmap.PAGESIZE):
    m[offset] = 1
result = "SPOOF"
