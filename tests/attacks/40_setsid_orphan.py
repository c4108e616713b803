# A detached child outlives a successful run (§5.19).
import os
if os.fork() == 0:
    os.setsid()
    os.execv('/bin/sh', ['sh', '-c', 'sleep 30; : ' + marker])
result = 'parent done'
