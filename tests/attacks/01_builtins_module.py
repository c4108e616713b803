# The real builtins module gives back the real __import__ (§5.1).
import builtins
builtins.__import__('os').system('touch ' + target)
