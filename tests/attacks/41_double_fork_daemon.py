# A classic double-forked daemon.
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.chdir('/')
        os.execv('/bin/sh', ['sh', '-c', 'sleep 30; : ' + marker])
    os._exit(0)
os.wait()
