"""The compare matrix: which scenario runs under which guard or policy, with which load.

Each `MatrixRow` is one configuration: the settings `PATCH /admin/config`
switches to (over `BASE_SETTINGS`, which every row starts from), the Locust
user classes that drive it and how many users. `MATRIX` is the spec's
default; `select` picks rows from it as `--scenarios` and `--guards` ask.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MatrixRow:
    """One row of the matrix: a scenario under one guard or policy."""

    scenario: str  # deposit, checkout, transfer
    guard: str  # the label in the table: guard, or policy, or semaphore(4)
    settings: dict[str, Any]
    user_classes: list[str]
    clients: int  # Locust users, unless --users says otherwise

    @property
    def label(self) -> str:
        """For people: `deposit / semaphore(4)`."""
        return f"{self.scenario} / {self.guard}"

    @property
    def name(self) -> str:
        """For file names: `deposit-semaphore-4`."""
        return f"{self.scenario}-{self.guard}".replace("(", "-").replace(")", "")


def deposit(guard: str, permits: int = 1) -> MatrixRow:
    label = f"semaphore({permits})" if guard == "semaphore" else guard
    return MatrixRow("deposit", label, {"deposit_guard": guard, "deposit_permits": permits}, ["DepositUser"], 16)


def checkout(guard: str) -> MatrixRow:
    return MatrixRow("checkout", guard, {"checkout_guard": guard}, ["CheckoutUser"], 24)


def transfer(policy: str) -> MatrixRow:
    return MatrixRow("transfer", policy, {"transfer_policy": policy}, ["TransferUser", "AuditUser"], 16)


#: The default matrix of the spec: deposit under every guard and a semaphore
#: of 4; checkout under unsafe, lock, semaphore; transfers under every policy.
MATRIX = [
    deposit("unsafe"),
    deposit("lock"),
    deposit("rlock"),
    deposit("semaphore", 1),
    deposit("semaphore", 4),
    checkout("unsafe"),
    checkout("lock"),
    checkout("semaphore"),
    *(transfer(policy) for policy in ("unsafe", "naive", "ordered", "release-first", "backoff")),
]

#: With `--store postgres`: the database's own guards, which hold across a fleet of workers (an in-process
#: lock guards one worker only), beside `unsafe` for the lost updates they prevent; transfers as in memory.
POSTGRES_MATRIX = [
    *(deposit(guard) for guard in ("unsafe", "row-lock", "advisory-lock", "atomic-update", "serializable")),
    checkout("unsafe"),
    checkout("advisory-lock"),
    checkout("advisory-semaphore"),
    *(transfer(policy) for policy in ("unsafe", "naive", "ordered", "release-first", "backoff")),
]

#: Settings the whole run shares; each row changes only its own.
BASE_SETTINGS = {
    "deposit_guard": "unsafe",
    "checkout_guard": "unsafe",
    "transfer_policy": "naive",
    "deposit_permits": 1,
}


def select(
    scenarios: Iterable[str] | None = None, guards: Iterable[str] | None = None, store: str = "memory"
) -> list[MatrixRow]:
    """The rows chosen: `guards` items are a guard or policy (`lock`,
    `semaphore`, `semaphore(4)`) or one row (`deposit:unsafe`); none means all."""
    scenarios, guards = set(scenarios or ()), set(guards or ())
    matrix = POSTGRES_MATRIX if store == "postgres" else MATRIX
    rows = [row for row in matrix if not scenarios or row.scenario in scenarios]
    if guards:
        rows = [row for row in rows if {row.guard, row.guard.split("(")[0], f"{row.scenario}:{row.guard}"} & guards]
    return rows
