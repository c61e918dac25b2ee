"""`bankapp compare` and `bankapp demo`: the guard matrix over real HTTP.

One gunicorn server on a free loopback port; for each configuration, the
settings are switched with `PATCH /admin/config`, balances and counters are
reset with `POST /admin/reset` (so nothing leaks from one row into the
next), and Locust runs headless in a process of its own with the project's
user classes and verdict. The server's `/stats` and Locust's numbers make one
row (`rows`); the rows make a table, a sentence each, and a report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import requests

from ..server.processes import ServerProcess, last_lines
from .anomalies import group, row_examples
from .locust_runs import LocustJob, check_locust, project_locustfile, run_locust
from .matrix import BASE_SETTINGS, MatrixRow, select
from .rows import make_row, summarize
from .series import Sampler, reading


class CompareError(Exception):
    """A run that cannot go on; the message says why."""


@dataclass
class Run:
    """Options of one compare run."""

    duration: float = 10
    users: int | None = None  # Locust users per row; None: each scenario's own
    out: Path | None = None
    scenarios: set[str] | None = None
    guards: set[str] | None = None
    store: str = "memory"  # postgres: a fleet of `workers` on the database at `database_url`
    database_url: str | None = None
    workers: int = 1

    def matrix(self) -> list[MatrixRow]:
        return select(self.scenarios, self.guards, self.store)

    def server_flags(self) -> list[str]:
        if self.store != "postgres":
            return []
        return ["--store", "postgres", "--database-url", self.database_url or "", "--workers", str(self.workers)]


class Progress(Protocol):
    """What the run tells whoever watches it."""

    def begin(self, rows: int) -> None:
        """The matrix has `rows` rows; the server is about to start."""

    def update(self, done: float, label: str) -> None:
        """`done` rows finished (a fraction while one runs); `label` is running now."""


def call(server: ServerProcess, method: str, path: str, **kwargs) -> dict:
    response = requests.request(method, server.url + path, timeout=30, **kwargs)
    if response.status_code >= 400:
        raise CompareError(f"{method} {path} answered {response.status_code}: {response.text}")
    return response.json()


def measure(server: ServerProcess, matrix_row: MatrixRow, run: Run, raw: Path, progress: Progress, index: int) -> dict:
    """Row `index`: switch the settings, reset, run Locust (read once a second meanwhile), read the counters."""
    progress.update(index, matrix_row.label)
    call(server, "PATCH", "/admin/config", json={**BASE_SETTINGS, **matrix_row.settings})
    call(server, "POST", "/admin/reset")
    job = LocustJob(
        project_locustfile(),
        matrix_row.user_classes,
        server.url,
        users=run.users or matrix_row.clients,
        duration=run.duration,
        prefix=raw / matrix_row.name,
        extra=("--stop-timeout", "5", "--loglevel", "WARNING"),
    )
    with Sampler(server.url, matrix_row.scenario) as sampler:
        locust = run_locust(
            job,
            progress=lambda elapsed: progress.update(index + min(1.0, elapsed / (run.duration + 2)), matrix_row.label),
        )
    if locust.verdict is None:
        raise CompareError(
            f"Locust wrote no verdict for {matrix_row.name}; its log is {job.path('.log')}:\n"
            f"{last_lines(locust.output)}"
        )
    server_stats = call(server, "GET", "/stats")
    races = call(server, "GET", "/debug/races", params={"limit": 1}) if matrix_row.scenario == "deposit" else None
    if matrix_row.scenario == "transfer":
        server_stats["audit"] = call(server, "GET", "/audit")
    sampler.finish(reading(matrix_row.scenario, server_stats, races, server_stats.get("audit")))
    row = make_row(matrix_row, locust.verdict, summarize(locust.stats), run.duration, server_stats)
    row["series"] = sampler.series()
    row["anomaly_groups"] = group(row_examples(row, index))
    return row


def execute(run: Run, progress: Progress) -> tuple[list[dict], Path]:
    """Run the matrix; return the rows and the report folder."""
    check_locust()
    project_locustfile()
    chosen = run.matrix()
    if not chosen:
        raise CompareError("no configuration matches the chosen scenarios and guards")
    folder = run.out or Path("reports") / datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    progress.begin(len(chosen))
    rows: list[dict] = []
    with ServerProcess(*run.server_flags(), log=raw / "server.log") as server:
        for index, matrix_row in enumerate(chosen):
            rows.append(measure(server, matrix_row, run, raw, progress, index))
            progress.update(index + 1, matrix_row.label)
    return rows, folder
