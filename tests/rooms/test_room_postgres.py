"""A room of three teams on the postgres store, two workers: a team made on one worker is found by the other
(the database's register), its token opens it there too, and each team's books and settings stay its own."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import requests

from bankapp.compare.locust_runs import LocustJob
from bankapp.compare.locust_runs import run_locust as run_headless

from ..live import burst, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(180)]

TOKEN = "room-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"


@pytest.fixture(scope="module")
def server(databases):
    url = databases.create()
    flags = ("--store", "postgres", "--workers", "2", "--threads", "12", "--database-url", url, "--admin-token", TOKEN)
    with live_server(*flags, "--race-window-ms", "1", startup_timeout=40) as running:
        yield running


def from_both_workers(call) -> list[requests.Response]:
    """`call()`'s answers (a new connection each) until both workers have answered, at most 80: which worker
    accepts a connection is the kernel's choice, and a loaded machine can hand one worker a whole burst."""
    answers: list[requests.Response] = []
    while len(answers) < 80 and len({answer.headers["X-Served-By"].split("/")[0] for answer in answers}) < 2:
        answers.append(call())
    assert len({answer.headers["X-Served-By"].split("/")[0] for answer in answers}) == 2, "one worker answered all"
    return answers


def test_three_teams_on_postgres_keep_their_own_books_on_every_worker(server, tmp_path):
    made = server.post("/admin/rooms", json={"teams": ["red", "blue", "green"]}, headers=ADMIN)
    assert made.status_code == 201, made.text
    tokens = {team["name"]: team["token"] for team in made.json()["teams"]}
    guards = {
        "red": {"deposit_guard": "unsafe", "race_window_ms": 20},
        "blue": {"deposit_guard": "lock", "lock_timeout_ms": None},
        "green": {"deposit_guard": "atomic-update"},
    }
    for name, settings in guards.items():  # both workers: each finds the team and opens it with the same token
        bearer = {"Authorization": f"Bearer {tokens[name]}"}
        for answer in from_both_workers(
            lambda name=name, settings=settings, bearer=bearer: server.patch(
                f"/teams/{name}/admin/config", json=settings, headers=bearer
            )
        ):
            assert answer.status_code == 200, answer.text
    # blue: a batch deposit under a process's `lock`, no timeout: it waits for itself forever, in one worker
    stuck: dict[str, requests.Response] = {}
    batch = server.url + "/teams/blue/accounts/acc-00/batch-deposit"
    deadlocked = threading.Thread(
        target=lambda: stuck.setdefault("answer", requests.post(batch, json={"amounts": [1, 2]}, timeout=90)),
        daemon=True,
    )
    deadlocked.start()
    flood = threading.Thread(
        target=burst,
        args=(server.url, 3, [("/teams/red/accounts/acc-00/deposit", {"amount": 1})] * 6),
        kwargs={"most": 60},
        daemon=True,
    )
    flood.start()
    job = LocustJob(
        LOCUSTFILE,
        ["DepositUser"],
        server.url,
        users=4,
        duration=3,
        prefix=tmp_path / "locust",
        extra=("--fail-on-anomaly", "--team", "green", "--admin-token", tokens["green"]),
    )
    run = run_headless(job, timeout=90, cwd=tmp_path)
    flood.join(timeout=60)
    assert run.verdict is not None and run.verdict["ok"], run.output[-3000:]
    green = server.get("/teams/green/stats").json()["deposits"]
    seen = run.verdict["deposits"]
    assert 0 < seen["acknowledged_amount"] <= green["acknowledged_amount"] <= seen["attempted_amount"]
    assert green["lost_updates"] == 0
    red = server.get("/teams/red/stats").json()["deposits"]
    assert red["acknowledged"] > 0 and red["lost_updates"] > 0
    assert deadlocked.is_alive()
    assert server.get("/teams/blue/stats").json()["deposits"]["acknowledged"] == 0
    assert server.get("/stats").json()["deposits"]["acknowledged"] == 0
    shown = {name: {k: "none" if v is None else v for k, v in settings.items()} for name, settings in guards.items()}
    for name, settings in shown.items():
        assert {k: server.get(f"/teams/{name}/stats").json()["settings"][k] for k in settings} == settings
    deadline = time.monotonic() + 30  # the stuck request is one worker's: break until that worker is asked
    while deadlocked.is_alive() and time.monotonic() < deadline:
        server.post("/teams/blue/admin/break-deadlocks", headers={"Authorization": f"Bearer {tokens['blue']}"})
        deadlocked.join(timeout=0.5)
    assert stuck["answer"].status_code == 409
    room = {team["name"]: team for team in server.get("/admin/rooms", headers=ADMIN).json()["teams"]}
    assert room["green"]["guards"]["deposit_guard"] == "atomic-update"


def test_the_freeze_and_the_lesson_reach_every_worker(server):
    server.post("/admin/rooms", json={"teams": ["cold"]}, headers=ADMIN)
    assert server.post("/admin/rooms/freeze", json={"frozen": True}, headers=ADMIN).json()["frozen"] is True
    time.sleep(1.2)  # each worker asks the database again within a second
    answers = from_both_workers(lambda: server.post("/teams/cold/accounts/acc-00/deposit", json={"amount": 1}))
    assert {answer.status_code for answer in answers} == {423}
    server.post("/admin/rooms/freeze", json={"frozen": False}, headers=ADMIN)
    moved = server.post("/admin/rooms/lesson", json={"lesson": 4}, headers=ADMIN).json()
    assert moved["teams"] >= 2
    time.sleep(1.2)
    for answer in from_both_workers(lambda: server.get("/teams/cold/stats")):  # the settings are the database's
        settings = answer.json()["settings"]
        assert (settings["deposit_guard"], settings["race_window_ms"]) == ("lock", 500)
    assert server.post("/teams/cold/accounts/acc-00/deposit", json={"amount": 1}).status_code == 200
