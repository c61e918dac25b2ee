"""The fair share over real HTTP: a team whose requests deadlock forever holds its share and what it may borrow,
never the whole worker: its next request is refused at once (503, Retry-After), another team's is served."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from ..live import live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

TOKEN = "room-share"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def test_a_team_deadlocked_forever_cannot_take_the_other_teams_threads():
    # 8 threads, a reserve of 2: a budget of 6; three teams (default, red, blue): a share of 2 each
    with live_server("--admin-token", TOKEN, "--threads", "8", "--race-window-ms", "1") as server:
        made = server.post("/admin/rooms", json={"teams": ["red", "blue"]}, headers=ADMIN).json()["teams"]
        red_token = next(team["token"] for team in made if team["name"] == "red")
        red = {"Authorization": f"Bearer {red_token}"}
        server.patch("/teams/red/admin/config", json={"deposit_guard": "lock", "lock_timeout_ms": None}, headers=red)
        answers: list[int] = []

        def stuck(account: str) -> None:  # a batch deposit under `lock` waits for itself: forever
            url = f"{server.url}/teams/red/accounts/{account}/batch-deposit"
            answers.append(requests.post(url, json={"amounts": [1, 1]}, timeout=60).status_code)

        holders = [threading.Thread(target=stuck, args=(f"acc-0{n}",), daemon=True) for n in range(4)]
        for thread in holders:
            thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # 2 of its share, 2 borrowed: then a share is all that is free
            share = next(t for t in server.get("/admin/rooms", headers=ADMIN).json()["teams"] if t["name"] == "red")
            if share["share"]["in_flight"] == 4:
                break
            time.sleep(0.05)
        assert share["share"] == {"share": 2, "budget": 6, "in_flight": 4, "borrowed": 2, "refused": 0}

        started = time.monotonic()
        refused = server.post("/teams/red/accounts/acc-05/deposit", json={"amount": 1})
        assert (refused.status_code, refused.headers["Retry-After"]) == (503, "1"), refused.text
        assert refused.json()["type"] == "urn:bankapp:problem:team-share"
        served = server.post("/teams/blue/accounts/acc-00/deposit", json={"amount": 1})
        assert served.status_code == 200 and time.monotonic() - started < 5
        assert server.post("/accounts/acc-00/deposit", json={"amount": 1}).status_code == 200

        broken = server.post("/teams/red/admin/break-deadlocks", headers=red).json()["deadlocks_broken"]
        assert len(broken) == 4
        for thread in holders:
            thread.join(timeout=30)
        assert answers == [409] * 4
        assert server.post("/teams/red/accounts/acc-05/deposit", json={"amount": 1}).status_code == 200
