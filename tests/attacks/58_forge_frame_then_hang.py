# Write a success frame on every descriptor, then hang: the timeout must win (§5.13).
import os
for fd in range(3, 64):
    try:
        os.write(fd, b'{"outcome":"completed","result":"SPOOF"}')
    except OSError:
        pass
while True:
    pass
