# A timeout with children that ignore SIGTERM (§5.19).
import os, signal
signal.signal(signal.SIGXCPU, signal.SIG_IGN)
for _ in range(3):
    if os.fork() == 0:
        os.execv('/bin/sh', ['sh', '-c', 'trap "" TERM; sleep 30; : ' + marker])
while True:
    pass
