"""Counters, gauges and the table of serving workers, in the database: exact across a fleet.

In one process, counters live under a small `threading.Lock`. Across
processes that lock protects nothing, so each counter is a row, changed
by one relative statement (`n = n + 1`) under the row lock PostgreSQL
takes for the UPDATE: exact however many workers count at once. A gauge
(in flight, waiting, at the gateway) is no row counter: it counts the
sessions holding an advisory lock (see `sql.HOLD_SHARED`), so it falls back
by itself when a holder's connection or worker dies; only its peak is a row.

Which workers served: each worker counts its requests in memory and adds
them to its row about once a second (`Workers`), and at once before it
answers `/stats`. Writing the row on every request would cost each
request a commit; `X-Served-By` already names the worker per response.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from typing import Any

from ..lab.store import StoreUnavailable
from . import sql
from .database import Database

log = logging.getLogger(__name__)

#: First keys of the checkout's shared advisory locks: (FLIGHT_KEY, 0) in flight, (FLIGHT_KEY, 1) at the gateway;
#: (QUEUE_KEY, n) the waiting room's places (see `bankapp.postgres.shop`).
FLIGHT_KEY, QUEUE_KEY = 4, 5
#: Seconds between two flushes of a worker's served count.
FLUSH_EVERY = 1.0


class Counters:
    """Named counters and gauges of the whole fleet."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, name: str, n: int = 1) -> None:
        with self.db.connection() as conn:
            conn.execute(sql.ADD_COUNTER, (name, n))

    def read(self) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
        """(counters, gauges as (now, peak)), on the thread's connection (call it inside a snapshot)."""
        with self.db.connection() as conn:
            counters = dict(conn.execute(sql.COUNTERS).fetchall())
            rows = conn.execute(
                sql.LIVE_GAUGES, {"flight": self.db.key(FLIGHT_KEY), "queue": self.db.key(QUEUE_KEY)}
            ).fetchall()
            gauges = {name: (now, peak) for name, now, peak in rows}
        return counters, gauges

    def reset(self) -> None:
        """Zero the counters and the gauges' peaks (what is in flight is counted from locks, and leaves later)."""
        with self.db.connection() as conn:
            conn.execute(sql.RESET_COUNTERS)
            conn.execute(sql.RESET_GAUGES)


class Workers:
    """This worker's row in `bankapp_workers`: which host and pid, and how many requests it served."""

    def __init__(self, db: Database):
        self.db = db
        self.host = socket.gethostname()
        self._lock = threading.Lock()
        self._unflushed = 0
        self._registered_pid: int | None = None
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def served(self) -> None:
        """One more request answered (called once per request, in memory)."""
        with self._lock:
            self._unflushed += 1
        if self._flusher is None or self._registered_pid != os.getpid():
            self.start()

    def start(self) -> None:
        """Register this worker and start flushing its count (once per process)."""
        with self._lock:
            if self._registered_pid == os.getpid():
                return
            self._registered_pid = os.getpid()
            self._stop.clear()
            self._flusher = threading.Thread(target=self._flush_loop, name="bankapp-served-flush", daemon=True)
            self._flusher.start()

    def _flush_loop(self) -> None:
        registered = False
        while not self._stop.wait(0 if not registered else FLUSH_EVERY):
            try:
                if not registered:
                    with self.db.connection() as conn:
                        conn.execute(sql.REGISTER_WORKER, (self.host, os.getpid()))
                    registered = True
                self.flush()
            except StoreUnavailable as error:  # the database is away: keep counting, flush when it is back
                log.info("bankapp: could not record served requests: %s", error)

    def flush(self) -> None:
        with self._lock:
            count, self._unflushed = self._unflushed, 0
        if not count:
            return
        try:
            with self.db.connection() as conn:
                conn.execute(sql.WORKER_SERVED, (self.host, os.getpid(), count))
        except BaseException:
            with self._lock:
                self._unflushed += count
            raise

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(StoreUnavailable):  # stopping while the database is away: those counts are lost
            self.flush()

    def rows(self) -> list[dict[str, Any]]:
        """The workers that served since the last reset (call it inside a snapshot)."""
        with self.db.connection() as conn:
            return [
                {
                    "host": host,
                    "pid": pid,
                    "served": served,
                    "started_at": started.isoformat(timespec="seconds"),
                    "last_seen": seen.isoformat(timespec="seconds"),
                }
                for host, pid, served, started, seen in conn.execute(sql.WORKERS).fetchall()
            ]

    def reset(self) -> None:
        with self._lock:
            self._unflushed = 0
        with self.db.connection() as conn:
            conn.execute(sql.RESET_WORKERS)
