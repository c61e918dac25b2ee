"""The two children bankapp's tools start: `bankapp serve` and a headless Locust run.

compare, the end-to-end tests and the benchmarks all start them, and all
start them here, one way:

- `ServerProcess` runs `bankapp serve --host 127.0.0.1 --port 0 FLAGS`. Port
  0 lets the kernel pick a free port; the server names it in its ready line,
  which `READY` reads. A thread reads the server's output all along (a child
  whose pipe fills up blocks), keeps it in `output` and copies it to a log
  file if asked. The server counts as started once `/healthz` answers 200,
  and is stopped by PID: SIGTERM, which gunicorn takes as a graceful stop,
  then SIGKILL if it will not go.
- `run_locust` runs a `LocustJob` (Locust headless) bounded in time, in a
  session of its own (so its `--processes` workers share one process group
  with it) and without the caller's `LOCUST_*` variables (Locust reads its
  options from them too: a stray one would change the run). A run that
  outlasts its bound is killed by its process group; an interrupted one is
  stopped the same way.

Example::

    with ServerProcess("--guard", "lock") as server:
        job = LocustJob(project_locustfile(), ["DepositUser"], server.url, 8, duration=3, prefix=folder / "deposit")
        run = run_locust(job)
    run.verdict["ok"], run.stats  # the verdict's JSON, Locust's final stats
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

#: The line `bankapp serve` prints once it listens; the URL names the port it bound.
READY = re.compile(r"bankapp: ready at (http://\S+)")


class ProcessError(RuntimeError):
    """A child that would not start, or not finish in time; the message says why and quotes its last lines."""


def stop_process(process: subprocess.Popen, timeout: float = 15) -> int:
    """SIGTERM by PID, then SIGKILL if it will not go; its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def stop_group(process: subprocess.Popen, timeout: float = 15) -> int:
    """SIGTERM to the process group `process` leads, then SIGKILL to whatever of the group is left
    (a worker that outlived its master, a leader that would not go); the leader's exit code."""
    if process.poll() is None and timeout > 0:
        signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    signal_group(process, signal.SIGKILL)
    process.wait(5)
    return process.returncode


def signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is empty already
        os.killpg(process.pid, signum)  # started with start_new_session: its PID is its group's id


def last_lines(text: str, count: int = 15) -> str:
    return "\n".join(text.splitlines()[-count:])


class ServerProcess:
    """`bankapp serve` on a free loopback port, in a child process, stopped by PID.

    `url` is where it answers, `process` the child (gunicorn's master), and
    `output` every line it printed so far. `command` runs another server in
    its place (a plain `gunicorn ... bankapp.wsgi:app`, a script calling the
    launcher): it must bind a free port itself and print a line that `ready`
    finds its URL in. `env` adds to this process's environment; a variable
    set to None there is left out. With `new_session` it leads a
    process group of its own, master and worker, as a server started in a
    terminal does: `os.killpg(server.pid, SIGINT)` is that terminal's Ctrl-C. Use it in a `with` block, or call
    `stop()`; a start that fails or is interrupted stops the child before the
    exception leaves.
    """

    def __init__(
        self,
        *flags: str,
        log: Path | None = None,
        env: Mapping[str, str | None] | None = None,
        startup_timeout: float = 30,
        new_session: bool = False,
        command: Sequence[str] | None = None,
        ready: re.Pattern[str] = READY,
    ):
        self.url = ""
        self.output: list[str] = []
        self._log_path = log
        self._log = log.open("w") if log else None
        self._ready = threading.Event()
        self._ready_line = ready
        if command is None:
            command = [sys.executable, "-m", "bankapp", "serve", "--host", "127.0.0.1", "--port", "0", *flags]
        environment = {**os.environ, **(env or {})}
        self.process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={name: value for name, value in environment.items() if value is not None},
            start_new_session=new_session,  # a process group of its own, to send it Ctrl-C as a terminal does
        )
        self._pump = threading.Thread(target=self._read_output, name="bankapp-serve-output", daemon=True)
        try:
            self._pump.start()
            self._wait_until_ready(startup_timeout)
        except BaseException:  # not started, or interrupted while starting: stop it before going
            self.stop()
            raise

    def _read_output(self) -> None:
        try:
            for line in self.process.stdout:
                self.output.append(line)
                if self._log:
                    self._log.write(line)
                    self._log.flush()
                if not self.url and (match := self._ready_line.search(line)):
                    self.url = match.group(1)
                    self._ready.set()
        finally:  # the output ended: the server is gone
            self._ready.set()
            self.process.stdout.close()
            if self._log:
                self._log.close()

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self._ready.wait(timeout)
        if not self.url:
            raise ProcessError(self._failure(f"did not start within {timeout:g} s"))
        while True:
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass  # not accepting yet, or too busy to answer in time
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise ProcessError(self._failure(f"never answered GET /healthz within {timeout:g} s"))
            time.sleep(0.05)

    def _failure(self, what: str) -> str:
        code = self.process.poll()
        ended = "" if code is None else f" (exit code {code})"
        where = f"; its log is {self._log_path}" if self._log_path else ""
        return f"bankapp serve {what}{ended}{where}:\n{last_lines(''.join(self.output))}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> int:
        """Stop it by PID (SIGTERM, then SIGKILL); its exit code. Stopping twice is harmless."""
        code = stop_process(self.process)
        if self._pump.ident is not None:  # started
            self._pump.join(10)  # its last lines, and the log closed
        return code

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def project_locustfile() -> Path:
    """The project's locustfile: in the `loadtests` package installed beside `bankapp`."""
    spec = importlib.util.find_spec("loadtests")
    if spec is None or not spec.submodule_search_locations:
        raise ProcessError("the loadtests package is not installed with bankapp; reinstall with pip install -e .")
    return Path(next(iter(spec.submodule_search_locations))) / "locustfile.py"


