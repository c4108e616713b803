# The host user's home directory.
import os
for home in ('/root', os.path.expanduser('~'), '/home'):
    try:
        print(home, os.listdir(home))
    except Exception as e:
        print(home, type(e).__name__)
