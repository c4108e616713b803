# kill(-1, SIGKILL): everything the run may signal.
import os, signal
os.kill(-1, signal.SIGKILL)
