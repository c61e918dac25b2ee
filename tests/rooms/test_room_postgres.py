"""A room of three teams on the postgres store, two workers: a team made on one worker is found by the other
(the database's register), its token opens it there too, and each team's books and settings stay its own."""

from __future__ import annotations

import pytest

from ..live import burst, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(180)]

TOKEN = "room-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(databases):
    url = databases.create()
    flags = ("--store", "postgres", "--workers", "2", "--threads", "12", "--database-url", url, "--admin-token", TOKEN)
    with live_server(*flags, "--race-window-ms", "1", startup_timeout=40) as running:
        yield running


def test_three_teams_on_postgres_keep_their_own_books_on_every_worker(server):
    made = server.post("/admin/rooms", json={"teams": ["red", "blue", "green"]}, headers=ADMIN)
    assert made.status_code == 201, made.text
    tokens = {team["name"]: team["token"] for team in made.json()["teams"]}
    guards = {
        "red": {"deposit_guard": "unsafe", "race_window_ms": 20},
        "blue": {"deposit_guard": "row-lock"},
        "green": {"deposit_guard": "atomic-update"},
    }
    served_by = set()
    for name, settings in guards.items():
        for _ in range(6):  # both workers: each finds the team and opens it with the same token
            answer = server.patch(
                f"/teams/{name}/admin/config", json=settings, headers={"Authorization": f"Bearer {tokens[name]}"}
            )
            assert answer.status_code == 200, answer.text
            served_by.add(answer.headers["X-Served-By"].split("/")[0])
    assert len(served_by) == 2
    jobs = [("/teams/red/accounts/acc-00/deposit", {"amount": 1})] * 6
    jobs += [("/teams/green/accounts/acc-00/deposit", {"amount": 1})] * 6
    burst(server.url, 3, jobs, most=60)
    red = server.get("/teams/red/stats").json()["deposits"]
    green = server.get("/teams/green/stats").json()["deposits"]
    assert red["acknowledged"] > 0 and red["lost_updates"] > 0
    assert green["acknowledged"] > 0 and green["lost_updates"] == 0
    assert server.get("/teams/blue/stats").json()["deposits"]["acknowledged"] == 0
    assert server.get("/stats").json()["deposits"]["acknowledged"] == 0
    for name, settings in guards.items():
        assert {k: server.get(f"/teams/{name}/stats").json()["settings"][k] for k in settings} == settings
    room = {team["name"]: team for team in server.get("/admin/rooms", headers=ADMIN).json()["teams"]}
    assert room["green"]["guards"]["deposit_guard"] == "atomic-update"
