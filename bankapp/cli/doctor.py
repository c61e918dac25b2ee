"""`bankapp doctor`: the setup check a trainee runs first, one plain line per check.

    bankapp doctor                                   # this laptop: Python, the install, a port, a server, Locust
    bankapp doctor --url http://192.168.1.20:8000    # the room's server instead of one started here
    bankapp doctor --database-url postgresql://127.0.0.1:5432/bankapp   # and PostgreSQL (lessons 13 to 16)

Each check prints `ok` or `FAIL`, what it found, and for a failure what to
do (`fix:`). The exit code is 0 when every check passed, 1 otherwise, so a
room can run it in a loop or a script. Nothing is left behind: the server
it starts listens on a free loopback port the kernel picks, and is stopped
by its PID before the next check.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

#: The oldest Python bankapp runs on (pyproject.toml's `requires-python`).
OLDEST_PYTHON = (3, 11)
#: What a trainee types to install the lab, from the repository root (the lab guide's "Before you start").
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[test]'"
#: Seconds any one network step of a check may take: a check that hangs tells a room nothing.
NETWORK_TIMEOUT_S = 5.0
#: Seconds the server it starts has to answer /healthz.
STARTUP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Check:
    """One check's result: its name, whether it passed, what it found, and what to do when it failed."""

    name: str
    passed: bool
    found: str
    fix: str = ""

    def lines(self) -> list[str]:
        shown = [f"{'ok  ' if self.passed else 'FAIL'}  {self.name:<9} {self.found}"]
        if not self.passed and self.fix:
            shown.append(f"      fix: {self.fix}")
        return shown


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= OLDEST_PYTHON:
        return Check("python", True, f"{version} at {sys.executable}")
    oldest = ".".join(map(str, OLDEST_PYTHON))
    return Check(
        "python",
        False,
        f"{version} at {sys.executable}: bankapp needs {oldest} or newer",
        f"install Python {oldest}+ (python.org, your package manager, or pyenv), then make the venv with it: "
        f"python3.{OLDEST_PYTHON[1]} -m venv .venv",
    )


def check_install() -> Check:
    try:
        version = importlib.metadata.version("bankapp")
        import bankapp
    except (importlib.metadata.PackageNotFoundError, ImportError) as error:
        return Check("install", False, f"bankapp is not installed in this Python: {error}", INSTALL)
    missing = [name for name in ("flask", "gunicorn", "pydantic", "psycopg") if not _importable(name)]
    where = Path(bankapp.__file__).parent
    if missing:
        return Check("install", False, f"bankapp {version} at {where}, without {', '.join(missing)}", INSTALL)
    return Check("install", True, f"bankapp {version} at {where}")


