"""The other child bankapp's tools start: a headless Locust run, bounded in time.

`run_locust` runs a `LocustJob` (Locust headless) in a session of its own
(so its `--processes` workers share one process group with it) and without
the caller's `LOCUST_*` variables (Locust reads its options from them too:
a stray one would change the run). A run that outlasts its bound is killed
by its process group; an interrupted one is stopped the same way. The
server it loads is `bankapp.server.processes.ServerProcess`.

Example::

    with ServerProcess("--guard", "lock") as server:
        job = LocustJob(project_locustfile(), ["DepositUser"], server.url, 8, duration=3, prefix=folder / "deposit")
        run = run_locust(job)
    run.verdict["ok"], run.stats  # the verdict's JSON, Locust's final stats
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..server.processes import ProcessError, last_lines, stop_group


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
