# User audit hooks cannot undo the guard.
import sys
sys.addaudithook(lambda *a: None)
sys.modules['os'].system('touch ' + target)
