# Signal the host process by its pid (and by pidfd).
import os, signal
for sig in (signal.SIGSTOP, signal.SIGKILL):
    try:
        os.kill(host_pid, sig)
    except OSError as e:
        print(e)
try:
    fd = os.pidfd_open(host_pid)
    signal.pidfd_send_signal(fd, signal.SIGKILL)
except OSError as e:
    print(e)
