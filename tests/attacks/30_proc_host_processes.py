# List the host's processes through /proc.
import os
for pid in os.listdir('/proc'):
    if pid.isdigit():
        try:
            print(pid, open('/proc/%s/cmdline' % pid, 'rb').read())
        except Exception as e:
            print(pid, e)
