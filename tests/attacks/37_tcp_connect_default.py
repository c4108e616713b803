# TCP through _socket under the default policy (§5.6).
import sys
socket = sys.modules['builtins'].__import__('_socket')
s = socket.socket()
s.connect(('127.0.0.1', port))
