"""Serving on loopback: the app and the trace viewer, each on its own port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from bot.doors.web.app import Origins, build
from bot.doors.web.security import LOOPBACK, allowed_hosts
from bot.doors.web.site import Site
from bot.doors.web.viewer import build_viewer

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def origins_for(port: int, viewer_port: int) -> Origins:
    return Origins(
        app=f"http://{HOST}:{port}",
        app_hosts=allowed_hosts(port),
        viewer=f"http://{HOST}:{viewer_port}",
        viewer_hosts=allowed_hosts(viewer_port),
        also=frozenset(f"http://{name}:{port}" for name in LOOPBACK),
    )


@dataclass
class Servers:
    app: uvicorn.Server
    viewer: uvicorn.Server
    origins: Origins


def servers(site: Site, port: int, viewer_port: int) -> Servers:
    origins = origins_for(port, viewer_port)
    app = build(site, origins)
    viewer = build_viewer(site, origins.app, origins.viewer_hosts)
    return Servers(_server(app, port), _server(viewer, viewer_port), origins)


def _server(app: FastAPI, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=HOST, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)


@contextmanager
def running(site: Site, port: int = 0, viewer_port: int = 0) -> Iterator[Origins]:
    """Both servers in background threads, for as long as the block lasts."""
    s = servers(site, port or free_port(), viewer_port or free_port())
    threads = [threading.Thread(target=x.run, daemon=True) for x in (s.app, s.viewer)]
    for t in threads:
        t.start()
    try:
        for server in (s.app, s.viewer):
            while not server.started:
                if not any(t.is_alive() for t in threads):
                    raise RuntimeError("the web servers did not start")
                threading.Event().wait(0.02)
        yield s.origins
    finally:
        for server in (s.app, s.viewer):
            server.should_exit = True
        for t in threads:
            t.join(5)
