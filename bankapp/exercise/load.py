"""An exercise judged under real HTTP load: the server runs the trainee's file, Locust drives it, the verdict judges.

`judge_under_load(exercise, file, model=...)` is the second stage of
`bankapp exercise check` (the first explores every schedule). For the
trainee's file, then for the lab's model solution in the same run:

1. `bankapp serve --exercise NAME=FILE` on a free loopback port
   (`ServerProcess`, stopped by PID), the exercise's settings as flags, so
   the part it stands in for runs the file (`bankapp.lab.plugged`); the
   server's processes get a CPU budget (`RLIMIT_CPU`), beside the memory
   and process limits `serve --exercise` sets itself;
2. a headless Locust run of the exercise's scenario (`LOADS`), bounded in
   time, as `bankapp compare` runs its rows: the project's user classes and
   its verdict (lost updates, money created or destroyed, over capacity,
   oversold, deadlock victims, self-deadlocks);
3. for a checkout, `capacity` checkouts sent at once with the load over,
   which must all be admitted (a permit lost under load is not); then
   the server's `/stats`: operations completed per second (the speed), and
   what the plugged code did (`exercise`: calls that raised or never
   returned; for `admission`, rejections later than their timeout plus
   `PROMPT_MS`; for `fair-lock`, grants that overtook an earlier waiter), then `/healthz`:
   a server that stopped answering fails the run.

Correct means no anomaly: not in the verdict, not in the trainee's code.
The speed ratio is the trainee's throughput over the model's, measured
under the same load on the same machine moments apart.

Example::

    result = judge_under_load("deposit-guard", Path("guard.py"), model=MODELS / "deposit_guard.py", seconds=5)
    result["passed"], result["anomalies"], result["speed_ratio"]
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ..compare.locust_runs import LocustJob, check_locust, project_locustfile, run_locust
from ..compare.rows import outcomes, summarize
from ..lab.plugged import EXERCISES, PROMPT_MS, PlugError
from ..server.processes import ProcessError, ServerProcess, last_lines

#: The exercises whose rejections must be prompt (within their timeout plus `PROMPT_MS`), and the share of late
#: ones tolerated: a busy machine wakes a correct waiter late now and then; a wrong one is late every time.
PROMPT_EXERCISES, LATE_SHARE = {"admission"}, 0.05
#: The exercises whose grants must follow arrival order, and the share of overtaking grants tolerated (a thread
#: counted as arrived may not have reached the trainee's queue yet); a barging lock overtakes a third or more.
FAIR_EXERCISES, OVERTAKE_SHARE = {"fair-lock"}, 0.05
#: CPU seconds the server's processes may use: start-up, and a generous share of every second of load.
CPU_BASE_S, CPU_PER_LOAD_S = 30, 4


@dataclass(frozen=True)
class Load:
    """How one exercise is driven: the server's flags, Locust's users and options, the scenario it counts."""

    scenario: str  # deposit, checkout, transfer: whose counters say what completed
    flags: tuple[str, ...]
    user_classes: tuple[str, ...]
    users: int
    locust: tuple[str, ...] = field(default=())
    capacity: int | None = None  # a checkout's: after the load, that many at once must still be admitted


DEPOSITS = Load("deposit", ("--race-window-ms", "1"), ("DepositUser",), 16, ("--accounts", "acc-00,acc-01"))
CHECKOUTS = Load(
    "checkout",
    ("--capacity", "4", "--max-waiting", "8", "--admission-timeout-ms", "100", "--service-time-ms", "20"),
    ("CheckoutUser",),
    24,
    capacity=4,
)

#: Each exercise's load (SPEC.md, Exercises): deposits on two hot accounts for the guards, batches beside them
#: for the re-entrant one, checkouts over a capacity of 4 for the semaphore and the admission, opposite
#: transfers with audits for the lock order.
LOADS = {
    "deposit-guard": DEPOSITS,
    "fair-lock": DEPOSITS,
    "reentrant-guard": Load(
        "deposit",
        ("--race-window-ms", "1", "--lock-timeout-ms", "500"),
        ("DepositUser", "BatchDepositUser"),
        16,
        ("--accounts", "acc-00,acc-01"),
    ),
    "counting-semaphore": CHECKOUTS,
    "admission": CHECKOUTS,
    "transfer-order": Load(
        "transfer",
        ("--race-window-ms", "1", "--deadlock-check-ms", "50"),
        ("TransferUser", "AuditUser"),
        16,
        ("--accounts", "acc-00,acc-01,acc-02"),
    ),
}


def model_for(exercise: str) -> Path | None:
    """The lab's model solution of `exercise`, `models/<name_with_underscores>.py` beside this module, if shipped."""
    path = Path(__file__).parent / "models" / f"{exercise.replace('-', '_')}.py"
    return path if path.is_file() else None


