# Fill the scratch filesystem with many files.
import os
for i in range(100000):
    with open('/tmp/f%d' % i, 'wb') as f:
        f.write(b'x' * (1 << 16))