def _importable(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def check_port(port: int) -> Check:
    """The port `bankapp serve` binds by default (8000): free, or already a bankapp's."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds: a TIME_WAIT is no owner
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            taken = error
        else:
            return Check("port", True, f"127.0.0.1:{port} is free for bankapp serve")
    if _bankapp_answers(f"http://127.0.0.1:{port}"):
        return Check("port", True, f"127.0.0.1:{port} is taken by a bankapp that answers /healthz (yours?)")
    return Check(
        "port",
        False,
        f"127.0.0.1:{port} is taken by something that is not bankapp ({taken.strerror})",
        f"find it (lsof -i :{port}, or ss -ltnp) and stop it, or serve elsewhere: bankapp serve --port "
        f"{port + 10}, and use http://127.0.0.1:{port + 10} wherever the guide says $U",
    )


def _bankapp_answers(url: str) -> dict | None:
    """The body of `url`/healthz when a bankapp answers it, else None."""
    try:
        response = requests.get(url.rstrip("/") + "/healthz", timeout=NETWORK_TIMEOUT_S)
        body = response.json()
    except (requests.RequestException, ValueError):
        return None
    return body if response.status_code == 200 and isinstance(body, dict) and "status" in body else None


def check_server(url: str | None) -> Check:
    """A server answers /healthz: the one at `url`, or one started here on a free loopback port."""
    if url:
        body = _bankapp_answers(url)
        if body is None:
            return Check(
                "server",
                False,
                f"no bankapp answers GET {url.rstrip('/')}/healthz within {NETWORK_TIMEOUT_S:g} s",
                fix_for_url(url),
            )
        return Check("server", True, f"{url.rstrip('/')}/healthz answers {_healthz_words(body)}")
    from ..server.processes import ProcessError, ServerProcess  # starts a child: only when asked

    try:
        server = ServerProcess(startup_timeout=STARTUP_TIMEOUT_S)
    except (ProcessError, OSError) as error:
        last = str(error).strip().splitlines()[-1] if str(error).strip() else "no output"
        return Check(
            "server",
            False,
            f"bankapp serve did not start on a free loopback port: {last}",
            "run .venv/bin/bankapp serve in a terminal and read what it says; reinstall if it cannot import: "
            + INSTALL,
        )
    try:
        body = _bankapp_answers(server.url)
        pid = server.pid
    finally:
        server.stop()
    if body is None:
        return Check("server", False, f"bankapp serve started (pid {pid}) but /healthz did not answer", INSTALL)
    return Check(
        "server", True, f"bankapp serve started at {server.url} (pid {pid}), answered {_healthz_words(body)}, stopped"
    )


def fix_for_url(url: str) -> str:
    host = urlsplit(url).hostname or ""
    if host in {"127.0.0.1", "localhost", "::1"}:
        return "start it in a terminal of its own and leave it running: .venv/bin/bankapp serve (then run this again)"
    return (
        "check the address with the instructor (bankapp urls prints the room's); a room's server must be started "
        "with --host 0.0.0.0 (or BANKAPP_PUBLISH=0.0.0.0 with compose), and a firewall may block the port"
    )


def _healthz_words(body: dict) -> str:
    return " ".join(f"{name}={value}" for name, value in body.items() if isinstance(value, str | int | float))


def check_database(database_url: str) -> Check:
    """PostgreSQL answers at `database_url`, as the postgres store would connect to it."""
    try:
        import psycopg
    except ImportError as error:
        return Check("database", False, f"psycopg is missing: {error}", INSTALL)
    try:
        with psycopg.connect(database_url, connect_timeout=int(NETWORK_TIMEOUT_S)) as connection:
            row = connection.execute("SELECT current_setting('server_version'), current_user").fetchone()
    except (psycopg.Error, ValueError) as error:  # a refused connection, bad credentials, a malformed URL
        words = " ".join(str(error).split())
        return Check(
            "database",
            False,
            f"cannot use {database_url}: {words}",
            "start PostgreSQL (or ask the instructor for the room's URL), create the database once: "
            "createdb -h 127.0.0.1 bankapp, and put your role (and password) in the URL: "
            "postgresql://ROLE:PASSWORD@127.0.0.1:5432/bankapp",
        )
    version, role = row if row else ("?", "?")
    return Check("database", True, f"PostgreSQL {version} answers at {database_url} as role {role}")


def check_locust() -> Check:
    """Locust installed, and its command runs (`locust --version`); not imported here: it patches with gevent."""
    fix = "install the load extra: .venv/bin/pip install -c constraints.txt -e '.[load]'"
    try:
        version = importlib.metadata.version("locust")
    except importlib.metadata.PackageNotFoundError:
        return Check("locust", False, "Locust is not installed in this Python", fix)
    beside = Path(sys.executable).parent / "locust"
    command = str(beside) if beside.exists() else shutil.which("locust")
    if command is None:
        return Check("locust", False, f"Locust {version} is installed but no locust command is on PATH", fix)
    try:
        ran = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("locust", False, f"{command} --version did not run: {error}", fix)
    if ran.returncode != 0:
        last = (ran.stderr or ran.stdout).strip().splitlines()[-1:] or ["no output"]
        return Check("locust", False, f"{command} --version failed: {last[0]}", fix)
    return Check("locust", True, f"Locust {version} at {command}")


def checks(args: argparse.Namespace) -> list[Callable[[], Check]]:
    """The checks in the order a setup is built: each one needs the ones before it."""
    chosen: list[Callable[[], Check]] = [check_python, check_install, lambda: check_port(args.port)]
    chosen.append(lambda: check_server(args.url))
    if args.database_url:
        chosen.append(lambda: check_database(args.database_url))
    chosen.append(check_locust)
    return chosen


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check this machine's setup for the lab: Python, the install, a port, a server, PostgreSQL, Locust",
        description="One line per check (ok or FAIL) and what to do about a failure; exit 0 when all pass, 1 "
        "otherwise. See docs/instructor.md.",
    )
    parser.add_argument("--url", help="check the server at URL (the room's) instead of starting one here")
    parser.add_argument("--database-url", help="also check PostgreSQL at this libpq URL (lessons 13 to 16)")
    parser.add_argument("--port", type=int, default=8000, help="the port bankapp serve will use [%(default)s]")


def run(args: argparse.Namespace) -> int:
    failed = 0
    for check in checks(args):
        result = check()
        failed += not result.passed
        print("\n".join(result.lines()), flush=True)
    total = len(checks(args))
    if failed:
        print(f"bankapp doctor: {failed} of {total} checks failed: do what each fix says, then run it again")
        return 1
    print(f"bankapp doctor: all {total} checks passed: ready for the lab")
    return 0
