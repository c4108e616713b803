# posix is os under another name (§5.6).
import posix
posix.system('touch ' + target)
