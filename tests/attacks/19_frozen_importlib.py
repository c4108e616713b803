# _frozen_importlib's BuiltinImporter loads posix (§5.11).
import sys
bi = sys.modules['_frozen_importlib'].BuiltinImporter
bi.load_module('posix').system('touch ' + target)
