"""A team's dashboard history is its own: deposits into red show in red's history, never in blue's or the
default team's, over real HTTP on one server."""

from __future__ import annotations

import time

import pytest

from ..live import live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ADMIN = {"Authorization": "Bearer room-admin"}


def acknowledged(server, prefix: str) -> list[int]:
    answer = server.get(prefix + "/dashboard/history")
    assert answer.status_code == 200, answer.text
    return answer.json()["series"]["acknowledged"]


def test_each_team_draws_its_own_history(server_with_teams):
    server = server_with_teams
    for _ in range(7):
        assert server.post("/teams/red/accounts/acc-00/deposit", json={"amount": 1}).status_code == 200
    assert server.post("/accounts/acc-00/deposit", json={"amount": 1}, headers={"X-Team": "blue"}).status_code == 200
    deadline = time.monotonic() + 10  # a history samples at most once a second: wait for the one after the burst
    while time.monotonic() < deadline and max(acknowledged(server, "/teams/red") or [0]) < 7:
        time.sleep(0.3)
    red, blue, default = (acknowledged(server, prefix) for prefix in ("/teams/red", "/teams/blue", ""))
    assert red and max(red) == 7
    assert blue and max(blue) == 1
    assert not default or max(default) == 0  # the default team took no deposit


@pytest.fixture
def server_with_teams():
    with live_server("--admin-token", "room-admin") as server:
        made = server.post("/admin/rooms", json={"teams": ["red", "blue"]}, headers=ADMIN)
        assert made.status_code == 201, made.text
        yield server
