# A symlink in scratch pointing outside it.
import sys, io
os = sys.modules['os']
os.symlink(target, 'link')
io.open('link', 'w').write('x')
