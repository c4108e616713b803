# Flood stderr at the descriptor level (§5.20).
import os
while True:
    os.write(2, b'e' * 65536)
