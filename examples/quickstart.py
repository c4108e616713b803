# The README's main job: `spr run examples/quickstart.py --input '{"x": 81}'`.
import math

print(f"computing the square root of {x}")
result = math.sqrt(x)
