"""Checkout with the postgres store: admission per process, or fleet-wide with advisory locks.

The shop is the domain's (`Shop.checkout`): admit, reserve, pay. What
changes is where each part lives:

- `unsafe`, `lock`, `rlock`, `semaphore` are the Python primitives, so they
  admit per process: a `semaphore` of 8 on 4 workers admits up to 32, and
  the payment gateway behind them, shared by the fleet, overloads;
- `advisory-lock` is one session-level advisory lock: one checkout at a
  time in the whole fleet. Waiting for it is PostgreSQL's own (fair) lock
  queue, bounded by `lock_timeout_ms`;
- `advisory-semaphore` is `capacity` advisory locks, one per slot
  (`sql.TRY_ADVISORY_SLOT`): at most `capacity` checkouts hold one,
  whichever worker or machine they run on. PostgreSQL has no "wait for any
  of N locks", so a waiting checkout tries again every `SLOT_POLL_MS`,
  until `admission_timeout_ms` runs out.

The queue (`max_waiting`), the 503 with `Retry-After`, and the counters
(`in_flight`, `peak_in_flight`, `waiting`, admitted, rejected) are the
domain's `Admission`, with the counters in the database, so fleet-wide.

Stock is reserved with one guarded `UPDATE` (never oversells), except
under `unsafe`, which reads, waits and writes, and oversells.

A checkout keeps one connection from start to end: a session-level
advisory lock belongs to its session, and is released by it (or by the
session ending, should the worker die).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from psycopg import errors

from ..lab.admission import Admission, Gate
from ..lab.guards import Guard, GuardSet
from ..lab.reservoir import Reservoir
from ..lab.shop import Checkouts, Order, OutOfStock, PaymentGateway
from ..settings import Config
from . import sql
from .counters import FLIGHT_KEY, QUEUE_KEY, Counters
from .database import Database, lock_timeout_setting, one, release_all
from .store import StockTable

#: First keys of the checkout's advisory locks (see `locks.ADVISORY_KEYS`).
CHECKOUT_KEY, SLOT_KEY = 2, 3
#: How often a waiting checkout tries the advisory semaphore's slots again.
SLOT_POLL_MS = 5


class AdvisoryLockGuard(Guard):
    """One session-level advisory lock: one checkout at a time, fleet-wide."""

    name = "advisory-lock"

    def __init__(self, db: Database):
        super().__init__("checkout")
        self.db = db

    def _acquire(self, timeout: float) -> bool:
        with self.db.connection() as conn:
            if timeout == 0:
                return one(conn.execute(sql.TRY_ADVISORY_LOCK, (self.db.key(CHECKOUT_KEY), 0)))[0]
            try:
                waited = lock_timeout_setting(None if timeout < 0 else timeout * 1000)
                conn.execute(sql.WAIT_ADVISORY_LOCK, (waited, self.db.key(CHECKOUT_KEY), 0))
                return True
            except errors.LockNotAvailable:
                return False

    def _release(self) -> None:
        with self.db.connection() as conn:
            conn.execute(sql.ADVISORY_UNLOCK, (self.db.key(CHECKOUT_KEY), 0))


class AdvisorySemaphoreGuard(Guard):
    """`capacity` advisory-lock slots: at most that many checkouts in the whole fleet."""

    name = "advisory-semaphore"

    def __init__(self, db: Database, permits: int):
        super().__init__("checkout", permits)
        self.db = db
        self.permits = permits
        self._slot = threading.local()

    @property
    def excludes(self) -> bool:
        return self.permits == 1

    def _acquire(self, timeout: float) -> bool:
        deadline = None if timeout < 0 else time.monotonic() + timeout
        with self.db.connection() as conn:
            while True:
                row = conn.execute(sql.TRY_ADVISORY_SLOT, (self.permits, self.db.key(SLOT_KEY))).fetchone()
                if row is not None:
                    self._slot.value = row[0]
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(random.uniform(0.5, 1.5) * SLOT_POLL_MS / 1000)

    def _release(self) -> None:
        with self.db.connection() as conn:
            conn.execute(sql.ADVISORY_UNLOCK, (self.db.key(SLOT_KEY), self._slot.value))

    def available_permits(self) -> int:
        with self.db.connection() as conn:
            held = one(conn.execute(sql.ADVISORY_HELD, (self.db.key(SLOT_KEY),)))[0]
        return max(0, self.permits - held)


class DatabaseAdmission(Admission):
    """The domain's admission protocol, counted fleet-wide from locks that die with their session.

    In flight is a shared advisory lock each admitted checkout holds on its
    own connection (`sql.HOLD_SHARED`); waiting is one of `max_waiting`
    advisory places (`sql.TRY_ADVISORY_SLOT`), which also makes the queue's
    bound exact across the fleet. Counted so, nothing stays taken when the
    database goes away mid-checkout or a worker is killed: the session ends
    and its locks with it. Only the peaks and the totals are rows.
    """

    def __init__(self, counters: Counters):
        self.counters = counters
        self._place = threading.local()
        super().__init__()

    def reset(self) -> None:
        with self._lock:
            self._waits.clear()

    def _enter(self, waited_ms: float) -> None:
        with self.counters.db.connection() as conn:
            conn.execute(sql.HOLD_SHARED, (self.counters.db.key(FLIGHT_KEY), 0))
            conn.execute(sql.HOLDERS_AND_PEAK, (self.counters.db.key(FLIGHT_KEY), 0, "checkout.in_flight"))
        with self._lock:
            self._waits.add(waited_ms)

    def _leave(self) -> None:
        with self.counters.db.connection() as conn:
            conn.execute(sql.UNHOLD_SHARED, (self.counters.db.key(FLIGHT_KEY), 0))

    def _join_queue(self, max_waiting: int) -> bool:
        with self.counters.db.connection() as conn:
            row = conn.execute(sql.TRY_ADVISORY_SLOT, (max_waiting, self.counters.db.key(QUEUE_KEY))).fetchone()
            if row is None:
                return False
            self._place.value = row[0]
            waiting = one(conn.execute(sql.ADVISORY_HELD, (self.counters.db.key(QUEUE_KEY),)))[0]
            conn.execute(sql.RAISE_PEAK, (waiting, "checkout.waiting"))
        return True

    def _leave_queue(self, admitted_after_ms: float | None) -> None:
        with self.counters.db.connection() as conn:
            conn.execute(sql.ADVISORY_UNLOCK, (self.counters.db.key(QUEUE_KEY), self._place.value))
        if admitted_after_ms is not None:
            self._enter(admitted_after_ms)

    def _count_rejection(self, reason: str) -> tuple[int, int]:
        with self.counters.db.connection() as conn:
            conn.execute(sql.REJECT, (f"checkout.rejected.{reason}",))
            in_flight = one(conn.execute(sql.HOLDERS, (self.counters.db.key(FLIGHT_KEY), 0)))[0]
            waiting = one(conn.execute(sql.ADVISORY_HELD, (self.counters.db.key(QUEUE_KEY),)))[0]
        return in_flight, waiting

    def wait_summary(self) -> dict[str, Any]:
        with self._lock:
            return self._waits.summary()


class DatabaseGateway(PaymentGateway):
    """The payment gateway, loaded by the whole fleet: who is inside holds a shared advisory lock."""

    def __init__(self, counters: Counters):
        super().__init__()
        self.counters = counters

    def reset(self) -> None:
        pass  # the gauges' reset restarts the peak

    def _enter(self) -> int:
        with self.counters.db.connection() as conn:
            conn.execute(sql.HOLD_SHARED, (self.counters.db.key(FLIGHT_KEY), 1))
            return one(conn.execute(sql.HOLDERS_AND_PEAK, (self.counters.db.key(FLIGHT_KEY), 1, "checkout.gateway")))[0]

    def _leave(self) -> None:
        with self.counters.db.connection() as conn:
            conn.execute(sql.UNHOLD_SHARED, (self.counters.db.key(FLIGHT_KEY), 1))


class DatabaseSales:
    """The shop's `SalesLedger`: counters in the database, latencies per worker, order ids from a sequence."""

    def __init__(self, counters: Counters, stock: StockTable):
        self.counters = counters
        self.stock = stock
        self._lock = threading.Lock()
        self._latency = Reservoir()

    def next_order_id(self) -> str:
        with self.counters.db.connection() as conn:
            return f"ord-{one(conn.execute(sql.NEXT_ORDER_ID))[0]:06d}"

    def reserved(self, sku: str, quantity: int) -> None:
        self.stock.count_sold(sku, quantity)

    def completed_order(self, latency_ms: float) -> None:
        self._outcome("checkout.completed")
        with self._lock:
            self._latency.add(latency_ms)

    def refused_out_of_stock(self) -> None:
        self._outcome("checkout.out_of_stock")

    def failed_after_admission(self) -> None:
        self._outcome("checkout.failed")

    def _outcome(self, name: str) -> None:
        """`admitted` and the outcome, counted together (see `sql.COUNT_OUTCOME`)."""
        with self.counters.db.connection() as conn:
            conn.execute(sql.COUNT_OUTCOME, (name,))

    def reset(self) -> None:
        with self._lock:
            self._latency.clear()

    def latency_summary(self) -> dict[str, Any]:
        with self._lock:
            return self._latency.summary()


