"""The fair share with real threads: a team at its share borrows only while a share stays free; every team
below its share always gets in; what was taken is given back."""

from __future__ import annotations

import threading

from bankapp.rooms import FairShare

from ..harness import run_together


def test_a_flooding_team_borrows_but_leaves_a_share_free():
    share = FairShare(budget=12)
    share.teams = 3  # share 4
    admitted = [share.enter("flood") for _ in range(12)]
    assert admitted.count(True) == 8  # 4 of its own, 4 borrowed: 4 left, a share, for whoever comes
    assert all(share.enter("quiet") for _ in range(4))  # the quiet team's share is there
    assert share.report("flood") == {"share": 4, "budget": 12, "in_flight": 8, "borrowed": 4, "refused": 4}
    assert not share.enter("quiet")  # past its share, and no spare left


def test_threads_racing_for_the_share_never_pass_the_budget():
    share = FairShare(budget=10)
    share.teams = 2
    peak, lock, inside = [0], threading.Lock(), [0]
    gate = threading.Barrier(20)

    def request(team: str) -> None:
        gate.wait()
        if share.enter(team):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            with lock:
                inside[0] -= 1
            share.leave(team)

    run_together([lambda n=n: request("a" if n % 2 else "b") for n in range(20)], timeout=30)
    assert peak[0] <= 10
    assert share.report("a")["in_flight"] == share.report("b")["in_flight"] == 0
