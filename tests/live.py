"""A real `bankapp serve` on a free loopback port, stopped by PID.

`LiveServer` is compare's `ServerProcess` (port 0, the port read from the
ready line, ready once /healthz answers, SIGTERM then SIGKILL) with the
HTTP calls the tests make. Everything is bounded in time.
"""

from __future__ import annotations

import http.client
import socket
import time
from contextlib import contextmanager
from functools import partial

import requests

from bankapp.server.processes import ServerProcess
from bankapp.server.processes import stop_process as stop  # SIGTERM by PID, then SIGKILL

from .harness import run_together

__all__ = ["LiveServer", "burst", "live_server", "stop"]


class LiveServer(ServerProcess):
    def get(self, path: str, **kwargs):
        return requests.get(self.url + path, timeout=10, **kwargs)

    def post(self, path: str, **kwargs):
        return requests.post(self.url + path, timeout=10, **kwargs)

    def patch(self, path: str, **kwargs):
        return requests.patch(self.url + path, timeout=10, **kwargs)

    def configure(self, **settings) -> dict:
        """PATCH the settings, then reset balances and counters."""
        response = self.patch("/admin/config", json=settings)
        assert response.status_code == 200, response.text
        assert self.post("/admin/reset").status_code == 200
        return response.json()

    def connect(self, timeout: float = 10) -> socket.socket:
        """A raw connection, for requests no HTTP library would send."""
        host, port = self.url.removeprefix("http://").rsplit(":", 1)
        return socket.create_connection((host, int(port)), timeout=timeout)

    def raw(self, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        """Send `data` as it is on a new connection; the answer's status, headers and body."""
        with self.connect(timeout) as sock:
            sock.sendall(data)
            return read_response(sock)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response from `sock`: status, headers (lower-case names), body."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return response.status, headers, response.read()


@contextmanager
def live_server(*flags: str, startup_timeout: float = 20, env: dict | None = None, new_session: bool = False):
    """Run `bankapp serve --host 127.0.0.1 --port 0 FLAGS...`; yield a `LiveServer`."""
    with LiveServer(*flags, env=env, startup_timeout=startup_timeout, new_session=new_session) as server:
        yield server


def burst(url: str, seconds: float, jobs: list, most: int = 400) -> None:
    """Each job `(path, json body)` POSTed in a loop by a thread of its own (one
    keep-alive session each) for `seconds`, at most `most` times; returns when all are done."""
    deadline = time.monotonic() + seconds

    def run(path, body):
        with requests.Session() as session:
            for _ in range(most):
                if time.monotonic() > deadline:
                    break
                session.post(url + path, json=body, timeout=10)

    run_together([partial(run, *job) for job in jobs], timeout=seconds + 60)