class DatabaseShop(Checkouts[StockTable, DatabaseSales]):
    """The domain's checkouts, their stock and counters in PostgreSQL, with the fleet-wide advisory guards."""

    admission: DatabaseAdmission
    gateway: DatabaseGateway

    def __init__(self, db: Database, config: Callable[[], Config], guards: GuardSet, gate: Gate, counters: Counters):
        stock = StockTable(db)
        super().__init__(config, guards, gate, stock, DatabaseSales(counters, stock))
        self.db = db
        self.counters = counters
        self.admission = DatabaseAdmission(counters)
        self.gateway = DatabaseGateway(counters)
        self._advisory: dict[tuple[str, int], Guard] = {}

    def admission_guard(self, config: Config) -> Guard:
        kind = config.checkout_guard
        if kind == "advisory-lock":
            return self._advisory.setdefault((kind, 1), AdvisoryLockGuard(self.db))
        if kind == "advisory-semaphore":
            return self._advisory.setdefault((kind, config.capacity), AdvisorySemaphoreGuard(self.db, config.capacity))
        return super().admission_guard(config)

    def checkout(self, sku: str, quantity: int) -> Order:
        """The domain's checkout, on one connection from start to end (see the module docstring).

        Its advisory locks are given back at the end whatever happened: a
        connection returned to the pool with one still held would keep a
        permit (or a place in flight) taken for as long as it lives.
        """
        with self.db.connection() as conn:
            try:
                return super().checkout(sku, quantity)
            finally:
                release_all(conn)

    def _reserve(self, sku: str, quantity: int, config: Config) -> int:
        """`unsafe` checks, waits and writes (the domain's way, oversells); every other guard reserves in one
        guarded UPDATE."""
        if config.checkout_guard == "unsafe":
            return super()._reserve(sku, quantity, config)
        remaining = self.inventory.reserve(sku, quantity)
        if remaining is None:
            raise OutOfStock(sku, self.inventory.read(sku), quantity)
        return remaining

    def available_permits(self, config: Config) -> int | None:
        guard = self.admission_guard(config)
        if isinstance(guard, AdvisorySemaphoreGuard):
            return guard.available_permits()
        return super().available_permits(config)  # a Python semaphore's: this worker's alone

    def report(
        self, config: Config, counters: dict[str, int], gauges: dict[str, Any], stock: list[tuple[Any, ...]]
    ) -> dict[str, Any]:
        """`/stats`' checkout section, from one snapshot (the percentiles are this worker's)."""
        in_flight, peak = gauges.get("checkout.in_flight", (0, 0))
        waiting, peak_waiting = gauges.get("checkout.waiting", (0, 0))
        gateway, gateway_peak = gauges.get("checkout.gateway", (0, 0))
        prefix = "checkout.rejected."
        return {
            "guard": config.checkout_guard,
            "capacity": config.admission_limit(),
            "limit": self.current_limit(config),
            "available_permits": self.available_permits(config),
            "admits": "fleet" if config.checkout_guard.startswith("advisory") else "per worker",
            "max_waiting": config.max_waiting,
            "gateway_capacity": config.gateway_capacity,
            "gateway_in_use": gateway,
            "gateway_peak_in_use": gateway_peak,
            "in_flight": in_flight,
            "peak_in_flight": peak,
            "waiting": waiting,
            "peak_waiting": peak_waiting,
            # counted with its outcome (see `sql.COUNT_OUTCOME`): a checkout in flight is in `in_flight`, and
            # joins `admitted` as it finishes, so the counter only ever grows and is exact at any moment
            "admitted": counters.get("checkout.admitted", 0),
            "rejected": counters.get("checkout.rejected", 0),
            "rejections": {name[len(prefix) :]: n for name, n in counters.items() if name.startswith(prefix) and n},
            "wait_ms": self.admission.wait_summary(),
            "completed": counters.get("checkout.completed", 0),
            "out_of_stock": counters.get("checkout.out_of_stock", 0),
            "failed": counters.get("checkout.failed", 0),
            "sold": {sku: sold for sku, _, _, sold in stock},
            "oversold": sum(max(0, sold - initial) for _, _, initial, sold in stock),
            "latency_ms": self.ledger.latency_summary(),
            "percentiles_of": "this worker",
            "stock": {sku: units for sku, units, _, _ in stock},
        }
