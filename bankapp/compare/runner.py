"""`bankapp compare` and `bankapp demo`: the guard matrix over real HTTP.

One gunicorn server on a free loopback port; for each configuration, the
settings are switched with `PATCH /admin/config`, balances and counters are
reset with `POST /admin/reset` (so nothing leaks from one row into the
next), and Locust runs headless in a process of its own with the project's
user classes and verdict. The server's `/stats` and Locust's numbers make one
row; the rows make a table, a sentence each, and a report with charts.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

ROW_FIELDS = [
    "scenario",
    "guard",
    "settings",
    "requests",
    "rps",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "lost_updates",
    "oversold",
    "peak_in_flight",
    "capacity",
    "rejected",
    "deadlocks",
    "ok",
    "anomalies",
    "sentence",
]


@dataclass(frozen=True)
class Config:
    """One row of the matrix: a scenario under one guard or policy."""

    scenario: str  # deposit, checkout, transfer
    guard: str  # the label in the table: guard, or policy, or semaphore(4)
    settings: dict[str, Any]
    users: list[str]
    clients: int


def deposit(guard: str, permits: int = 1) -> Config:
    label = f"semaphore({permits})" if guard == "semaphore" else guard
    return Config("deposit", label, {"deposit_guard": guard, "deposit_permits": permits}, ["DepositUser"], 16)


def checkout(guard: str) -> Config:
    return Config("checkout", guard, {"checkout_guard": guard}, ["CheckoutUser"], 24)


def transfer(policy: str) -> Config:
    return Config("transfer", policy, {"transfer_policy": policy}, ["TransferUser", "AuditUser"], 16)


#: The default matrix of the spec: deposit under every guard and a semaphore
#: of 4; checkout under unsafe, lock, semaphore; transfers under every policy.
MATRIX = [
    deposit("unsafe"),
    deposit("lock"),
    deposit("rlock"),
    deposit("semaphore", 1),
    deposit("semaphore", 4),
    checkout("unsafe"),
    checkout("lock"),
    checkout("semaphore"),
    *(transfer(policy) for policy in ("unsafe", "naive", "ordered", "release-first", "backoff")),
]

#: Settings the whole run shares; each row changes only its own.
BASE_SETTINGS = {
    "deposit_guard": "unsafe",
    "checkout_guard": "unsafe",
    "transfer_policy": "naive",
    "deposit_permits": 1,
}


class CompareError(Exception):
    """A run that cannot go on; the message says why."""


def locustfile() -> Path:
    """The project's locustfile: the `loadtests` package next to `bankapp`."""
    spec = importlib.util.find_spec("loadtests")
    if spec is None or not spec.submodule_search_locations:
        raise CompareError("the loadtests package is not installed with bankapp; reinstall with pip install -e .")
    return Path(next(iter(spec.submodule_search_locations))) / "locustfile.py"


def check_locust() -> None:
    if importlib.util.find_spec("locust") is None:
        raise CompareError("Locust is not installed: pip install -e '.[load]' (or '.[test]')")


class Server:
    """`bankapp serve` in a child process, stopped by PID."""

    READY = re.compile(r"bankapp: ready at (http://\S+)")

    def __init__(self, flags: list[str], log_path: Path, startup_timeout: float = 30):
        self.log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bankapp", "serve", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._pump: threading.Thread | None = None
        try:
            self.url = self._wait_ready(startup_timeout)
        except BaseException:  # not started, or interrupted while starting: stop it before going
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> str:
        found: list[str] = []
        ready = threading.Event()

        def pump() -> None:
            for line in self.process.stdout:
                self.log.write(line)
                self.log.flush()
                match = self.READY.search(line)
                if match and not found:
                    found.append(match.group(1))
                    ready.set()
            ready.set()

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        ready.wait(timeout)
        if not found:
            raise CompareError(f"the server did not start; its log is {self.log.name}:\n{tail(Path(self.log.name))}")
        return found[0]

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = requests.request(method, self.url + path, timeout=30, **kwargs)
        if response.status_code >= 400:
            raise CompareError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json()

    def stop(self) -> None:
        """Stop the server by PID; its log is closed once the pump has read its last line."""
        stop_process(self.process)
        if self._pump is not None:
            self._pump.join(5)
        self.log.close()


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


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Run:
    """Options of one compare run."""

    duration: float = 10
    users: int | None = None
    out: Path | None = None
    scenarios: set[str] | None = None
    guards: set[str] | None = None
    explain: bool = False
    server_flags: list[str] = field(default_factory=list)

    def matrix(self) -> list[Config]:
        """The configurations chosen: `guards` items are a guard or policy
        (`lock`, `semaphore`, `semaphore(4)`) or one row (`deposit:unsafe`)."""
        rows = [c for c in MATRIX if not self.scenarios or c.scenario in self.scenarios]
        if self.guards:
            rows = [c for c in rows if {c.guard, c.guard.split("(")[0], f"{c.scenario}:{c.guard}"} & self.guards]
        return rows


