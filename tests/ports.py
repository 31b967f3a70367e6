import random
import socket

# Ports are picked below Linux's ephemeral range (32768-60999 by default), which is where the
# OS takes the local port of every outgoing connection: a port the OS picked as free (bind to
# 0) was taken again by some connection before the test's server bound it, now and then
# (`Port ... is not available` from the Dapr CLI, an app exiting with status 3), once a
# suite had opened thousands of connections. Below the range only listeners compete.
_LOWEST, _BELOW = 20000, 32768
_given: set[int] = set()  # never the same port twice in one test process


def free_port() -> int:
    """A TCP port nothing listens on right now, and none this process handed out before."""
    for _ in range(1000):
        port = random.randrange(_LOWEST, _BELOW)
        if port in _given:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {_LOWEST}-{_BELOW - 1}")
