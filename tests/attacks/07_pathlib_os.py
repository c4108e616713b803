# Allowed modules expose os as an attribute (§5.5).
import pathlib
pathlib.os.system('touch ' + target)
