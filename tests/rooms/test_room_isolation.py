"""A room of three teams on one real server (memory store): each on its own guard, one flooded, one deadlocked
forever, one judged by Locust (`--team`); every team's books, settings, verdict and /stats stay its own."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import requests

from bankapp.compare.locust_runs import LocustJob
from bankapp.compare.locust_runs import run_locust as run_headless

from ..live import burst, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

TOKEN = "room-admin"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def server():
    with live_server("--admin-token", TOKEN, "--race-window-ms", "1") as running:
        yield running


def test_three_teams_keep_their_own_books_settings_verdict_and_stats(server, tmp_path):
    made = server.post("/admin/rooms", json={"teams": ["red", "blue", "green"]}, headers=ADMIN)
    assert made.status_code == 201, made.text
    tokens = {team["name"]: team["token"] for team in made.json()["teams"]}
    guards = {
        "red": {"deposit_guard": "unsafe", "race_window_ms": 20},
        "blue": {"deposit_guard": "lock", "lock_timeout_ms": None},
        "green": {"deposit_guard": "rlock", "race_window_ms": 1},
    }
    for name, settings in guards.items():  # each team with its own token
        answer = server.patch(f"/teams/{name}/admin/config", json=settings, headers=bearer(tokens[name]))
        assert answer.status_code == 200, answer.text
    default_before = server.get("/accounts").json()
    default_settings = server.get("/admin/config", headers=ADMIN).json()

    # blue: a batch deposit under `lock` with no timeout waits for itself forever
    stuck: dict[str, requests.Response] = {}
    deadlocked = threading.Thread(
        target=lambda: stuck.setdefault(
            "answer",
            requests.post(
                server.url + "/teams/blue/accounts/acc-00/batch-deposit", json={"amounts": [1, 2]}, timeout=60
            ),
        ),
        daemon=True,
    )
    deadlocked.start()
    # red: a flood of unsafe deposits on one account, which loses updates; green: Locust, judged on green's books
    flood = threading.Thread(
        target=burst, args=(server.url, 3, [("/teams/red/accounts/acc-00/deposit", {"amount": 1})] * 8), daemon=True
    )
    flood.start()
    job = LocustJob(
        LOCUSTFILE,
        ["DepositUser"],
        server.url,
        users=6,
        duration=3,
        prefix=tmp_path / "locust",
        extra=("--fail-on-anomaly", "--team", "green", "--admin-token", tokens["green"]),
    )
    run = run_headless(job, timeout=90, cwd=tmp_path)
    flood.join(timeout=60)
    assert run.verdict is not None, run.output[-3000:]
    assert run.verdict["ok"], run.verdict["anomalies"]
    green = server.get("/teams/green/stats").json()["deposits"]
    seen = run.verdict["deposits"]  # a deposit cut off as Locust stopped is attempted, not acknowledged
    assert 0 < seen["acknowledged_amount"] <= green["acknowledged_amount"] <= seen["attempted_amount"]
    assert green["lost_updates"] == 0

    red = server.get("/teams/red/stats").json()["deposits"]
    assert red["lost_updates"] > 0 and red["acknowledged"] > 0  # red's race, in red's books alone
    assert deadlocked.is_alive(), stuck  # blue's deadlock holds, and nobody else waits for it
    blue = server.get("/stats", headers={"X-Team": "blue"}).json()
    assert blue["deposits"]["acknowledged"] == 0 and blue["settings"]["lock_timeout_ms"] == "none"

    # the default team: today's lab, untouched by them all
    default = server.get("/stats").json()
    assert default["deposits"]["acknowledged"] == 0 and default["deposits"]["lost_updates"] == 0
    assert server.get("/accounts").json() == default_before
    assert server.get("/admin/config", headers=ADMIN).json() == default_settings
    for name, settings in guards.items():
        config = server.get(f"/teams/{name}/admin/config", headers=bearer(tokens[name])).json()
        shown = {key: "none" if value is None else value for key, value in settings.items()}
        assert {key: config[key] for key in settings} == shown, name

    # red's reset restores red alone
    green_balances = server.get("/teams/green/accounts").json()
    assert server.post("/teams/red/admin/reset", headers=bearer(tokens["red"])).status_code == 200
    assert server.get("/teams/red/stats").json()["deposits"]["acknowledged"] == 0
    assert server.get("/teams/green/accounts").json() == green_balances

    # the console's view of the room, then blue's deadlock broken by its own token
    room = {team["name"]: team for team in server.get("/admin/rooms", headers=ADMIN).json()["teams"]}
    assert room["green"]["deposits"] == green["acknowledged"] and room["default"]["deposits"] == 0
    assert room["red"]["guards"]["deposit_guard"] == "unsafe" and room["blue"]["guards"]["deposit_guard"] == "lock"
    broken = server.post("/teams/blue/admin/break-deadlocks", headers=bearer(tokens["blue"])).json()
    assert broken["deadlocks_broken"], broken
    deadlocked.join(timeout=30)
    assert stuck["answer"].status_code == 409


def test_bankapp_lesson_room_moves_every_team(server):
    import subprocess
    import sys

    (made,) = server.post("/admin/rooms", json={"teams": ["cli-a"]}, headers=ADMIN).json()["teams"]
    done = subprocess.run(
        [sys.executable, "-m", "bankapp", "lesson", "3", "--room", server.url, "--token", TOKEN],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "teams moved" in done.stdout
    assert server.get("/teams/cli-a/stats").json()["settings"]["race_window_ms"] == 500
    assert server.get("/stats").json()["settings"]["race_window_ms"] == 500
    # a team moves itself alone: its URL, its token
    alone = subprocess.run(
        [
            sys.executable,
            "-m",
            "bankapp",
            "lesson",
            "4",
            "--url",
            f"{server.url}/teams/cli-a",
            "--token",
            made["token"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert alone.returncode == 0, alone.stderr
    assert server.get("/teams/cli-a/stats").json()["settings"]["deposit_guard"] == "lock"
    assert server.get("/stats").json()["settings"]["deposit_guard"] == "unsafe"  # lesson 3's, still
