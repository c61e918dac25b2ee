"""`bankapp interleave` against a real gunicorn: what it prints is the replay, the same every run, whatever
the server is doing; a bad schedule is the server's message and exit 2; the admin token travels."""

import socket
import subprocess
import sys
import threading

import pytest

from bankapp.interleave import render, replay
from bankapp.settings import load

from ..live import burst, live_server

pytestmark = pytest.mark.e2e


def interleave(url: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bankapp", "interleave", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_the_command_prints_the_replay_the_same_every_run_while_the_server_is_busy():
    schedule = "a.read b.read a.write b.write"
    expected = "\n".join(render(replay(load({}, environ={}), "deposit", "lock", schedule))) + "\n"
    with live_server() as server:
        load_thread = threading.Thread(
            target=burst, args=(server.url, 4, [("/accounts/acc-00/deposit", {"amount": 1})] * 4)
        )
        load_thread.start()  # deposits race on the server's own acc-00 meanwhile
        try:
            runs = [interleave(server.url, "deposit", "--guard", "lock", "--schedule", schedule) for _ in range(3)]
        finally:
            load_thread.join(120)
        unsafe = interleave(server.url, "deposit", "--guard", "unsafe", "--schedule", schedule)
        balance = server.get("/accounts/acc-00").json()["balance"]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.stdout == expected
    assert "  b.read    blocks: a holds the lock guard of acc-00" in expected.splitlines()
    assert unsafe.returncode == 0 and "10 cents lost" in unsafe.stdout
    assert balance > 100_000  # the server's own deposits went on, in its own bank


def test_a_bad_schedule_is_the_servers_message_and_exit_2():
    with live_server() as server:
        bad = interleave(server.url, "deposit", "--guard", "unsafe", "--schedule", "a.read b.read a.write b.jump")
        empty = interleave(server.url, "transfer", "--schedule", "")
        guard = interleave(server.url, "transfer", "--guard", "backoff")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "bankapp interleave: b.jump: thread b has no step jump; its steps are read and write\n"
    assert empty.returncode == 2 and "the schedule is empty" in empty.stderr
    assert guard.returncode == 2 and "transfer runs under the transfer policies naive" in guard.stderr


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_the_token_comes_from_the_environment_and_no_server_is_a_clear_exit_2():
    with live_server("--admin-token", "s3cret") as server:
        without = interleave(server.url, "deposit", env={"PATH": ""})
        with_token = interleave(server.url, "deposit", env={"PATH": "", "BANKAPP_ADMIN_TOKEN": "s3cret"})
    assert without.returncode == 2 and "Authorization: Bearer" in without.stderr
    assert with_token.returncode == 0, with_token.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: nothing answers there
        nobody = interleave(f"http://127.0.0.1:{port}", "deposit")
    assert nobody.returncode == 2
    assert nobody.stderr == (
        f"bankapp interleave: no server answers at http://127.0.0.1:{port}; start one first: bankapp serve\n"
    )
