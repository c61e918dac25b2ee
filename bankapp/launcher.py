"""`bankapp serve` runs gunicorn here: the gthread worker (hardened, see `worker`), configured from `Config`.

What a worker says as it stops: its last counters, and any guard still held.

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

from .settings import Config

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


def serve(config: Config) -> None:
    """Run gunicorn in this process until it is stopped (SIGINT/SIGTERM)."""
    from gunicorn.app.base import BaseApplication

    from .web import create_app

    class Server(BaseApplication):
        def load_config(self):
            options = {
                "bind": f"{config.host}:{config.port}",
                "workers": config.workers,
                "threads": config.threads,
                "worker_class": "bankapp.worker.HardenedWorker",  # gthread, hardened (see bankapp.worker)
                "graceful_timeout": 10,
                "timeout": 60,
                "proc_name": "bankapp",
                "control_socket_disable": True,
            }
            for key, value in options.items():
                self.cfg.set(key, value)
            self.cfg.set("when_ready", announce)
            self.cfg.set("worker_exit", worker_exit)

        def load(self):
            return create_app(config)

    def announce(server) -> None:
        for listener in server.LISTENERS:
            print(f"bankapp: ready at http://{format_address(listener.sock.getsockname())}", flush=True)

    guard_line = (
        f"deposit_guard={config.deposit_guard} checkout_guard={config.checkout_guard} "
        f"transfer_policy={config.transfer_policy} race_window_ms={config.race_window_ms:g}"
    )
    print(f"bankapp: starting on {config.host}:{config.port} ({guard_line})", flush=True)
    Server().run()


def format_address(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
