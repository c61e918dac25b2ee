"""The lab: one bank, one transfer desk and one shop per app, over one store.

`create_app()` makes a new `Lab`, so every app, and so every test, starts
from fresh balances, guards and counters. The parts that hold state can be
swapped: `store` (the balances) and `inventory` (the shop's stock) default
to the in-memory ones, and a test, or another kind of store, hands in its
own. Everything else is wired here, once: the bank, the transfer desk and
the audit share one store, one ledger and one table of account locks, and
every operation that can wait on a lock passes one `Gate`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..settings import RESERVED_THREADS, Config, ConfigHolder
from .admission import ServerBusy
from .bank import Bank
from .guards import DeadlockVictim, Guard, GuardSet, GuardWait
from .ledger import LedgerStats
from .locks import LockTable
from .shop import Inventory, Shop
from .store import MemoryStore, Store
from .transfers import TransferDesk

#: How long a reset waits for the operations in flight to finish (breaking
#: deadlocks meanwhile), and so how long a request that comes during a reset waits for it.
RESET_WAIT_S = 10.0
#: How often a waiting reset looks for deadlocks to break.
RESET_BREAK_EVERY_S = 0.05


class ResetInProgress(Exception):
    """Refused because a reset runs: it did not finish within `waited_s`, or (`operation` reset) it is not done yet."""

    def __init__(self, operation: str, waited_s: float):
        self.operation = operation
        self.waited_s = round(waited_s, 3)
        if operation == "reset":
            message = "another reset is running; this one changed nothing"
        else:
            message = f"{operation} refused: a reset of the lab ran and had not finished after {self.waited_s:g} s"
        super().__init__(message)


class ResetBlocked(Exception):
    """A reset that gave up after `waited_s`: `blocking` are the operations still in flight. Nothing was reset."""

    def __init__(self, waited_s: float, blocking: list[dict]):
        self.waited_s = waited_s
        self.blocking = blocking
        named = "; ".join(
            f"{op['operation']} on thread {op['thread']} for {op['running_ms']:g} ms"
            f" holding {', '.join(op['holds']) or 'nothing'}"
            + (f" and waiting for {', '.join(op['waits_for'])}" if op["waits_for"] else "")
            for op in blocking
        )
        super().__init__(
            f"reset gave up after {waited_s:g} s and changed nothing: {len(blocking)} operation(s) in flight "
            f"did not finish and no deadlock held them: {named}"
        )


@dataclass(slots=True)
class Operation:
    """One request inside a domain operation: what it is, on which thread, since when (monotonic)."""

    name: str
    thread: str
    ident: int
    since: float


class Gate:
    """The door of every domain operation that can wait on a lock: a thread budget, and a reset's barrier.

    Two jobs, one small lock:

    - the budget: at most `limit` requests may be inside (or queued at the
      door) at once. A thread waiting on a lock holds a server thread, and a
      stuck lock holds it forever, so without a bound a deadlock plus a few
      audits queued behind it take every thread and `/healthz` with them.
      The next one is refused at once (`ServerBusy`) and changes nothing.
    - the reset: a readers-writer gate. Operations enter as readers, any
      number together; a reset is the writer. It closes the door (newcomers
      wait at it, at most `reset_wait` seconds), waits until everyone inside
      has left, resets, and opens again. So a reset never lands in the
      middle of a transfer (whose rollback or counters would then undo or
      count against the fresh books) and the books are whole afterwards.

    A thread already inside passes again freely: it must never wait for a
    reset that waits for it. This gate is in-process. With a store shared by
    several processes (PostgreSQL), each process drains only its own
    requests: a fleet-wide reset needs the store's own exclusion (say, one
    transaction that takes every row's lock, or an advisory lock that every
    operation takes shared and the reset takes exclusively), left to it.
    """

    def __init__(self, limit: int, reset_wait: float = RESET_WAIT_S):
        self.limit = limit
        self.reset_wait = reset_wait
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._inside: dict[int, Operation] = {}  # ident -> its operation
        self._at_door = 0  # waiting for a reset to finish
        self._resetting = False
        self.peak_inside = 0
        self.refused: Counter[str] = Counter()

    def enter(self, name: str) -> Pass:
        """Step in (the returned `Pass` steps out again), or raise `ServerBusy` / `ResetInProgress`."""
        me = threading.current_thread()
        with self._lock:
            if me.ident in self._inside:
                return Pass(self, None)
            if len(self._inside) + self._at_door >= self.limit:
                self.refused["server-busy"] += 1
                raise ServerBusy(name, self.limit, len(self._inside), self._at_door, RESERVED_THREADS)
            if self._resetting:
                arrived = time.monotonic()
                self._at_door += 1
                try:
                    opened = self._changed.wait_for(lambda: not self._resetting, self.reset_wait)
                finally:
                    self._at_door -= 1
                if not opened:
                    self.refused["reset-in-progress"] += 1
                    raise ResetInProgress(name, time.monotonic() - arrived)
            operation = self._inside[me.ident] = Operation(name, me.name, me.ident, time.monotonic())
            self.peak_inside = max(self.peak_inside, len(self._inside))
        return Pass(self, operation)

    def _leave(self, operation: Operation) -> None:
        with self._lock:
            del self._inside[operation.ident]
            if self._resetting and not self._inside:
                self._changed.notify_all()

    @contextmanager
    def closed(
        self, unblock: Callable[[], object], describe: Callable[[list[Operation]], list[dict]]
    ) -> Iterator[None]:
        """Run the body with nobody inside and the door shut; `unblock()` is called while waiting.

        Raises `ResetInProgress` if another reset holds the door, and
        `ResetBlocked` (what `describe` says of those still inside) when
        they have not all left within `reset_wait`.
        """
        with self._lock:
            if self._resetting:
                raise ResetInProgress("reset", 0.0)
            self._resetting = True
        try:
            deadline = time.monotonic() + self.reset_wait
            while True:
                unblock()
                with self._lock:
                    left = deadline - time.monotonic()
                    if self._changed.wait_for(lambda: not self._inside, max(0.0, min(RESET_BREAK_EVERY_S, left))):
                        break
                    blocking = list(self._inside.values()) if left <= 0 else None
                if blocking is not None:
                    raise ResetBlocked(self.reset_wait, describe(blocking))
            yield
        finally:
            with self._lock:
                self._resetting = False
                self._changed.notify_all()

    def report(self) -> dict:
        with self._lock:
            return {
                "limit": self.limit,
                "in_flight": len(self._inside),
                "peak_in_flight": self.peak_inside,
                "waiting_for_reset": self._at_door,
                "refused": dict(self.refused),
            }

    def reset(self) -> None:
        with self._lock:
            self.refused.clear()
            self.peak_inside = len(self._inside)


class Pass:
    """What `Gate.enter` hands back: `with` it, and leaving the block steps out of the gate."""

    __slots__ = ("gate", "operation")

    def __init__(self, gate: Gate, operation: Operation | None):
        self.gate = gate
        self.operation = operation  # None: the thread was already inside

    def __enter__(self) -> Pass:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.operation is not None:
            self.gate._leave(self.operation)


class Lab:
    def __init__(self, config: Config, store: Store | None = None, inventory: Inventory | None = None):
        self.settings = ConfigHolder(config)
        self.store = MemoryStore(config.account_ids, config.initial_balance) if store is None else store
        self.guards = GuardSet()
        self.ledger = LedgerStats(config.account_ids, config.initial_balance)
        # one lock per account, shared: deposits under an excluding guard, transfers and the audit all take it
        self.locks = LockTable(config.account_ids)
        # the reserve: RESERVED_THREADS threads that no operation waiting on a lock can take
        self.gate = Gate(config.threads - RESERVED_THREADS)
        self.bank = Bank(self.store, self.config, self.ledger, self.guards, self.locks, self.gate)
        self.transfers = TransferDesk(self.store, self.config, self.ledger, self.locks, self.gate)
        self.shop = Shop(self.config, self.guards, self.gate, inventory)

    def config(self) -> Config:
        """The settings in force now; read once at the start of a request."""
        return self.settings.current

    def reset(self) -> dict:
        """Restore balances and stock and zero every counter, atomically with respect to requests; settings stay.

        The gate shuts out new operations and the reset waits for those in
        flight, breaking every deadlock that holds one up (with
        `lock_timeout_ms` none nothing else would end it); then it resets
        the books with nobody inside. If some operation is still running
        after `RESET_WAIT_S`, it gives up, changes nothing and raises
        `ResetBlocked` naming it. Returns the deadlocks it broke.
        """
        broken: list[dict] = []
        with self.gate.closed(unblock=lambda: broken.extend(self.break_deadlocks()), describe=self.whereabouts):
            self.bank.reset()
            self.transfers.reset()
            self.shop.reset()
            self.gate.reset()
        return {"deadlocks_broken": broken}

    def break_deadlocks(self) -> list[dict]:
        """The operator's way out of the deadlocks nobody gives up: their records, each with its victim.

        A cycle of account locks loses its youngest wait
        (`LockTable.break_deadlocks`); a guard all of whose holders wait for
        it (a batch deposit under `lock`) loses one of them
        (`Guard.break_self_deadlock`). Each victim raises `DeadlockVictim`,
        rolls back, lets go, and answers 409 as a detected victim does.
        """
        broken = self.locks.break_deadlocks()
        for guard in self.guards.all():
            error = guard.break_self_deadlock(
                lambda stuck, victim, guard=guard: self._self_deadlock(guard, stuck, victim)
            )
            if error is not None:
                broken.append(error.deadlock)
        return broken

    def _self_deadlock(self, guard: Guard, stuck: list[GuardWait], victim: GuardWait) -> DeadlockVictim:
        what = guard.describe()
        steps = [{"thread": w.thread, "ident": w.ident, "holds": [what], "waits_for": what} for w in stuck]
        return DeadlockVictim(self.locks.record_broken(steps, [guard.label], victim.since, victim.thread))

    def whereabouts(self, operations: list[Operation]) -> list[dict]:
        """Each operation in flight with what it holds and waits for: what a blocked reset names."""
        graph = self.locks.snapshot()
        now = time.monotonic()
        described = []
        for op in operations:
            holds = [f"account lock of {lock['account']}" for lock in graph["locks"] if _is(lock["holder"], op)]
            waits = [f"account lock of {edge['account']}" for edge in graph["wait_for"] if _is(edge["waiter"], op)]
            for guard in self.guards.all():
                holds += [guard.describe()] if op.ident in guard.holders() else []
                waits += [guard.describe()] if op.ident in guard.waiting() else []
            described.append(
                {
                    "operation": op.name,
                    "thread": op.thread,
                    "running_ms": round((now - op.since) * 1000, 1),
                    "holds": holds,
                    "waits_for": waits,
                }
            )
        return described

    def stats(self) -> dict:
        return {
            "deposits": self.ledger.report(self.store.snapshot()),
            "transfers": self.transfers.stats(),
            "checkout": self.shop.report(),
            "operations": self.gate.report(),
            "settings": self.config().public(),
        }


def _is(thread: dict | None, operation: Operation) -> bool:
    return thread is not None and thread["ident"] == operation.ident
