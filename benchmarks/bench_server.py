"""The servers every benchmark measures, on free loopback ports.

`start_server` runs `bankapp serve` with `--port 0` and `--race-window-ms 0`
(a benchmark measures the cost of the machinery, not of the simulated work);
`start_minimal_server` runs the ten-minute Flask deposit of
`minimal_deposit.py` under gunicorn with the settings `bankapp serve` gives
gunicorn (gthread, one worker, the same threads and timeouts). The bound port
is read from each server's log, which is then drained so it never blocks.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path


def start_server(threads: int = 32) -> tuple[subprocess.Popen, str]:
    """Start `bankapp serve`; return the process (stop it by PID) and its URL."""
    command = [sys.executable, "-m", "bankapp", "serve", "--port", "0", "--race-window-ms", "0"]
    return _started([*command, "--threads", str(threads)], r"ready at (http://\S+)")


def start_minimal_server(threads: int = 32) -> tuple[subprocess.Popen, str]:
    """Start the minimal Flask deposit under plain gthread; return the process and its URL."""
    command = [
        *(sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1"),
        *("--threads", str(threads), "--graceful-timeout", "10", "--timeout", "60", "--no-control-socket"),
        *("--bind", "127.0.0.1:0", "--chdir", str(Path(__file__).parent), "minimal_deposit:app"),
    ]
    return _started(command, r"Listening at: (http://\S+)")


def _started(command: list[str], ready: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        match = re.search(ready, line)
        if match:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, match.group(1)
    raise SystemExit(f"{command[2]} did not start")