def say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def judge_under_load(
    exercise: str,
    file: Path,
    *,
    model: Path | None = None,
    seconds: float = 5.0,
    users: int | None = None,
    out: Path | None = None,
    progress: Callable[[str], None] | None = say_on_stderr,
) -> dict[str, Any]:
    """The trainee's `file` judged under `seconds` of load by `users` Locust users (the exercise's own by default).

    With `model`, the model solution runs under the same load right after,
    and `speed_ratio` is the trainee's throughput over the model's. Returns
    `{passed, verdict, throughput, model_throughput, speed_ratio,
    anomalies, ...}` (JSON-ready); raises `PlugError` for an exercise the
    server cannot plug in or a file it cannot load (exit 2), `ProcessError`
    when the server or Locust cannot run at all. `out` keeps the server's
    and Locust's logs (a temporary folder otherwise); `progress` is told
    what runs, a line a second (None: silent).
    """
    if exercise not in LOADS or exercise not in EXERCISES:
        raise PlugError(f"no exercise {exercise!r} to judge under load; known: {', '.join(LOADS)}")
    check_locust()
    tell = progress or (lambda line: None)
    with contextlib.ExitStack() as stack:
        folder = out or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bankapp-exercise-load-")))
        folder.mkdir(parents=True, exist_ok=True)
        mine = run_one(exercise, Path(file), "trainee", seconds, users, folder, tell)
        theirs = run_one(exercise, Path(model), "model", seconds, users, folder, tell) if model else None
    ratio = None
    if theirs is not None and theirs["throughput"] > 0:
        ratio = round(mine["throughput"] / theirs["throughput"], 3)
    result = {
        "exercise": exercise,
        "file": str(file),
        "passed": not mine["anomalies"],
        "verdict": mine["verdict"],
        "throughput": mine["throughput"],
        "model_throughput": None if theirs is None else theirs["throughput"],
        "speed_ratio": ratio,
        "anomalies": mine["anomalies"],
        "completed": mine["completed"],
        "trainee_code": mine["trainee_code"],
        "model_passed": None if theirs is None else not theirs["anomalies"],
        "model_anomalies": None if theirs is None else theirs["anomalies"],
        "seconds": seconds,
        "users": users or LOADS[exercise].users,
    }
    tell(summary_line(result))
    return result


def run_one(
    exercise: str, file: Path, who: str, seconds: float, users: int | None, folder: Path, tell: Callable[[str], None]
) -> dict[str, Any]:
    """One file under load in a server of its own: the verdict, the speed, and the anomalies."""
    load = LOADS[exercise]
    users = users or load.users
    tell(f"exercise {exercise}: starting a server with the {who}'s {file.name} plugged in")
    flags = ("--exercise", f"{exercise}={file}", *load.flags)
    try:
        server = ServerProcess(*flags, log=folder / f"{who}-server.log", startup_timeout=60)
    except ProcessError as error:
        refusal = plain_refusal(str(error))
        if refusal:
            raise PlugError(refusal) from None
        raise
    with server:
        limit_cpu(server.pid, CPU_BASE_S + CPU_PER_LOAD_S * seconds)
        job = LocustJob(
            project_locustfile(),
            load.user_classes,
            server.url,
            users=users,
            duration=seconds,
            prefix=folder / who,
            extra=("--stop-timeout", "5", "--loglevel", "WARNING", *load.locust),
        )
        shown = [-1]

        def show(elapsed: float) -> None:
            if int(elapsed) > shown[0]:
                shown[0] = int(elapsed)
                tell(
                    f"exercise {exercise}: {who} under load, {min(elapsed, seconds):.0f}/{seconds:g} s ({users} users)"
                )

        run = run_locust(job, progress=show)
        if run.verdict is None:
            raise ProcessError(f"Locust wrote no verdict; its log is {job.path('.log')}:\n{last_lines(run.output)}")
        admitted = probe_permits(server, load.capacity) if load.capacity and alive_now(server) else None
        stats, alive = read_server(server)
    completed, _refused = outcomes(load.scenario, stats)
    elapsed = summarize(run.stats).get("elapsed_s") or seconds
    plugged = next(iter((stats.get("exercise") or {}).values()), None)
    anomalies = list(run.verdict.get("anomalies", []))
    anomalies += code_anomalies(exercise, plugged)
    if not alive:
        anomalies.append("the server stopped answering /healthz under the trainee's code")
    if admitted is not None and load.capacity is not None and admitted < load.capacity:
        anomalies.append(
            f"after the load, only {admitted} of {load.capacity} checkouts sent at once were admitted, with none "
            "in flight: permits were lost"
        )
    if completed == 0:
        anomalies.append(f"no {load.scenario} completed in {seconds:g} s of load")
    throughput = round(completed / elapsed, 1) if elapsed else 0.0
    tell(f"exercise {exercise}: {who}: {throughput:g} {load.scenario}s/s, {len(anomalies)} anomalies")
    return {
        "verdict": run.verdict,
        "throughput": throughput,
        "completed": completed,
        "anomalies": anomalies,
        "trainee_code": plugged,
    }


