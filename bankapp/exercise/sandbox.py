"""The trainee's file runs in a process of its own, under limits, and never takes the tool down with it.

`judge_file(name, path)` starts `python -m bankapp.exercise.sandbox` with
CPU time (`RLIMIT_CPU`), memory (`RLIMIT_AS`) and process-count
(`RLIMIT_NPROC`) limits, in a session of its own, and kills that session
past the wall-time limit. The child loads the file (`judge.load`), judges
it by every schedule (`judge.schedules`) and writes its answer to a file
the parent reads; the trainee's prints go nowhere. Inside the child a
watchdog says where the trainee's code was if it runs past the time: a
loop at import, a computation that never ends. A child killed by a limit
is reported as such. (Root is not held to `RLIMIT_NPROC` by Linux.)
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 60
    wall_s: float = 120.0
    memory_bytes: int = 2 * 1024**3
    extra_processes: int = 64  # beyond those the user runs already


def _user_tasks() -> int:
    """Threads and processes of this user now (RLIMIT_NPROC counts them all)."""
    uid, count = os.getuid(), 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += len(os.listdir(f"/proc/{entry}/task")) if os.stat(f"/proc/{entry}").st_uid == uid else 0
            except OSError:
                continue
    return count


def judge_file(exercise: str, path: Path, slow: bool = False, limits: Limits = Limits()) -> dict:
    """The `schedules` stage for `path`, judged in a child process: the stage's JSON, or {"unloadable": why}."""
    processes = _user_tasks() + limits.extra_processes

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s + 5))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))

    with tempfile.TemporaryDirectory(prefix="bankapp-exercise-") as folder:
        answer = Path(folder) / "answer.json"
        command = [sys.executable, "-m", "bankapp.exercise.sandbox", exercise, str(path.resolve()), str(answer)]
        command += [str(limits.wall_s), "slow" if slow else "quick"]
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=limit,
            start_new_session=True,
        )
        try:
            _, stderr = child.communicate(timeout=limits.wall_s + 5)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()  # reaped, its pipe closed
            return _limit_error(f"the check ran past the wall-time limit of {limits.wall_s:g} s and was stopped")
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
        if answer.exists() and answer.stat().st_size:
            return json.loads(answer.read_text())
        if child.returncode < 0:
            name = signal.Signals(-child.returncode).name
            why = "the CPU time limit" if name in ("SIGXCPU", "SIGKILL") else name
            return _limit_error(f"the trainee's code was stopped by {why} ({limits.cpu_s} s of CPU)")
        tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
        return _limit_error(f"the check ended without an answer (exit {child.returncode}): {' '.join(tail)}")


def _limit_error(message: str) -> dict:
    return {"stage": "schedules", "passed": False, "error": {"kind": "limit", "line": None, "message": message}}


def _child(exercise_name: str, path: str, out: str, wall_s: float, slow: bool) -> None:
    from ..explore import engine
    from .catalog import EXERCISES
    from .judge import Unloadable, load, schedules

    engine.RUN_LIMIT_S = 3.0  # a line that runs this long without a step is a hang (one line of C, say)
    loaded = threading.Event()

    def write(answer: dict) -> None:
        Path(out).write_text(json.dumps(answer))
        os._exit(0)

    def watchdog() -> None:
        line = _trainee_line(path)
        where = f" (at line {line})" if line else ""
        if not loaded.is_set():
            write({"unloadable": f"{path}: loading it did not finish within {wall_s:g} s{where}"})
        write(_limit_error(f"the trainee's code ran past the wall-time limit of {wall_s:g} s{where}") | {"line": line})

    timer = threading.Timer(max(1.0, wall_s - 3), watchdog)
    timer.daemon = True
    timer.start()
    exercise = EXERCISES[exercise_name]
    try:
        module = load(exercise, Path(path))
    except Unloadable as error:
        write({"unloadable": str(error)})
    loaded.set()
    write(schedules(exercise, module, path, slow=slow))


def _trainee_line(path: str) -> int | None:
    for frame in sys._current_frames().values():
        lines = [f.lineno for f in traceback.extract_stack(frame) if f.filename == path]
        if lines:
            return lines[-1]
    return None


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5] == "slow")
