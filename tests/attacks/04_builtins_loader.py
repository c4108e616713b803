# The copied builtins' __loader__ loads posix (§5.3).
__builtins__['__loader__'].load_module('posix').system('touch ' + target)
