"""Run a program in a sandbox container with fds 3 and 4 carried across `docker exec`.

Playwright drives Chromium over --remote-debugging-pipe: it writes to the child's
fd 3 and reads from its fd 4. An exec carries only stdin and stdout, so this
launcher bridges them: host fd 3 -> exec stdin -> the program's fd 3, and the
program's fd 4 -> exec stdout -> host fd 4. The program's own output arrives on
stderr. It runs as the sandbox user; the container's lifetime bounds the program's.

    python -m bot.adapters.sandbox.dockerpipe CONTAINER USER -- ARGV...
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterator
from typing import cast

import docker

# Inside the container: the exec's stdin becomes fd 3 and its stdout fd 4.
SHELL = 'exec "$@" 3<&0 4>&1 1>&2 </dev/null'
PIPE_IN, PIPE_OUT = 3, 4
STDOUT = 1  # the attach stream's frames: 8-byte header (stream, 0, 0, 0, size), payload


def _exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def frames(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """(stream, payload) frames of a non-tty exec until its end."""
    while True:
        try:
            header = _exactly(sock, 8)
            yield header[0], _exactly(sock, int.from_bytes(header[4:], "big"))
        except EOFError:
            return


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _upstream(sock: socket.socket) -> None:
    """Host fd 3 -> the exec's stdin; end of input is passed on as a half-close."""
    try:
        while data := os.read(PIPE_IN, 1 << 16):
            sock.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    container, user, command = argv[0], argv[1], argv[3:]
    api = docker.from_env().api
    exec_id = api.exec_create(
        container, ["sh", "-c", SHELL, "sh", *command], stdin=True, user=user, workdir="/tmp"
    )["Id"]
    stream = api.exec_start(exec_id, socket=True)
    # docker-py hands back a SocketIO over the hijacked connection; the socket is inside.
    raw = cast(socket.socket, getattr(stream, "_sock", stream))
    raw.settimeout(None)  # a browser may sit idle between steps for as long as it likes
    threading.Thread(target=_upstream, args=(raw,), daemon=True).start()
    try:
        for kind, data in frames(raw):
            _write_all(PIPE_OUT if kind == STDOUT else 2, data)
    except OSError:
        return 1  # the reader went away (Playwright closed the pipe): nothing left to carry
    code = api.exec_inspect(exec_id).get("ExitCode")
    return int(code) if code is not None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
