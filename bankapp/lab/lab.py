"""The lab: one bank, one transfer desk and one shop per app, over one store.

`create_app()` makes a new lab (`bankapp.boot.build_lab`), so every app,
and so every test, starts from fresh balances, guards and counters; with
`store` `postgres` the lab is `bankapp.postgres.PostgresLab`, whose parts
keep their state in the database that every worker shares. Both meet
`protocol.LabLike`, what the web service asks of a lab. The parts that hold state can be
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
from typing import Any

from ..settings import RESERVED_THREADS, Config
from .admission import Gate
from .bank import Bank
from .guards import GuardSet
from .ledger import LedgerStats
from .locks import LockTable
from .operator import OperatorActions
from .plugged import CheckedSettings, Plugged
from .shop import Inventory, Shop
from .store import MemoryStore, Store
from .transfers import TransferDesk


class Lab(OperatorActions):
    def __init__(
        self,
        config: Config,
        store: Store | None = None,
        inventory: Inventory | None = None,
        guards: GuardSet | None = None,
        locks: LockTable | None = None,
        plugged: Plugged | None = None,
    ):
        # a trainee's code in the lab's place, chosen by the value `exercise` (`bankapp serve --exercise`)
        self.plugged = Plugged() if plugged is None else plugged
        self.settings = CheckedSettings(config, self.plugged)
        self.store = MemoryStore(config.account_ids, config.initial_balance) if store is None else store
        self.guards = (self.plugged.guards() if self.plugged else GuardSet()) if guards is None else guards
        self.ledger = LedgerStats(config.account_ids, config.initial_balance)
        # one lock per account, shared: deposits under an excluding guard, transfers and the audit all take it
        self.locks = LockTable(config.account_ids) if locks is None else locks
        # the reserve: RESERVED_THREADS threads that no operation waiting on a lock can take
        self.gate = Gate(config.threads - RESERVED_THREADS)
        self.bank = Bank(self.store, self.config, self.ledger, self.guards, self.locks, self.gate)
        self.transfers = TransferDesk(
            self.store, self.config, self.ledger, self.locks, self.gate, self.plugged.policies()
        )
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

    def reset(self) -> dict[str, Any]:
        """Restore balances and stock and zero every counter, atomically with respect to requests; settings stay.

        The gate shuts out new operations and the reset waits for those in
        flight, breaking every deadlock that holds one up (with
        `lock_timeout_ms` none nothing else would end it); then it resets
        the books with nobody inside. If some operation is still running
        after `RESET_WAIT_S`, it gives up, changes nothing and raises
        `ResetBlocked` naming it. Returns the deadlocks it broke.
        """
        broken: list[dict[str, Any]] = []
        with self.gate.closed(unblock=lambda: broken.extend(self.break_deadlocks()), describe=self.whereabouts):
            self.bank.reset()
            self.transfers.reset()
            self.shop.reset()
            self.gate.reset()
            with self._resets_lock:
                self.counters_since = time.time()
                self.resets += 1
        return {"deadlocks_broken": broken}

    def health(self) -> dict[str, Any]:
        """What `/healthz` says: the memory store is up as long as the process is."""
        return {"status": "ok", "store": "memory"}

    def start(self) -> None:
        """Called in each worker once it runs (gunicorn's `post_worker_init`); nothing to open here."""

    def close(self) -> None:
        """Called as a worker stops; nothing to close here."""

    def served(self) -> None:
        """Called once per answered request; the memory store has one worker, which served them all."""

    def races(self, limit: int) -> dict[str, Any]:
        """What `/debug/races` shows: the newest `limit` erasures, and totals of them all (see `forensics`)."""
        return self.store.races(limit)

    def stats(self) -> dict[str, Any]:
        return {
            "deposits": self.ledger.report(self.store.snapshot()),
            "transfers": self.transfers.stats(),
            "checkout": self.shop.report(),
            "operations": self.gate.report(),
            "settings": self.config().public(),
            **({"exercise": self.plugged.report()} if self.plugged else {}),
        }
