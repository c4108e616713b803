# TCP to a port the host listens on (§5.18).
import socket
s = socket.create_connection(('127.0.0.1', port), timeout=1)
s.sendall(b'exfiltrated')
