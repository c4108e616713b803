# Run on a ready worker with pandas preloaded and no import or builtin checks: the page
# faults of the snippet (each a page the run had to copy, which the warm-up's
# pre-copy should have done for most) and the KiB of the run's memory in huge pages (the
# monitor's heap, shared), as its own /proc/self/smaps_rollup shows them.
import resource

import pandas as pd

f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = int(pd.DataFrame({"a": [1, 2]}).a.sum())
f1 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
with open("/proc/self/smaps_rollup") as f:
    huge = [int(line.split()[1]) for line in f if line.startswith("AnonHugePages:")]
result = [f1 - f0, huge[0]]
