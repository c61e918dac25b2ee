"""Run steps of `docs/lab-guide.md` as a trainee would: commands in one terminal, servers in others.

`Trainee` runs the steps `guide.parse` found, against real servers on free
loopback ports, and tells whether each printed what the guide quotes. The
PostgreSQL database the guide names (`bankapp` at 127.0.0.1:5432) is one the
Trainee creates for the run (`tests.pg`) and drops at the end.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from bankapp.server.processes import READY, last_lines, signal_group, stop_group

from ..pg import Databases, reachable_or_skip
from .guide import ROOT, GuideError, Section, Step, matches

#: How long one command block may run, and a server take to start or stop.
STEP_TIMEOUT = 180
SERVER_TIMEOUT = 30
#: gunicorn's graceful timeout in `bankapp serve`, and a little more.
STOP_TIMEOUT = 15
#: The trainee's database of lessons 13 to 16 (`createdb -h 127.0.0.1 bankapp`), as the guide writes its URL.
GUIDE_DATABASE = re.compile(r"postgresql://(?:[^\s/@]*@)?127\.0\.0\.1:5432/bankapp\b")


class Terminal:
    """The trainee's terminal: one bash, so a variable set in one block is there in the next.

    Each block is written to a file and sourced with stdin from /dev/null,
    so a command that reads stdin cannot eat the blocks after it; stderr
    goes with stdout, as on a screen.
    """

    def __init__(self, workdir: Path, env: dict[str, str]):
        self.workdir = workdir
        self.count = 0
        self.process = subprocess.Popen(
            ["bash", "--norc", "--noprofile"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.arrived = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="guide-terminal", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self.process.stdout:
                with self.arrived:
                    self.lines.append(line)
                    self.arrived.notify_all()
        finally:
            self.process.stdout.close()

    def run(self, commands: str, timeout: float = STEP_TIMEOUT) -> str:
        self.count += 1
        script = self.workdir / f"block-{self.count}.sh"
        script.write_text(commands + "\n")
        marker = f"__guide_block_{self.count}_done__"
        start = len(self.lines)
        self.process.stdin.write(f"source {script} < /dev/null; printf '\\n{marker}\\n'\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not any(line.rstrip("\n") == marker for line in self.lines[start:]):
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise GuideError(f"still running after {timeout:g} s:\n" + "".join(self.lines[start:]))
                self.arrived.wait(min(left, 0.5))
            output = self.lines[start:]
        return "".join(output[: next(i for i, line in enumerate(output) if line.rstrip("\n") == marker)])

    def close(self) -> None:
        """End of input, as closing the terminal; whatever it still runs is stopped."""
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        stop_group(self.process, timeout=5)
        self._reader.join(5)


class Server:
    """A `sh server` block running in the background, in a process group of its own, as in a terminal."""

    def __init__(self, command: str, env: dict[str, str]):
        self.output: list[str] = []
        self.url = ""
        self.process = subprocess.Popen(
            ["bash", "-c", "exec " + command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**env, "BANKAPP_PORT": "0"},  # a free port, unless the command names one (then it is rewritten)
            start_new_session=True,
        )
        self._pump = threading.Thread(target=self._read, name="guide-server", daemon=True)
        self._pump.start()
        deadline = time.monotonic() + SERVER_TIMEOUT
        while not self.url:
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise GuideError(f"the server did not start: {command}\n{last_lines(''.join(self.output))}")
            time.sleep(0.05)
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass  # not accepting yet
            if time.monotonic() > deadline:
                self.stop()
                raise GuideError(f"the server never answered /healthz: {command}")
            time.sleep(0.05)

    def _read(self) -> None:
        try:
            for line in self.process.stdout:
                self.output.append(line)
                if not self.url and (match := READY.search(line)):
                    self.url = match.group(1)
        finally:
            self.process.stdout.close()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def ctrl_c(self) -> str:
        """SIGINT to its process group, as Ctrl-C in its terminal; what it printed from then on."""
        start = len(self.output)
        signal_group(self.process, signal.SIGINT)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            raise GuideError(f"still running {STOP_TIMEOUT} s after Ctrl-C:\n{''.join(self.output[start:])}") from None
        self._pump.join(5)
        return "".join(self.output[start:])

    def stop(self) -> None:
        stop_group(self.process, timeout=STOP_TIMEOUT)
        self._pump.join(5)


@dataclass
class Outcome:
    section: Section
    step: Step
    actual: str
    ok: bool

    def report(self) -> str:
        expected = self.step.output.text if self.step.output else "(nothing)"
        action = self.step.action
        runs = "Ctrl-C in the terminal of the server started last" if action.kind == "ctrl-c" else action.text
        return (
            f"docs/lab-guide.md line {action.line}, section {self.section.title!r}:\n"
            f"--- the guide runs\n{runs}\n--- and quotes\n{expected}\n"
            f"--- but it printed\n{self.actual}"
        )


class Trainee:
    """Runs steps of the guide in order: commands in one terminal, servers in others."""

    def __init__(self, workdir: Path):
        # A fresh terminal: none of bankapp's or Locust's settings, and Python's usual buffering. Under
        # PYTHONUNBUFFERED a print is two writes, text then newline, so the last lines of four workers
        # stopping at once (or a worker's and gunicorn's) can run together, which a terminal never shows.
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("BANKAPP_", "LOCUST_")) and k != "PYTHONUNBUFFERED"
        }
        self.scripts = sysconfig.get_path("scripts")  # where this environment's bankapp, locust, pytest are
        self.terminal = Terminal(workdir, self.env)
        self.servers: dict[int, Server] = {}  # by the port the guide gives it
        self.started: list[int] = []
        self.databases: Databases | None = None
        self.database_url = ""

    def database(self) -> str:
        """The test's own database, made when the guide first names its `bankapp` (no PostgreSQL: skip)."""
        if not self.database_url:
            self.databases = reachable_or_skip()
            self.database_url = self.databases.create()
        return self.database_url

    def rewrite(self, text: str) -> str:
        """The guide's `.venv/bin/` is this environment's; its ports are those the servers got;
        its database is the test's."""
        if GUIDE_DATABASE.search(text):
            url = self.database()
            text = GUIDE_DATABASE.sub(lambda _: url, text)
        text = re.sub(
            r"\.venv/bin/([\w.-]+)",
            lambda found: sys.executable if found[1] == "python" else f"{self.scripts}/{found[1]}",
            text,
        )
        for guide_port, server in self.servers.items():
            text = re.sub(rf"(127\.0\.0\.1|localhost):{guide_port}\b", rf"\g<1>:{server.port}", text)
        return text

    def run(self, section: Section, step: Step) -> Outcome:
        action = step.action
        if action.kind == "install":
            return Outcome(section, step, "", True)
        if action.kind == "command":
            actual = self.terminal.run(self.rewrite(action.text))
        elif action.kind == "server":
            actual = self.start_server(action.text)
        else:  # ctrl-c
            if not self.started:
                raise GuideError(f"line {action.line}: Ctrl-C, but no server is running")
            actual = self.servers.pop(self.started.pop()).ctrl_c()
        expected = step.output.text if step.output else ""
        fixed = step.output.fixed if step.output else frozenset()
        if action.kind == "server":  # its output keeps coming while it starts: wait for the shape a little
            deadline = time.monotonic() + 5
            while not matches(expected, actual, fixed) and time.monotonic() < deadline:
                time.sleep(0.1)
                actual = "".join(self.servers[self.started[-1]].output)
        return Outcome(section, step, actual, matches(expected, actual, fixed))

    def start_server(self, command: str) -> str:
        if "\n" in command.strip():
            raise GuideError(f"a server block holds one command: {command}")
        found = re.search(r"--port[ =](\d+)", command)
        guide_port = int(found.group(1)) if found else 8000
        if guide_port in self.servers:
            raise GuideError(f"port {guide_port} is taken by a server the guide started earlier: {command}")
        command = re.sub(r"--port[ =]\d+", "--port 0", self.rewrite(command))
        server = Server(command, self.env)
        self.servers[guide_port] = server
        self.started.append(guide_port)
        return "".join(server.output)

    def close(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()
        self.terminal.close()
        if self.databases:
            self.databases.drop_all()


def run_sections(sections: list[Section], workdir: Path, show=None) -> list[Outcome]:
    """Run every step of `sections` in order; the outcomes, one per step."""
    trainee = Trainee(workdir)
    outcomes = []
    try:
        for section in sections:
            for step in section.steps:
                outcome = trainee.run(section, step)
                outcomes.append(outcome)
                if show:
                    show(outcome)
    finally:
        trainee.close()
    return outcomes
