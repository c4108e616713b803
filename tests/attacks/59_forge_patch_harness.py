# Patch the harness's module globals through a class it defines.
for c in object.__subclasses__():
    g = getattr(getattr(c, '__init__', None), '__globals__', None)
    if isinstance(g, dict) and 'encode_report' in g:
        g['describe'] = lambda e: 'SPOOF'
        g['execute'] = None
raise ValueError('real')
