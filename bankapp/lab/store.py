"""Where balances live, behind a small interface.

The store does single reads and single writes and nothing else: the
read-modify-write, and so the race, belongs to the domain, which decides how
to guard it. `MemoryStore` keeps a dict in the one worker process;
`bankapp.postgres` stands a PostgreSQL database behind the same `Store`
protocol, which every worker and machine shares.
"""

from __future__ import annotations

from typing import Protocol


class UnknownAccount(KeyError):
    def __init__(self, account_id: str):
        super().__init__(account_id)
        self.account_id = account_id

    def __str__(self) -> str:
        return f"no account {self.account_id!r}"


class StoreUnavailable(Exception):
    """The store cannot answer now: its database is down, unreachable, out of connections, or keeps
    refusing a transaction. A 503 that changes nothing; `fields` join the problem body."""

    def __init__(self, detail: str, slug: str = "store-unavailable", title: str = "Store unavailable", **fields):
        super().__init__(detail)
        self.slug = slug
        self.title = title
        self.fields = fields


class Store(Protocol):
    def account_ids(self) -> list[str]: ...

    def exists(self, account_id: str) -> bool: ...

    def read(self, account_id: str) -> int: ...

    def write(self, account_id: str, balance: int) -> None: ...

    def snapshot(self) -> dict[str, int]: ...

    def reset(self) -> None: ...


class MemoryStore:
    """Balances in a dict, in integer cents.

    A single `dict` read or write is atomic under CPython, so the store needs
    no lock of its own; what is not atomic is a read followed by a write,
    which is the point of the lab.
    """

    def __init__(self, account_ids: list[str], initial_balance: int):
        self.initial_balance = initial_balance
        self._ids = list(account_ids)
        self._balances: dict[str, int] = {}
        self.reset()

    def account_ids(self) -> list[str]:
        return list(self._ids)

    def exists(self, account_id: str) -> bool:
        return account_id in self._balances

    def read(self, account_id: str) -> int:
        try:
            return self._balances[account_id]
        except KeyError:
            raise UnknownAccount(account_id) from None

    def write(self, account_id: str, balance: int) -> None:
        if account_id not in self._balances:
            raise UnknownAccount(account_id)
        self._balances[account_id] = balance

    def snapshot(self) -> dict[str, int]:
        return dict(self._balances)

    def reset(self) -> None:
        self._balances = {account_id: self.initial_balance for account_id in self._ids}
