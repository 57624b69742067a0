"""Prints a free TCP port on 127.0.0.1 (for test servers that must not clash with `make run`)."""
import socket

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