def check_locust() -> None:
    if importlib.util.find_spec("locust") is None:
        raise ProcessError("Locust is not installed: pip install -e '.[load]' (or '.[test]')")


@dataclass(frozen=True)
class LocustJob:
    """One headless Locust run: `users` users of `user_classes`, started at once, for `duration` seconds.

    Locust's final stats go to `{prefix}.stats.json` (written after the last
    request, unlike the CSV, which can lag the final counts), its output to
    `{prefix}.log`, and with `verdict` the project's verdict to
    `{prefix}.verdict.json`. `extra` are more Locust flags.
    """

    locustfile: Path
    user_classes: Sequence[str]
    host: str
    users: int
    duration: float
    prefix: Path
    verdict: bool = True
    extra: Sequence[str] = ()

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(self.locustfile),
            *self.user_classes,
            "--host",
            self.host,
            "--headless",
            "-u",
            str(self.users),
            "-r",
            str(self.users),
            "-t",
            f"{self.duration:g}s",
            "--only-summary",
            "--json-file",
            f"{self.prefix}.stats",
        ]
        if self.verdict:
            command += ["--verdict-json", f"{self.prefix}.verdict.json"]
        return [*command, *self.extra]

    def path(self, ending: str) -> Path:
        return Path(f"{self.prefix}{ending}")


@dataclass(frozen=True)
class LocustRun:
    """What one headless Locust run left: its exit code, its output (also in `{prefix}.log`),
    the verdict (None if it wrote none) and Locust's final stats, one entry per request name."""

    returncode: int
    output: str
    verdict: dict | None
    stats: list[dict]

    def entry(self, name: str) -> dict:
        """Locust's stats for the requests named `name`."""
        for entry in self.stats:
            if entry["name"] == name:
                return entry
        raise KeyError(f"Locust's stats name no requests {name!r}")

    def __repr__(self) -> str:  # what a failed assertion shows: the end of the output says why
        return f"LocustRun(returncode={self.returncode}, output=...\n{self.output[-3000:]})"


def run_locust(
    job: LocustJob,
    *,
    timeout: float | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    progress: Callable[[float], None] | None = None,
) -> LocustRun:
    """Run `job` to its end; raise `ProcessError` if it takes longer than `timeout` seconds
    (`duration` + 60 unless given). `progress` is told the seconds elapsed, five times a second."""
    timeout = job.duration + 60 if timeout is None else timeout
    environment = {name: value for name, value in os.environ.items() if not name.startswith("LOCUST_")}
    log_path, verdict_path, stats_path = job.path(".log"), job.path(".verdict.json"), job.path(".stats.json")
    for stale in (verdict_path, stats_path):  # from an earlier run into the same folder: not this run's answer
        stale.unlink(missing_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            job.command(),
            cwd=cwd,
            env={**environment, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            began = time.monotonic()
            while process.poll() is None:
                elapsed = time.monotonic() - began
                if elapsed > timeout:
                    stop_group(process, timeout=0)  # SIGKILL: it had its chance to stop on its own
                    output = log_path.read_text()
                    raise ProcessError(f"locust did not finish within {timeout:g} s:\n{last_lines(output)}")
                if progress:
                    progress(elapsed)
                time.sleep(0.2)
        finally:
            stop_group(process)  # interrupted: stop it; finished: any worker it left behind
    return LocustRun(
        returncode=process.returncode,
        output=log_path.read_text(),
        verdict=json.loads(verdict_path.read_text()) if verdict_path.exists() else None,
        stats=json.loads(stats_path.read_text()) if stats_path.exists() else [],
    )
