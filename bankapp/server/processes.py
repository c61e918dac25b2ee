"""The server as a child process: how compare, the end-to-end tests, the benchmarks and the examples start it.

All of them start it here, one way (a headless Locust run, the other
child compare starts, is `bankapp.compare.locust_runs`'s):

- `ServerProcess` runs `bankapp serve --host 127.0.0.1 --port 0 FLAGS`. Port
  0 lets the kernel pick a free port; the server names it in its ready line,
  which `READY` reads. A thread reads the server's output all along (a child
  whose pipe fills up blocks), keeps it in `output` and copies it to a log
  file if asked. The server counts as started once `/healthz` answers 200,
  and is stopped by PID: SIGTERM, which gunicorn takes as a graceful stop,
  then SIGKILL if it will not go.
- `stop_process` and `stop_group` stop a child, or the process group it
  leads, by PID: SIGTERM, then SIGKILL.

Example::

    with ServerProcess("--guard", "lock") as server:
        requests.post(server.url + "/accounts/acc-00/deposit", json={"amount": 5})
    server.output  # every line it printed, its last line too
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
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
        stdout = self.process.stdout
        assert stdout is not None, "started with stdout=PIPE"
        try:
            for line in stdout:
                self.output.append(line)
                if self._log:
                    self._log.write(line)
                    self._log.flush()
                if not self.url and (match := self._ready_line.search(line)):
                    self.url = match.group(1)
                    self._ready.set()
        finally:  # the output ended: the server is gone
            self._ready.set()
            stdout.close()
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
