"""What a worker says as it stops: its last counters, and any guard still held.

On SIGTERM gunicorn's gthread worker stops accepting, lets the requests in
flight finish (their clients get their answers), and exits. The memory store
dies with it, so the worker prints one last line first: what it acknowledged
and what it holds. A client (or a test) that counted its 200s can hold the
server to them after it is gone: nothing acknowledged may be missing, and no
guard may still be held by a request that never finished.
"""

from __future__ import annotations

import json
import os

FINAL_LINE_PREFIX = "bankapp: worker stopped "


def final_report(app) -> dict:
    """The worker's counters and the guards some thread still holds."""
    lab = app.extensions["bankapp"]
    held = [guard.describe() for guard in [*lab.guards.all(), *lab.locks.all()] if guard.holders()]
    return {"pid": os.getpid(), "stats": lab.stats(), "held_guards": held}


def worker_exit(server, worker) -> None:
    """gunicorn's `worker_exit` hook: print the final report in one line.

    gunicorn also calls this hook in the master for a worker that is already
    gone; that copy never loaded the app and has nothing to say.
    """
    app = getattr(worker, "wsgi", None)
    if app is None or "bankapp" not in getattr(app, "extensions", {}):
        return
    print(FINAL_LINE_PREFIX + json.dumps(final_report(app), separators=(",", ":")), flush=True)
