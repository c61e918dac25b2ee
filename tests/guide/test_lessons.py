"""`bankapp lesson N`: a known state for each lesson, whatever the lessons before it left."""

import socket
import subprocess
import sys

import pytest

from bankapp.cli.lessons import LESSONS, runtime_defaults
from bankapp.settings import STARTUP_ONLY

from ..live import live_server


def lesson(number: int, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bankapp", "lesson", str(number), "--url", url],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_every_lesson_sets_only_settings_that_exist_and_can_change_at_runtime():
    for number, each in LESSONS.items():
        assert set(each.settings) <= set(runtime_defaults()), number
        assert not set(each.settings) & STARTUP_ONLY, number
        assert each.server or not each.settings, number
        assert set(each.started) <= STARTUP_ONLY and (each.server or not each.started), number


@pytest.mark.e2e
def test_a_lesson_undoes_what_earlier_lessons_left_and_says_what_it_set():
    with live_server("--guard", "lock", "--race-window-ms", "7") as server:
        server.patch("/admin/config", json={"deposit_permits": 4, "capacity": 2, "switch_interval_us": 10})
        server.post("/accounts/acc-00/deposit", json={"amount": 50})
        result = lesson(8, server.url)
        config = server.get("/admin/config").json()
        balance = server.get("/accounts/acc-00").json()["balance"]
        stats = server.get("/stats").json()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "lesson 8: Deadlock and its four conditions (balances and counters reset)",
        "  transfer_policy=naive race_window_ms=200 lock_timeout_ms=2000 deadlock_check_ms=50, the rest at defaults",
    ]
    assert {name: config[name] for name in LESSONS[8].settings} == LESSONS[8].settings
    rest = {name: value for name, value in runtime_defaults().items() if name not in LESSONS[8].settings}
    assert {name: config[name] for name in rest} == rest
    assert (config["deposit_guard"], config["deposit_permits"], config["switch_interval_us"]) == ("unsafe", 1, 5000)
    assert balance == 100_000 and stats["deposits"]["acknowledged"] == 0


@pytest.mark.e2e
def test_a_server_started_with_other_fixed_settings_is_named():
    with live_server("--accounts", "4") as server:
        result = lesson(1, server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "  note: this server was started with accounts=4; the guide's outputs assume the defaults"
    )


@pytest.mark.e2e
def test_a_fleet_lesson_on_a_one_process_server_says_what_the_guide_assumes():
    with live_server() as server:
        result = lesson(13, server.url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == (
        "  note: this server was started with store=memory threads=32 workers=1; "
        "the guide's outputs assume store=postgres workers=4 threads=16 and the defaults"
    )


def test_a_lesson_without_a_server_says_so_and_touches_nothing():
    result = lesson(2, "http://127.0.0.1:9")  # nothing listens there: it is not called
    assert result.returncode == 0
    assert result.stdout == "lesson 2: start and join: a thread runs once (needs no server: nothing to set)\n"


def test_no_server_is_a_clear_message_and_exit_2():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, and nothing will listen: the socket never listens
        result = lesson(3, f"http://127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stderr == (
        f"bankapp lesson: no server answers at http://127.0.0.1:{port}; start one first: bankapp serve\n"
    )


def test_an_unknown_lesson_is_refused_by_argparse():
    result = lesson(99, "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "invalid choice: 99" in result.stderr
