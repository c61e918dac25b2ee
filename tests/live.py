"""A real `bankapp serve` on a free loopback port, stopped by PID.

`LiveServer` is compare's `ServerProcess` (port 0, the port read from the
ready line, ready once /healthz answers, SIGTERM then SIGKILL) with the
HTTP calls the tests make. Everything is bounded in time.
"""

from __future__ import annotations

from contextlib import contextmanager

import requests

from bankapp.compare.processes import ServerProcess
from bankapp.compare.processes import stop_process as stop  # SIGTERM by PID, then SIGKILL

__all__ = ["LiveServer", "live_server", "stop"]


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


@contextmanager
def live_server(*flags: str, startup_timeout: float = 20, env: dict | None = None, new_session: bool = False):
    """Run `bankapp serve --host 127.0.0.1 --port 0 FLAGS...`; yield a `LiveServer`."""
    with LiveServer(*flags, env=env, startup_timeout=startup_timeout, new_session=new_session) as server:
        yield server
