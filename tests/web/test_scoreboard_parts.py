"""The scoreboard's parts without HTTP: which grade is the best, the token buckets' arithmetic and bound, and the
board under real threads racing to add the last team it has room for."""

from __future__ import annotations

import threading

import pytest

from bankapp.web.scoreboard import RateLimited, Scoreboard, ScoreboardFull, TokenBuckets
from bankapp.web.scoreboard.board import Grade


def g(passed: bool, schedules: int = 10, speed_ratio: float | None = None) -> Grade:
    return Grade(passed=passed, schedules=schedules, speed_ratio=speed_ratio, at="2026-01-01T00:00:00Z")


@pytest.mark.parametrize(
    ("new", "old", "better"),
    [
        (g(True), g(False, 99), True),  # a pass beats any fail
        (g(False, 99), g(True), False),
        (g(True, speed_ratio=1.5), g(True, speed_ratio=1.1), True),  # the faster pass (throughput over the model's)
        (g(True, speed_ratio=1.1), g(True, speed_ratio=1.5), False),
        (g(True, speed_ratio=3.0), g(True, speed_ratio=None), True),  # measured beats not measured
        (g(True, speed_ratio=None), g(True, speed_ratio=3.0), False),
        (g(True, 20, 1.0), g(True, 10, 1.0), True),  # as fast: more schedules tried
        (g(False, 20), g(False, 10), True),
        (g(False, 10), g(False, 10), False),  # a tie keeps the first
    ],
)
def test_which_grade_is_the_best(new, old, better):
    assert new.better_than(old) is better


def test_a_bucket_lets_a_burst_through_then_one_per_period_and_says_how_long_to_wait():
    now = [100.0]
    buckets = TokenBuckets("team", capacity=3, per_second=0.5, clock=lambda: now[0])
    for _ in range(3):
        buckets.take("red")
    with pytest.raises(RateLimited) as limited:
        buckets.take("red")
    assert limited.value.retry_after == pytest.approx(2.0)
    assert limited.value.retry_after_header == "2"
    assert (limited.value.kind, limited.value.key) == ("team", "red")
    now[0] += 0.5  # a quarter of a token: still refused, a shorter wait, nothing taken
    with pytest.raises(RateLimited) as limited:
        buckets.take("red")
    assert limited.value.retry_after == pytest.approx(1.5)
    now[0] += 1.5
    buckets.take("red")
    now[0] += 1000  # refilled to the brim, never beyond
    for _ in range(3):
        buckets.take("red")
    with pytest.raises(RateLimited):
        buckets.take("red")


def test_a_bucket_refuses_nonsense():
    for capacity, per_second, max_keys in [(0, 1, 1), (1, 0, 1), (1, 1, 0)]:
        with pytest.raises(ValueError):
            TokenBuckets("client", capacity, per_second, max_keys)


def test_threads_racing_for_one_bucket_take_exactly_its_capacity():
    buckets = TokenBuckets("client", capacity=50, per_second=1e-6)
    start = threading.Barrier(8)
    taken: list[bool] = []

    def take_many() -> None:
        start.wait()
        for _ in range(20):
            try:
                buckets.take("192.0.2.1")
                taken.append(True)
            except RateLimited:
                taken.append(False)

    threads = [threading.Thread(target=take_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert taken.count(True) == 50 and taken.count(False) == 8 * 20 - 50


def test_threads_racing_for_the_last_places_never_overfill_the_board():
    board = Scoreboard(max_teams=5, max_exercises=2)
    start = threading.Barrier(16)
    refused: list[str] = []

    def post(number: int) -> None:
        start.wait()
        try:
            board.record(f"team-{number}", "deposit-guard", True, 1, None)
        except ScoreboardFull as full:
            refused.append(full.what)

    threads = [threading.Thread(target=post, args=(number,)) for number in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len({row.team for row in board.rows()}) == 5
    assert refused == ["teams"] * 11
    assert board.clear() == 5 and board.rows() == []
