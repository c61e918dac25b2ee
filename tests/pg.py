"""A PostgreSQL for the tests: databases made for a test and dropped after it, and a plug to pull.

The server is `BANKAPP_TEST_DATABASE_URL` (a maintenance database URL),
by default `postgresql://root@127.0.0.1:5432/postgres`, CI's. Each
database is named `bankapp_test_<pid>_<n>`, so runs that share the server
never meet; dropping one first ends its backends (a server still stopping
may hold some). Without a reachable server the tests skip, saying why,
except under `CI=true`, where that is a failure: CI has one.

`Plug` stands between bankapp and PostgreSQL: a TCP relay on a loopback
port that can be pulled out (the port refuses connections and every
relayed connection is cut) and put back on the same port, for the
"database gone at run time" tests.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ADMIN_URL = os.environ.get("BANKAPP_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/postgres")


def with_database(url: str, name: str, netloc: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}", netloc=netloc or parts.netloc))


#: One count for the process: two `Databases` in one test run (the session's, the guide test's) never pick one name.
_IDS = itertools.count(1)


class Databases:
    """Creates databases on demand and drops every one of them at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._ids = _IDS

    def admin(self, patience: float = 30.0) -> psycopg.Connection:
        """A maintenance connection. The server is shared by the whole suite (and its fleets' pools): while it
        is at max_connections a new one is refused for a moment, so that refusal is waited out, nothing else."""
        deadline = time.monotonic() + patience
        while True:
            try:
                return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as error:
                if "too many clients" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def create(self) -> str:
        name = f"bankapp_test_{os.getpid()}_{next(self._ids)}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return with_database(ADMIN_URL, name)

    def terminate(self, url: str, application_prefix: str = "bankapp ", conn: psycopg.Connection | None = None) -> int:
        """`pg_terminate_backend` on every backend of bankapp's on that database; how many.

        A killer that runs beside load passes an admin connection it opened beforehand: the shared server may
        be at max_connections while the fleet's pools reconnect, and a new connection would then be refused.
        """
        if conn is None:
            with self.admin() as own:
                return self.terminate(url, application_prefix, own)
        name = urlsplit(url).path.lstrip("/")
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
            "AND application_name LIKE %s AND pid <> pg_backend_pid()",
            (name, application_prefix + "%"),
        ).fetchall()
        return len(rows)

    def drop_all(self) -> None:
        with self.admin() as conn:
            for name in self.names:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        self.names.clear()


def reachable_or_skip() -> Databases:
    databases = Databases()
    try:
        databases.admin().close()
    except psycopg.Error as error:
        reason = f"no PostgreSQL at {ADMIN_URL} ({' '.join(str(error).split())}); set BANKAPP_TEST_DATABASE_URL"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have PostgreSQL: {reason}")
        pytest.skip(reason)
    return databases


class Plug:
    """A TCP relay to PostgreSQL on a fixed loopback port: `pull()` cuts it, `push()` restores it."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.push()

    def url(self, url: str) -> str:
        """`url` through the plug."""
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        return with_database(url, parts.path.lstrip("/"), f"{user}@127.0.0.1:{self.port}" if user else None)

    def push(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def pull(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener:
            # shutdown wakes the thread blocked in accept(); close alone would leave the port listening
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # pulled
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # pulled while this one was connecting
                    client.close()
                    server.close()
                    return
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def until(check, timeout: float = 40.0, what: str = "not so") -> None:
    """Poll `check()` until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} within {timeout} s")
