"""The server every benchmark measures: `bankapp serve --race-window-ms 0` on a free loopback port.

No race window: a benchmark measures the cost of the machinery, not of the
simulated work. Started, read and stopped by compare's `ServerProcess`, as
the tests and `bankapp compare` do.
"""

from __future__ import annotations

from bankapp.compare.processes import ServerProcess


def bench_server(threads: int = 32) -> ServerProcess:
    """Start the server; stop it with `stop()` or a `with` block."""
    return ServerProcess("--race-window-ms", "0", "--threads", str(threads))
