"""The servers every benchmark measures, on free loopback ports.

`bench_server` runs `bankapp serve --race-window-ms 0` (a benchmark measures
the cost of the machinery, not of the simulated work), started, read and
stopped by compare's `ServerProcess`, as the tests and `bankapp compare` do.
`start_minimal_server` runs the ten-minute Flask deposit of
`minimal_deposit.py` under plain gunicorn with the settings `bankapp serve`
gives gunicorn (gthread, one worker, the same threads and timeouts): the
baseline a deposit is compared with. Its bound port is read from gunicorn's
log, which is then drained so it never blocks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from bankapp.server.processes import ServerProcess


def bench_server(threads: int = 32) -> ServerProcess:
    """Start the server; stop it with `stop()` or a `with` block."""
    return ServerProcess("--race-window-ms", "0", "--threads", str(threads))


def start_minimal_server(threads: int = 32, database_url: str | None = None) -> tuple[subprocess.Popen, str]:
    """Start the minimal Flask deposit under plain gthread; return the process (stop it by PID) and its URL.

    With `database_url`, the minimal deposit on PostgreSQL (`minimal_postgres_deposit.py`) on that database."""
    app, env = "minimal_deposit:app", None
    if database_url is not None:
        app = "minimal_postgres_deposit:app"
        env = {**os.environ, "MINIMAL_DATABASE_URL": database_url, "MINIMAL_THREADS": str(threads)}
    command = [
        *(sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--workers", "1"),
        *("--threads", str(threads), "--graceful-timeout", "10", "--timeout", "60", "--no-control-socket"),
        *("--bind", "127.0.0.1:0", "--chdir", str(Path(__file__).parent), app),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in process.stdout:
        match = re.search(r"Listening at: (http://\S+)", line)
        if match:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, match.group(1)
    raise SystemExit(f"gunicorn {app} did not start")
