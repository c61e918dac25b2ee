"""Ctrl-C stops compare even when its parent ignored SIGINT (issue 19, item 9).

Two compare tests failed in full runs of the suite (exit 0, every row run to
the end: the SIGINT had no effect) and passed when their file ran alone.
The cause was the suite's parent, not the suite: a shell without job control
starts a background command (`.venv/bin/pytest &`, `nohup`, a CI step run in
the background) with SIGINT ignored, an ignored signal stays ignored across
`exec`, and Python installs its KeyboardInterrupt handler only when SIGINT
is at its default. So pytest, and every compare it started, ignored SIGINT.
Run in the foreground, the same tests passed.

compare now installs its own SIGINT handler, as it does for SIGTERM: an
interrupt always stops it, whatever it inherited. This test starts it under
a shell that ignores SIGINT (`trap '' INT`), as that background run did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from .test_e2e_compare import ROWS, wait_until_gone

pytestmark = pytest.mark.e2e


def test_compare_stops_on_sigint_even_when_its_parent_ignored_it(tmp_path):
    out = tmp_path / "report"
    command = [sys.executable, "-m", "bankapp", "compare", "--quick", "--duration", "3", "--guards", ROWS]
    # the shell ignores SIGINT and execs compare, which inherits the ignored disposition
    shell = "trap '' INT; exec \"$@\""
    process = subprocess.Popen(
        ["sh", "-c", shell, "sh", *command, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (out / "raw" / "server.log").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    assert wait_until_gone(process.pid, out) == []
