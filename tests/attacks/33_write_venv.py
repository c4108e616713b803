# Write into the venv (shared by every run).
import sys, os
open(os.path.join(sys.prefix, 'spr_attack_marker'), 'w').write('x')
