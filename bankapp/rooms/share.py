"""The fair share of a worker's threads between a room's teams: no team can take the threads another needs.

The rule, named in docs/rooms.md as *a share each, the spare lent, one
share kept free*:

- the budget is the worker's threads less its reserve
  (`threads - RESERVED_THREADS`, the same reserve that keeps `/healthz`,
  `/stats`, `/debug/*` and `/admin/*` answering);
- each team's share is `max(1, budget // teams)`: a team below its share is
  always let in;
- a team at or past its share borrows a spare thread only while more than
  one share of the budget would still be free after it, so a team that
  arrives finds a share's worth of threads waiting for it;
- past that, the request is refused at once: 503 `team-share` with
  `Retry-After: 1`, holding its thread for microseconds instead of the
  whole operation.

Only the lab's operations count (`COUNTED_PREFIXES`): reads of the server's
own state and the admin routes live on the reserve. With the default team
alone (no room), nothing is counted and nothing refused: today's server.

Example::

    share = FairShare(budget=30)
    share.teams = 3            # each team's share: 10
    if share.enter("red"):     # False: 503 with Retry-After
        try: ...
        finally: share.leave("red")
"""

from __future__ import annotations

import threading

#: The paths whose requests hold a thread for an operation of a lab (deposits, transfers, checkouts, audits).
COUNTED_PREFIXES = ("/accounts", "/transfers", "/checkout", "/catalog", "/customers", "/audit")
#: Seconds a refused request is told to wait before it tries again.
RETRY_AFTER_S = 1


def counted(path: str) -> bool:
    """Whether a request to `path` takes a thread from its team's share."""
    return path.startswith(COUNTED_PREFIXES)


class FairShare:
    """How many of the budget's threads each team holds now, and who may take one more."""

    def __init__(self, budget: int):
        self.budget = max(1, budget)
        self.teams = 1
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._total = 0
        self._refused: dict[str, int] = {}
        self._borrowed: dict[str, int] = {}

    @property
    def share(self) -> int:
        """The threads each team may always take: the budget split evenly, at least one."""
        return max(1, self.budget // max(1, self.teams))

    def enter(self, team: str) -> bool:
        """Take a thread for `team`'s request, or say no (the caller answers 503 with Retry-After)."""
        share = self.share
        with self._lock:
            mine = self._in_flight.get(team, 0)
            if mine >= share:
                if self.budget - self._total - 1 < share:  # borrowing would leave less than a share free
                    self._refused[team] = self._refused.get(team, 0) + 1
                    return False
                self._borrowed[team] = self._borrowed.get(team, 0) + 1
            self._in_flight[team] = mine + 1
            self._total += 1
            return True

    def leave(self, team: str) -> None:
        """Give back the thread `enter` took."""
        with self._lock:
            self._in_flight[team] -= 1
            self._total -= 1

    def report(self, team: str) -> dict[str, int]:
        """`team`'s part: its share, its requests in flight now, how often it borrowed and was refused."""
        with self._lock:
            return {
                "share": self.share,
                "budget": self.budget,
                "in_flight": self._in_flight.get(team, 0),
                "borrowed": self._borrowed.get(team, 0),
                "refused": self._refused.get(team, 0),
            }
