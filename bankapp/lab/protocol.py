"""What the web service asks of a lab: the `LabLike` protocol, which `Lab` (memory) and `PostgresLab` both meet.

The web layer is typed against this protocol, never against one lab, so it
cannot come to rely on a part only one store has. Which lab a server runs
is chosen in one place, `bankapp.boot.build_lab`; a type checker holds
both labs to this protocol there, and `isinstance(lab, LabLike)` checks
that the names are present at run time.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..settings import Config
from .admission import Gate
from .bank import Bank
from .guards import GuardSet
from .locks import LockTable
from .shop import Checkouts


class SettingsHolder(Protocol):
    """The settings in force, and the one way to change them (`PATCH /admin/config`)."""

    @property
    def current(self) -> Config: ...

    @property
    def cached(self) -> Config:
        """Without a round trip: exact for this process's own settings (host, admin token, accounts)."""
        ...

    @property
    def of_request(self) -> Config:
        """The settings the current request runs under, if it read them (else `cached`): no round trip."""
        ...

    def patch(self, changes: Any) -> Config: ...


class TransferWindow(Protocol):
    """Transfers between accounts, the audit of the total, and what `/debug/locks` shows."""

    def transfer(self, source: str, target: str, amount: int) -> dict[str, Any]: ...

    def audit(self) -> dict[str, Any]: ...

    def debug_locks(self) -> dict[str, Any]: ...


class SharedAnswers(Protocol):
    """Idempotency-Key answers remembered beyond this process (the postgres lab's; the memory lab has none)."""

    def claim(self, key: str, fingerprint: str, ttl: float) -> bool: ...

    def peek(self, key: str) -> Any: ...

    def complete(self, key: str, answer: tuple[int, bytes, list[tuple[str, str]]] | None) -> None: ...


@runtime_checkable
class LabLike(Protocol):
    """One lab: the bank, the transfer desk and the shop over one store, and what the operator may do to them.

    Parts are read-only properties here, so that a lab may hold a subclass
    (`DatabaseBank` is a `Bank`) or compute them (`PostgresLab.resets`).
    """

    @property
    def settings(self) -> SettingsHolder: ...

    @property
    def bank(self) -> Bank: ...

    @property
    def transfers(self) -> TransferWindow: ...

    @property
    def shop(self) -> Checkouts[Any, Any]: ...

    @property
    def guards(self) -> GuardSet: ...

    @property
    def locks(self) -> LockTable: ...

    @property
    def gate(self) -> Gate: ...

    @property
    def answers(self) -> SharedAnswers | None: ...

    @property
    def resets(self) -> int: ...

    @property
    def counters_since(self) -> float: ...

    def config(self) -> Config: ...

    def reset(self) -> dict[str, Any]: ...

    def health(self) -> dict[str, Any]: ...

    def stats(self) -> dict[str, Any]: ...

    def races(self, limit: int) -> dict[str, Any]: ...

    def break_deadlocks(self) -> list[dict[str, Any]]: ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def served(self) -> None: ...