def code_anomalies(exercise: str, plugged: dict[str, Any] | None) -> list[str]:
    """What the plugged code did wrong beside the verdict: it raised, or came back late from an acquire."""
    if plugged is None:
        return [f"the server's /stats shows no plugged code for {exercise}: it did not run the file"]
    found = []
    if plugged["inside"]:
        found.append(
            f"{plugged['inside']:,} calls into the trainee's code had not returned when the load was over: a hang "
            "(does acquire honour its timeout?)"
        )
    if plugged["failures"]:
        found.append(f"the trainee's code failed {plugged['failures']:,} times; the last: {plugged['last_failure']}")
    overtakes, grants = plugged["overtakes"], plugged["grants"]
    if exercise in FAIR_EXERCISES and overtakes > OVERTAKE_SHARE * grants:
        found.append(
            f"{overtakes:,} of {grants:,} grants went to a thread while one that came earlier still waited: "
            "not in arrival order"
        )
    late, rejections = plugged["late_rejections"], plugged["rejections"]
    if exercise in PROMPT_EXERCISES and late > LATE_SHARE * rejections:
        found.append(
            f"{late:,} of {rejections:,} rejections came back more than {PROMPT_MS} ms after their timeout "
            f"(the worst {plugged['worst_overrun_ms']:g} ms late): rejections must be prompt"
        )
    return found


def probe_permits(server: ServerProcess, capacity: int) -> int:
    """Once the load is over, `capacity` checkouts at once: how many were admitted (all, unless permits leaked)."""

    def checkout(_: int) -> bool:
        try:
            answer = requests.post(server.url + "/checkout", json={"sku": "widget", "quantity": 1}, timeout=30)
        except requests.RequestException:
            return False
        return answer.status_code == 200

    with ThreadPoolExecutor(capacity) as pool:
        return sum(pool.map(checkout, range(capacity)))


def alive_now(server: ServerProcess) -> bool:
    try:
        return requests.get(server.url + "/healthz", timeout=10).status_code == 200
    except requests.RequestException:
        return False


def read_server(server: ServerProcess) -> tuple[dict[str, Any], bool]:
    """The server's `/stats` after the run, and whether `/healthz` still answers."""
    try:
        stats = requests.get(server.url + "/stats", timeout=30).json()
        alive = requests.get(server.url + "/healthz", timeout=10).status_code == 200
    except (requests.RequestException, json.JSONDecodeError):
        return {}, False
    return stats, alive


def limit_cpu(pid: int, seconds: float) -> None:
    """`RLIMIT_CPU` for the server's master and its workers (they forked before it could be inherited)."""
    for each in [pid, *children(pid)]:
        with contextlib.suppress(OSError):  # gone meanwhile
            soft = int(seconds)
            resource.prlimit(each, resource.RLIMIT_CPU, (soft, soft + 5))


def children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def plain_refusal(failure: str) -> str | None:
    """`bankapp serve`'s own refusal of the file (its exit 2 line), out of a start that failed."""
    for line in failure.splitlines():
        if line.startswith("bankapp serve: "):
            return line.removeprefix("bankapp serve: ")
    return None


def summary_line(result: dict[str, Any]) -> str:
    verdict = "passed" if result["passed"] else f"failed ({len(result['anomalies'])} anomalies)"
    speed = "" if result["speed_ratio"] is None else f", {result['speed_ratio']:g} x the model's speed"
    return f"exercise {result['exercise']}: under load {verdict}: {result['throughput']:g}/s{speed}"
