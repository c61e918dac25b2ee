"""Where balances live, behind a small interface.

The store does single reads and single writes and nothing else: the
read-modify-write, and so the race, belongs to the domain, which decides how
to guard it. `MemoryStore` keeps a dict in the one worker process;
`bankapp.postgres` stands a PostgreSQL database behind the same `Store`
protocol, which every worker and machine shares.

Every write advances the account's version and records what it read, so a
write over a newer version than it read is caught, and the writes it erased
are named (see `forensics`): `races()` is what `/debug/races` shows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from .forensics import CALLER, HISTORY, HISTORY_EACH, RECENT, History, Races, ReadsSeen, Write, erasure, thread_and_pid


class UnknownAccount(KeyError):
    def __init__(self, account_id: str):
        super().__init__(account_id)
        self.account_id = account_id

    def __str__(self) -> str:
        return f"no account {self.account_id!r}"


class InsufficientFunds(Exception):
    """A withdrawal or transfer that asked for more than the account holds (`bank.InsufficientFunds` too)."""

    def __init__(self, account_id: str, balance: int, amount: int):
        super().__init__(f"account {account_id} holds {balance} cents, fewer than the {amount} asked for")
        self.account_id = account_id
        self.balance = balance
        self.amount = amount


class StoreUnavailable(Exception):
    """The store cannot answer now: its database is down, unreachable, out of connections, or keeps
    refusing a transaction. A 503 that changes nothing; `fields` join the problem body."""

    def __init__(self, detail: str, slug: str = "store-unavailable", title: str = "Store unavailable", **fields: Any):
        super().__init__(detail)
        self.slug = slug
        self.title = title
        self.fields = fields


class Store(Protocol):
    def account_ids(self) -> Sequence[str]: ...

    def exists(self, account_id: str) -> bool: ...

    def read(self, account_id: str) -> int: ...

    def write(self, account_id: str, balance: int) -> None: ...

    def snapshot(self) -> dict[str, int]: ...

    def reset(self) -> None: ...

    def races(self, limit: int) -> dict[str, Any]: ...


class MemoryStore:
    """Balances in a dict, in integer cents, each with its version: `{account: (balance, version)}`.

    A single `dict` read is atomic under CPython, and the pair is one value,
    so a read sees a balance and its version together. A write takes a small
    lock of the store's own, so that the version it makes and the balance it
    stores are one step: that lock covers the write alone, never the gap
    between a read and its write, which is the point of the lab.
    """

    def __init__(self, account_ids: Sequence[str], initial_balance: int):
        self.initial_balance = initial_balance
        self._ids = list(account_ids)
        self._rows: dict[str, tuple[int, int]] = dict.fromkeys(self._ids, (initial_balance, 0))
        self._write_lock = threading.Lock()
        self._seen = ReadsSeen()
        self._history = History(max(HISTORY_EACH, HISTORY // max(1, len(self._ids))))
        self.recorder = Races()

    def account_ids(self) -> list[str]:
        return list(self._ids)

    def exists(self, account_id: str) -> bool:
        return account_id in self._rows

    def read(self, account_id: str) -> int:
        try:
            balance, version = self._rows[account_id]
        except KeyError:
            raise UnknownAccount(account_id) from None
        self._seen.remember(account_id, balance, version)
        return balance

    def write(self, account_id: str, balance: int) -> None:
        """Store `balance` as the next version; if the read it came from is not the head, record the erasure."""
        read = self._seen.take(account_id)
        caller, (thread, pid) = CALLER.get(), thread_and_pid()
        with self._write_lock:
            try:
                head_balance, head = self._rows[account_id]
            except KeyError:
                raise UnknownAccount(account_id) from None
            now = time.time()
            read_balance, parent, read_at = read or (head_balance, head, now)  # a blind write reads the head
            write = (account_id, head + 1, parent, balance - read_balance, balance, *caller, thread, pid, read_at, now)
            self._rows[account_id] = (balance, head + 1)
            self._history.add(write)
        if parent != head:  # only a race pays for the walk, after the write: the window stays as it was
            eraser = Write._make(write)
            self.recorder.add(erasure(eraser, head, head_balance, self._history.lookup(account_id)))

    def snapshot(self) -> dict[str, int]:
        return {account_id: balance for account_id, (balance, _) in dict(self._rows).items()}

    def reset(self) -> None:
        """Opening balances, as a new version of each account (versions never go back); no history, no races."""
        with self._write_lock:
            opening = self.initial_balance
            self._rows = {account_id: (opening, version + 1) for account_id, (_, version) in self._rows.items()}
            self._history.clear()
            self.recorder.reset()

    def races(self, limit: int = RECENT) -> dict[str, Any]:
        return {"store": "memory", **self.recorder.report(limit)}
