# Fill the disk from scratch.
import os
with open('big', 'wb') as f:
    for _ in range(4096):
        f.write(b'x' * (1 << 20))
