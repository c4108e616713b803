# builtins.__spec__.loader is the built-in importer.
import sys
posix = sys.modules['builtins'].__spec__.loader.load_module('posix')
posix.system('touch ' + target)
