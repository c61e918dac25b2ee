"""The recent erasures of one process, and totals that stay exact when old ones are forgotten."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from .chain import Erasure
from .words import sentence

#: Erasures kept for `/debug/races`, newest first; the totals count every one.
RECENT = 100


def totals_json(erasures: int, writes_erased: int, writes_revived: int, cents: int, incomplete: int) -> dict[str, Any]:
    """The totals of `/debug/races`, whichever store counted them."""
    return {
        "erasures": erasures,
        "writes_erased": writes_erased,
        "writes_revived": writes_revived,
        "lost_updates": cents,
        "incomplete": incomplete,
    }


def described(event: dict[str, Any]) -> dict[str, Any]:
    """An erasure as `/debug/races` shows it: with its sentence."""
    return {**event, "sentence": sentence(event)}


class Races:
    """Erasures recorded under a small lock of their own, never a guard under test.

    Recording an erasure happens after its write, outside the read-window-
    write: it neither widens nor narrows the window the race lives in.
    """

    def __init__(self, keep: int = RECENT):
        self._lock = threading.Lock()
        self._recent: deque[tuple[int, Erasure]] = deque(maxlen=keep)
        self.keep = keep
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._recent.clear()
            self._count = self._erased = self._revived = self._cents = self._incomplete = 0

    def add(self, erasure: Erasure) -> None:
        with self._lock:
            self._count += 1
            self._recent.append((self._count, erasure))
            self._erased += len(erasure.erased)
            self._revived += len(erasure.revived)
            self._cents += erasure.cents
            self._incomplete += not erasure.complete

    def report(self, limit: int = RECENT) -> dict[str, Any]:
        """Totals, and the newest `limit` erasures first, each with its sentence."""
        with self._lock:
            totals = totals_json(self._count, self._erased, self._revived, self._cents, self._incomplete)
            recent = list(self._recent)[-limit:] if limit > 0 else []
        return {
            **totals,
            "kept": self.keep,
            "races": [described({"id": number, **erasure.to_json()}) for number, erasure in reversed(recent)],
        }
