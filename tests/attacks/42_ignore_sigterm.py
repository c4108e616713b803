# A child that ignores SIGTERM and SIGHUP.
import subprocess
subprocess.Popen(['/bin/sh', '-c', 'trap "" TERM HUP INT; sleep 30; : ' + marker], start_new_session=True)
