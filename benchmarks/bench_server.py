"""The server every benchmark measures: `bankapp serve` on a free loopback port.

Started with `--port 0` and `--race-window-ms 0` (a benchmark measures the
cost of the machinery, not of the simulated work); the bound port is read
from the server's "ready at" line. Its log is drained so it never blocks.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading


def start_server(threads: int = 32) -> tuple[subprocess.Popen, str]:
    """Start the server; return the process (stop it by PID) and its URL."""
    command = [sys.executable, "-m", "bankapp", "serve", "--port", "0", "--race-window-ms", "0"]
    process = subprocess.Popen(
        [*command, "--threads", str(threads)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in process.stdout:
        match = re.search(r"ready at (http://\S+)", line)
        if match:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, match.group(1)
    raise SystemExit("bankapp serve did not start")
