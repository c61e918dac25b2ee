"""The lab: one bank, one transfer desk and one shop per app, over one store.

`create_app()` makes a new lab (`make_lab`), so every app, and so every
test, starts from fresh balances, guards and counters; with `store`
`postgres` the lab is `bankapp.postgres.PostgresLab`, whose parts keep
their state in the database that every worker shares. The parts that hold state can be
swapped: `store` (the balances) and `inventory` (the shop's stock) default
to the in-memory ones, and a test, or another kind of store, hands in its
own. Everything else is wired here, once: the bank, the transfer desk and
the audit share one store, one ledger and one table of account locks.
"""

from __future__ import annotations

import threading
import time

from ..settings import Config, ConfigHolder
from .bank import Bank
from .guards import GuardSet
from .ledger import LedgerStats
from .locks import LockTable
from .shop import Inventory, Shop
from .store import MemoryStore, Store
from .transfers import TransferDesk


class Lab:
    def __init__(self, config: Config, store: Store | None = None, inventory: Inventory | None = None):
        self.settings = ConfigHolder(config)
        self.store = MemoryStore(config.account_ids, config.initial_balance) if store is None else store
        self.guards = GuardSet()
        self.ledger = LedgerStats(config.account_ids, config.initial_balance)
        # one lock per account, shared: deposits under an excluding guard, transfers and the audit all take it
        self.locks = LockTable(config.account_ids)
        self.bank = Bank(self.store, self.config, self.ledger, self.guards, self.locks)
        self.transfers = TransferDesk(self.store, self.config, self.ledger, self.locks)
        self.shop = Shop(self.config, self.guards, inventory)
        # when the counters last started from zero, and how often a reset zeroed them: a counter that
        # goes down is a reset, and Prometheus is told so (see bankapp.web.metrics)
        self._resets_lock = threading.Lock()
        self.counters_since = time.time()
        self.resets = 0

    def config(self) -> Config:
        """The settings in force now; read once at the start of a request."""
        return self.settings.current

    def reset(self) -> None:
        """Restore balances and zero every counter; settings stay."""
        self.bank.reset()
        self.transfers.reset()
        self.shop.reset()
        with self._resets_lock:
            self.counters_since = time.time()
            self.resets += 1

    def health(self) -> dict:
        """What `/healthz` says: the memory store is up as long as the process is."""
        return {"status": "ok", "store": "memory"}

    def start(self) -> None:
        """Called in each worker once it runs (gunicorn's `post_worker_init`); nothing to open here."""

    def close(self) -> None:
        """Called as a worker stops; nothing to close here."""

    def served(self) -> None:
        """Called once per answered request; the memory store has one worker, which served them all."""

    def stats(self) -> dict:
        return {
            "deposits": self.ledger.report(self.store.snapshot()),
            "transfers": self.transfers.stats(),
            "checkout": self.shop.report(),
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
