# Host environment variables, directly and through /proc/*/environ (§5.17).
import os
print(dict(os.environ))
for pid in os.listdir('/proc'):
    try:
        print(open('/proc/%s/environ' % pid, 'rb').read())
    except Exception as e:
        print(e)
