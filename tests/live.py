"""A real `bankapp serve` on a free loopback port, stopped by PID.

The server is started with `--port 0`; the port gunicorn actually bound is
read from its "ready at" line. Everything is bounded in time.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import requests

from bankapp.compare.runner import stop_process as stop  # SIGTERM by PID, then SIGKILL

READY = re.compile(r"bankapp: ready at (http://127\.0\.0\.1:\d+)")


class LiveServer:
    def __init__(self, process: subprocess.Popen, url: str, output: list[str]):
        self.process = process
        self.url = url
        self.output = output

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


def _pump(stream, lines: list[str], ready: threading.Event, found: list[str]) -> None:
    for line in stream:
        lines.append(line)
        match = READY.search(line)
        if match and not found:
            found.append(match.group(1))
            ready.set()
    ready.set()


@contextmanager
def live_server(*flags: str, startup_timeout: float = 20, env: dict | None = None):
    """Run `bankapp serve --port 0 FLAGS...`; yield a `LiveServer`."""
    command = [sys.executable, "-m", "bankapp", "serve", "--host", "127.0.0.1", "--port", "0", *flags]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: list[str] = []
    found: list[str] = []
    ready = threading.Event()
    pump = threading.Thread(target=_pump, args=(process.stdout, lines, ready, found), daemon=True)
    pump.start()
    try:
        ready.wait(startup_timeout)
        if not found:
            raise RuntimeError("bankapp serve did not start:\n" + "".join(lines))
        server = LiveServer(process, found[0], lines)
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                if requests.get(server.url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("bankapp serve never answered /healthz:\n" + "".join(lines))
            time.sleep(0.05)
        yield server
    finally:
        stop(process)
        pump.join(10)
        process.stdout.close()
