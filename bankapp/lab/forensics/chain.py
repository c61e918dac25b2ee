"""The version chain of an account, and what a write over a newer version erased.

Every write W records the version it read (its parent) and what it added
(its delta), so the balance at any version is the opening balance plus the
deltas along the chain v -> parent(v) -> ... back to the last reset. The
account's balance is the head's chain; a write that is not on it is lost.

A write that read version R and writes over head H (R != H) replaces the
chain of H by its own (itself and the chain of R). Walking both back to
their common ancestor (`walk`):

- erased: the writes on H's chain but not on R's. They were there, and
  this write took them away;
- revived: the writes on R's chain but not on H's. An earlier erasure had
  taken them away, but this write read a state that still held them, so
  they are back.

Over a run, the cents erased minus the cents revived, summed over every
such write, is exactly the money lost (`lost_updates`): each write changes
the head's sum by its own delta less what it erased plus what it revived.
Each erasure's net is also simply the balance of H minus the balance of
R, which needs no walk: that is how the totals stay exact when the writes
in between are no longer remembered (the event is then `complete: false`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

#: Writes the memory store remembers, of all accounts together (at least `HISTORY_EACH` of each): a read
#: older than that many writes of its account gets an erasure whose writes are not all named (its cents
#: stay exact).
HISTORY, HISTORY_EACH = 16_384, 64


class Write(NamedTuple):
    """One write of a balance: what it read, what it wrote, and who wrote it."""

    account: str
    version: int  # the version this write made
    parent: int  # the version it read
    delta: int  # what it added to the balance it read
    balance: int  # what it wrote
    request_id: str | None
    operation: str | None
    thread: str
    pid: int
    read_at: float  # epoch seconds
    at: float

    @property
    def read_balance(self) -> int:
        return self.balance - self.delta

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "operation": self.operation,
            "thread": self.thread,
            "pid": self.pid,
            "account": self.account,
            "read_version": self.parent,
            "read_balance": self.read_balance,
            "delta": self.delta,
            "version": self.version,
            "balance": self.balance,
            "read_at": self.read_at,
            "wrote_at": self.at,
        }


Lookup = Callable[[int], "Write | None"]


def walk(head: int, read: int, lookup: Lookup) -> tuple[list[Write], list[Write], bool]:
    """(erased, revived, complete) when a write that read version `read` writes over `head`.

    Both pointers step back along their parents until they meet; the one
    further ahead steps first. `complete` is False when a write on the way
    is not known to `lookup` (no longer remembered): the lists then stop there.
    """
    erased: list[Write] = []
    revived: list[Write] = []
    while head != read:
        ahead = head > read
        write = lookup(head if ahead else read)
        if write is None:
            return erased, revived, False
        if ahead:
            erased.append(write)
            head = write.parent
        else:
            revived.append(write)
            read = write.parent
    return erased, revived, True


@dataclass(slots=True)
class Erasure:
    """A write over a newer version than it read, and what that took away (and brought back)."""

    eraser: Write
    overwrote: int  # the head version it wrote over
    overwrote_balance: int | None  # the head's balance (None: not known, see `complete`)
    erased: list[Write]
    revived: list[Write]
    complete: bool

    @property
    def cents(self) -> int:
        """What this write took away from the balance, net: the head's balance minus the balance it read."""
        if self.overwrote_balance is None:
            return sum(w.delta for w in self.erased) - sum(w.delta for w in self.revived)
        return self.overwrote_balance - self.eraser.read_balance

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.eraser.account,
            "at": datetime.fromtimestamp(self.eraser.at, UTC).isoformat(timespec="milliseconds"),
            "cents": self.cents,
            "complete": self.complete,
            "eraser": self.eraser.to_json(),
            "overwrote": {"version": self.overwrote, "balance": self.overwrote_balance},
            "erased": [w.to_json() for w in self.erased],
            "revived": [w.to_json() for w in self.revived],
        }


def erasure(eraser: Write, head: int, head_balance: int | None, lookup: Lookup) -> Erasure:
    """What `eraser`, which read `eraser.parent`, did by writing over version `head`."""
    erased, revived, complete = walk(head, eraser.parent, lookup)
    if head_balance is None and erased and erased[0].version == head:
        head_balance = erased[0].balance
    return Erasure(eraser, head, head_balance, erased, revived, complete and head_balance is not None)


class History:
    """The last `keep` writes of each account, in a ring per account indexed by version (memory store).

    Adding is one list store, with nothing to evict: a newer version simply
    takes the slot of the one `keep` versions older. Writes are kept as plain
    tuples (the garbage collector stops tracking those) and become `Write`s
    only when a walk looks them up. Not thread-safe on its own: the store
    adds under its write lock; a lookup is one list read, safe beside an add.
    """

    def __init__(self, keep: int):
        self.keep = keep
        self._rings: dict[str, list[tuple[Any, ...] | None]] = {}

    def add(self, write: tuple[Any, ...]) -> None:
        """`write` is a `Write`'s fields as a plain tuple."""
        ring = self._rings.get(write[0])
        if ring is None:
            ring = self._rings[write[0]] = [None] * self.keep
        ring[write[1] % self.keep] = write

    def lookup(self, account_id: str) -> Lookup:
        ring = self._rings.get(account_id) or [None] * self.keep

        def find(version: int) -> Write | None:
            found = ring[version % self.keep]
            return Write._make(found) if found is not None and found[1] == version else None

        return find

    def clear(self) -> None:
        self._rings = {}  # a walk under way keeps the rings it looked up
