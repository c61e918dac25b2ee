"""The lab: one bank, one transfer desk and one shop per app, over one store.

`create_app()` makes a new lab (`make_lab`), so every app, and so every
test, starts from fresh balances, guards and counters; with `store`
`postgres` the lab is `bankapp.postgres.PostgresLab`, whose parts keep
their state in the database that every worker shares. The parts that hold state can be
swapped: `store` (the balances) and `inventory` (the shop's stock) default
to the in-memory ones, and a test, or another kind of store, hands in its
own. Everything else is wired here, once: the bank, the transfer desk and
the audit share one store, one ledger and one table of account locks, and
every operation that can wait on a lock passes one `Gate`. A replay
(`bankapp.interleave`) hands in its own `guards` and `locks` too, which
announce each acquire and release.
"""

from __future__ import annotations

import threading
import time

from ..settings import RESERVED_THREADS, Config, ConfigHolder
from .admission import Gate, Operation
from .bank import Bank
from .guards import DeadlockVictim, Guard, GuardSet, GuardWait
from .ledger import LedgerStats
from .locks import LockTable
from .shop import Inventory, Shop
from .store import MemoryStore, Store
from .transfers import TransferDesk


class OperatorActions:
    """What the operator can do to the in-process locks of any lab: break the deadlocks nobody gives up,
    and name what a blocked reset waits for. Needs `self.locks` (a `LockTable`) and `self.guards`."""

    locks: LockTable
    guards: GuardSet

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


class Lab(OperatorActions):
    def __init__(
        self,
        config: Config,
        store: Store | None = None,
        inventory: Inventory | None = None,
        guards: GuardSet | None = None,
        locks: LockTable | None = None,
    ):
        self.settings = ConfigHolder(config)
        self.store = MemoryStore(config.account_ids, config.initial_balance) if store is None else store
        self.guards = GuardSet() if guards is None else guards
        self.ledger = LedgerStats(config.account_ids, config.initial_balance)
        # one lock per account, shared: deposits under an excluding guard, transfers and the audit all take it
        self.locks = LockTable(config.account_ids) if locks is None else locks
        # the reserve: RESERVED_THREADS threads that no operation waiting on a lock can take
        self.gate = Gate(config.threads - RESERVED_THREADS)
        self.bank = Bank(self.store, self.config, self.ledger, self.guards, self.locks, self.gate)
        self.transfers = TransferDesk(self.store, self.config, self.ledger, self.locks, self.gate)
        self.shop = Shop(self.config, self.guards, self.gate, inventory)
        # Idempotency-Key answers shared beyond this process: none, one process holds the bank (the web
        # service remembers them in memory); the postgres store's lab shares them through its database
        self.answers = None
        # when the counters last started from zero, and how often a reset zeroed them: a counter that
        # goes down is a reset, and Prometheus is told so (see bankapp.web.metrics)
        self._resets_lock = threading.Lock()
        self.counters_since = time.time()
        self.resets = 0

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
            with self._resets_lock:
                self.counters_since = time.time()
                self.resets += 1
        return {"deadlocks_broken": broken}

    def health(self) -> dict:
        """What `/healthz` says: the memory store is up as long as the process is."""
        return {"status": "ok", "store": "memory"}

    def start(self) -> None:
        """Called in each worker once it runs (gunicorn's `post_worker_init`); nothing to open here."""

    def close(self) -> None:
        """Called as a worker stops; nothing to close here."""

    def served(self) -> None:
        """Called once per answered request; the memory store has one worker, which served them all."""

    def races(self, limit: int) -> dict:
        """What `/debug/races` shows: the newest `limit` erasures, and totals of them all (see `forensics`)."""
        return self.store.races(limit)

    def stats(self) -> dict:
        return {
            "deposits": self.ledger.report(self.store.snapshot()),
            "transfers": self.transfers.stats(),
            "checkout": self.shop.report(),
            "operations": self.gate.report(),
            "settings": self.config().public(),
        }


def make_lab(config: Config) -> Lab:
    """The lab `config.store` asks for: this one in memory, or the postgres one.

    psycopg is imported only here, and only for the postgres store.
    """
    if config.store == "postgres":
        from ..postgres import PostgresLab

        return PostgresLab(config)
    return Lab(config)


def _is(thread: dict | None, operation: Operation) -> bool:
    return thread is not None and thread["ident"] == operation.ident
