# UDP datagram to the host.
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b'exfiltrated', ('127.0.0.1', port))