def run_locust(config: Config, url: str, run: Run, folder: Path, progress) -> dict:
    """One headless Locust run in its own process; its verdict and stats."""
    name = f"{config.scenario}-{config.guard}".replace("(", "-").replace(")", "")
    verdict_path = folder / f"{name}.verdict.json"
    clients = run.users or config.clients
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile()),
        *config.users,
        "--host",
        url,
        "--headless",
        "-u",
        str(clients),
        "-r",
        str(clients),
        "-t",
        f"{run.duration:g}s",
        "--stop-timeout",
        "5",
        "--only-summary",
        "--json-file",
        str(folder / f"{name}.stats"),
        "--verdict-json",
        str(verdict_path),
        "--loglevel",
        "WARNING",
    ]
    with (folder / f"{name}.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            began = time.monotonic()
            while process.poll() is None:
                progress(min(1.0, (time.monotonic() - began) / (run.duration + 2)))
                time.sleep(0.2)
        finally:
            stop_process(process)
    if not verdict_path.exists():
        raise CompareError(f"Locust wrote no verdict for {name}; its log is {log.name}:\n{tail(Path(log.name))}")
    stats = json.loads((folder / f"{name}.stats.json").read_text())
    return {"verdict": json.loads(verdict_path.read_text()), "stats": summarize(stats), "duration_s": run.duration}


def summarize(entries: list[dict]) -> dict:
    """Requests, rate and percentiles over every row of Locust's final JSON.

    Locust keeps a histogram of response times (rounded milliseconds ->
    count) per row; merging them gives exact percentiles of the whole run.
    The JSON is written after the last request, unlike the CSV, which can
    lag the final counts.
    """
    histogram: dict[float, int] = {}
    for entry in entries:
        for millis, count in entry["response_times"].items():
            histogram[float(millis)] = histogram.get(float(millis), 0) + count
    requests_made = sum(entry["num_requests"] for entry in entries)
    began = min((entry["start_time"] for entry in entries), default=0)
    ended = max((entry["last_request_timestamp"] or 0 for entry in entries), default=0)

    def percentile(share: float) -> float:
        wanted, seen = share * requests_made, 0
        for millis in sorted(histogram):
            seen += histogram[millis]
            if seen >= wanted:
                return millis
        return 0.0

    return {
        "requests": requests_made,
        "rps": requests_made / (ended - began) if ended > began else 0.0,
        "p50_ms": percentile(0.50),
        "p95_ms": percentile(0.95),
        "p99_ms": percentile(0.99),
    }


def make_row(config: Config, result: dict, server_stats: dict) -> dict:
    """Server truth and client view, merged into one row."""
    verdict = result["verdict"]
    deposits = server_stats.get("deposits", {})
    checkout_stats = server_stats.get("checkout", {})
    transfers = server_stats.get("transfers", {})
    row = {
        "scenario": config.scenario,
        "guard": config.guard,
        "settings": {**BASE_SETTINGS, **config.settings},
        **result["stats"],
        "lost_updates": deposits.get("lost_updates", 0) if config.scenario == "deposit" else 0,
        "acknowledged": deposits.get("acknowledged", 0) if config.scenario == "deposit" else 0,
        "oversold": checkout_stats.get("oversold", 0) if config.scenario == "checkout" else 0,
        "peak_in_flight": checkout_stats.get("peak_in_flight", 0) if config.scenario == "checkout" else 0,
        "capacity": checkout_stats.get("capacity") if config.scenario == "checkout" else None,
        "gateway_capacity": server_stats.get("settings", {}).get("gateway_capacity"),
        "rejected": checkout_stats.get("rejected", 0) if config.scenario == "checkout" else 0,
        "completed": checkout_stats.get("completed", 0) if config.scenario == "checkout" else 0,
        "duration_s": result["duration_s"],
        "deadlocks": transfers.get("deadlocks", 0) if config.scenario == "transfer" else 0,
        "retries": transfers.get("retries", 0) if config.scenario == "transfer" else 0,
        "wrong_total_reads": transfers.get("wrong_total_reads", 0) if config.scenario == "transfer" else 0,
        "total_conserved": None,
        "ok": bool(verdict.get("ok")),
        "anomalies": list(verdict.get("anomalies", [])),
    }
    if config.scenario == "transfer":
        audit = server_stats.get("audit") or {}
        row["total_conserved"] = audit.get("consistent")
        row["total_error"] = (audit.get("total") or 0) - (audit.get("expected_total") or 0)
    row["sentence"] = explain(row)
    return row


def explain(row: dict) -> str:
    """One plain sentence saying what the row shows."""
    guard, scenario = row["guard"], row["scenario"]
    if scenario == "deposit":
        acknowledged, lost = row["acknowledged"], row["lost_updates"]
        share = f" ({lost / acknowledged:.1%})" if acknowledged else ""
        if guard == "unsafe":
            return (
                f"No guard: {lost:,} of {acknowledged:,} acknowledged one-cent deposits{share} vanished, "
                "overwritten by concurrent read-modify-writes."
            )
        if lost:
            return (
                f"A semaphore of {guard[10:-1]} permits lets that many deposits interleave: {lost:,} lost{share}; "
                "a semaphore excludes only with 1 permit."
            )
        return (
            f"A per-account {guard} lets one deposit at a time between read and write: none of {acknowledged:,} lost."
        )
    if scenario == "checkout":
        if guard == "unsafe":
            return (
                f"No admission limit: {row['peak_in_flight']} checkouts in flight at once against a gateway built "
                f"for {row['gateway_capacity']}, p99 {row['p99_ms']:.0f} ms, and the flash sale oversold "
                f"{row['oversold']} units."
            )
        if guard in {"lock", "rlock"}:
            per_second = row["completed"] / row["duration_s"] if row.get("duration_s") else 0
            return (
                f"One global {guard}: at most {row['peak_in_flight']} checkout in flight; safe, but only "
                f"{per_second:.0f} checkouts/s completed, and {row['rejected']:,} turned away because only "
                "max_waiting may queue for the lock."
            )
        return (
            f"The semaphore admitted at most {row['peak_in_flight']} of capacity {row['capacity']} at once and "
            f"turned {row['rejected']:,} away with 503 and Retry-After; oversold {row['oversold']}."
        )
    conserved = row.get("total_conserved")
    if guard == "unsafe":
        error = row.get("total_error", 0)
        return f"No locks: the bank's total is off by {error:+,} cents; money was created or destroyed."
    if guard == "naive":
        return (
            f"Opposing transfers deadlocked {row['deadlocks']:,} times; each was detected and its victim rolled "
            f"back, so the total is {'conserved' if conserved else 'NOT conserved'}."
        )
    if guard == "ordered":
        return "Locks taken in account-id order: no circular wait, so no deadlock, and the total is conserved."
    if guard == "release-first":
        return (
            f"Never holding two locks means no deadlock, but {row['wrong_total_reads']:,} audits saw money in "
            "flight between the debit and the credit."
        )
    return (
        f"Giving up held locks and retrying ({row['retries']:,} retries) breaks no-preemption: "
        f"{row['deadlocks']} deadlocks."
    )


def collect_server_stats(server: Server, config: Config) -> dict:
    stats = server.call("GET", "/stats")
    if config.scenario == "transfer":
        stats["audit"] = server.call("GET", "/audit")
    return stats


def execute(run: Run, console=None) -> tuple[list[dict], Path]:
    """Run the matrix; return the rows and the report folder."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = console or Console(stderr=True)
    check_locust()
    locustfile()
    configs = run.matrix()
    if not configs:
        raise CompareError("no configuration matches the chosen scenarios and guards")
    folder = run.out or Path("reports") / datetime.now().strftime("%Y%m%d-%H%M%S")
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    flags = ["--host", "127.0.0.1", "--port", "0", *run.server_flags]
    console.print(f"starting bankapp serve on a free loopback port ({len(configs)} configurations)")
    server = Server(flags, raw / "server.log")
    rows: list[dict] = []
    try:
        columns = [TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
        with Progress(*columns, TimeElapsedColumn(), console=console, transient=False) as progress:
            task = progress.add_task("matrix", total=len(configs))
            for index, config in enumerate(configs):
                progress.update(task, description=f"{config.scenario} / {config.guard}")
                server.call("PATCH", "/admin/config", json={**BASE_SETTINGS, **config.settings})
                server.call("POST", "/admin/reset")
                result = run_locust(
                    config, server.url, run, raw, lambda share, i=index: progress.update(task, completed=i + share)
                )
                rows.append(make_row(config, result, collect_server_stats(server, config)))
                progress.update(task, completed=index + 1)
    finally:
        server.stop()
    return rows, folder
