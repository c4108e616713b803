# _posixsubprocess.fork_exec starts processes without an audit event (§5.6).
import builtins
ps = builtins.__import__('_posixsubprocess')
import sys
ps.fork_exec([b'/usr/bin/touch', target.encode()], [b'/usr/bin/touch'], True, (), None, None, -1, -1, -1, -1, -1, -1, -1, -1, False, False, None, None, None, -1, None, False)
