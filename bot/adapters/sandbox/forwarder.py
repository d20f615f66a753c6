"""Runs inside the sandbox: 127.0.0.1:PORT -> the egress proxy's unix socket.

The sandbox has no network interface but loopback, so HTTP(S)_PROXY points at this
listener, and the only thing it can reach is the socket bound into the sandbox.
Standalone (stdlib only, no `bot` import): it runs with the sandbox's python3.

    forwarder.py SOCKET PORT            serve until killed
    forwarder.py SOCKET PORT -- CMD...  listen, serve in a child, exec CMD
"""

import contextlib
import os
import socket
import sys
import threading


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def serve(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(path)
        except OSError:
            client.close()
            upstream.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


def main(argv: list[str]) -> None:
    path, port = argv[0], int(argv[1])
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    command = argv[3:] if len(argv) > 3 and argv[2] == "--" else []
    # Listening before CMD starts, so its first request cannot race the forwarder.
    if command and os.fork() != 0:
        listener.close()
        os.execvp(command[0], command)
    if command:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # CMD's pipes must close when CMD's output ends
        # ... and so must any other fd CMD was given (Chromium's debugging pipe is 3 and 4).
        os.closerange(3, listener.fileno())
        os.closerange(listener.fileno() + 1, os.sysconf("SC_OPEN_MAX"))
    serve(listener, path)


if __name__ == "__main__":
    main(sys.argv[1:])
