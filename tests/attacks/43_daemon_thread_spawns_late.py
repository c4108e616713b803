# A daemon thread that starts a process after the run reported.
import threading, time, subprocess
def later():
    time.sleep(0.3)
    subprocess.Popen(['/bin/sh', '-c', 'sleep 30; : ' + marker])
threading.Thread(target=later, daemon=True).start()
result = 'done'
