# pathlib writes an arbitrary host file (§5.7).
import pathlib
pathlib.Path(target).write_text('x')
