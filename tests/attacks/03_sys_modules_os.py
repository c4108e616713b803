# sys.modules['os'] is the full os module (§5.4).
import sys
os = sys.modules['os']
print(dict(os.environ))
os.system('touch ' + target)
