"""`bankapp doctor`, run as a trainee runs it: a real process, real checks, one line per check, the exit code.

Each run here starts at most one server (the doctor's own, on a free loopback
port, stopped by its PID) or none (`--url`), so every test is bounded by the
doctor's own timeouts.
"""

import os
import re
import socket
import subprocess
import sys

import pytest

from bankapp.server.processes import ServerProcess

LINE = re.compile(r"^(ok  |FAIL)  (\w+) +\S")


def doctor(*flags: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BANKAPP_")}
    return subprocess.run(
        [sys.executable, "-m", "bankapp", "doctor", *flags], capture_output=True, text=True, timeout=timeout, env=env
    )


def results(output: str) -> dict[str, str]:
    """{check: 'ok' or 'FAIL'} from the doctor's lines."""
    found = {}
    for line in output.splitlines():
        if match := LINE.match(line):
            found[match.group(2)] = match.group(1).strip()
    return found


def closed_port() -> int:
    """A loopback port nobody listens on: bound, then closed, so the kernel refuses connections to it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_port() -> int:
    return closed_port()


def test_a_real_run_here_passes_every_check_and_stops_the_server_it_started():
    port = free_port()
    ran = doctor("--port", str(port))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert results(ran.stdout) == {name: "ok" for name in ("python", "install", "port", "server", "locust")}
    assert "all 5 checks passed" in ran.stdout
    started = re.search(r"started at (http://127\.0\.0\.1:\d+) \(pid (\d+)\)", ran.stdout)
    assert started, ran.stdout
    with pytest.raises(ProcessLookupError):  # stopped by PID before the doctor ended
        os.kill(int(started.group(2)), 0)


def test_an_unreachable_database_fails_with_its_fix_and_exit_1():
    url = f"postgresql://127.0.0.1:{closed_port()}/bankapp"
    with ServerProcess() as server:  # --url: the doctor starts no server of its own
        ran = doctor("--url", server.url, "--port", str(free_port()), "--database-url", url)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert results(ran.stdout) == {
        "python": "ok",
        "install": "ok",
        "port": "ok",
        "server": "ok",
        "database": "FAIL",
        "locust": "ok",
    }
    lines = ran.stdout.splitlines()
    failed = next(index for index, line in enumerate(lines) if line.startswith("FAIL  database"))
    assert url in lines[failed] and "refused" in lines[failed].lower()
    assert lines[failed + 1].startswith("      fix: ") and "createdb" in lines[failed + 1]
    assert "1 of 6 checks failed" in ran.stdout


def test_a_reachable_database_passes(databases):
    url = databases.create()
    with ServerProcess() as server:
        ran = doctor("--url", server.url, "--port", str(free_port()), "--database-url", url)
    assert ran.returncode == 0, ran.stdout
    assert results(ran.stdout)["database"] == "ok"
    assert re.search(r"PostgreSQL \d+", ran.stdout)


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_no_server_at_the_url_and_a_port_taken_by_something_else_fail_with_what_to_do():
    with socket.socket() as squatter:  # a listener that is not bankapp: it never answers HTTP
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ran = doctor("--url", f"http://127.0.0.1:{closed_port()}", "--port", str(taken))
    assert ran.returncode == 1
    found = results(ran.stdout)
    assert found["port"] == "FAIL" and found["server"] == "FAIL" and found["python"] == "ok"
    assert f"bankapp serve --port {taken + 10}" in ran.stdout
    assert "2 of 5 checks failed" in ran.stdout


def test_a_port_a_bankapp_already_serves_is_fine():
    with ServerProcess() as server:
        port = server.url.rsplit(":", 1)[1]
        ran = doctor("--url", server.url, "--port", port)
    assert ran.returncode == 0, ran.stdout
    assert "taken by a bankapp that answers /healthz" in ran.stdout
