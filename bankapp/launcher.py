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

from .lab.store import StoreUnavailable
from .settings import Config

FINAL_LINE_PREFIX = "bankapp: worker stopped "


def final_report(app) -> dict:
    """The worker's counters and the guards some thread still holds."""
    lab = app.extensions["bankapp"]
    held = [guard.describe() for guard in [*lab.guards.all(), *lab.locks.all()] if guard.holders()]
    try:
        stats = lab.stats()
    except StoreUnavailable as error:  # the database is away: say so, and still say what is held
        stats = {"store_unavailable": str(error)}
    return {"pid": os.getpid(), "stats": stats, "held_guards": held}


def post_worker_init(worker) -> None:
    """gunicorn's `post_worker_init` hook, in each worker after the fork: the lab opens what is its own
    (the postgres store's connection pool; nothing for the memory store)."""
    worker.wsgi.extensions["bankapp"].start()


def worker_exit(server, worker) -> None:
    """gunicorn's `worker_exit` hook: print the final report in one line.

    gunicorn also calls this hook in the master for a worker that is already
    gone; that copy never loaded the app and has nothing to say.
    """
    app = getattr(worker, "wsgi", None)
    if app is None or "bankapp" not in getattr(app, "extensions", {}):
        return
    print(FINAL_LINE_PREFIX + json.dumps(final_report(app), separators=(",", ":"), default=str), flush=True)
    app.extensions["bankapp"].close()


def serve(config: Config) -> None:
    """Run gunicorn in this process until it is stopped (SIGINT/SIGTERM)."""
    from gunicorn.app.base import BaseApplication

    from .web import create_app, metrics

    # several workers: their latency histograms meet in files (prometheus_client's multiprocess mode);
    # set before any worker starts, and before prometheus_client is first imported (see bankapp.web.metrics)
    metrics_dir = metrics.prepare_multiprocess(config.workers)
    if metrics_dir:
        print(f"bankapp: {config.workers} workers; request metrics in {metrics_dir} (multiprocess mode)", flush=True)

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
            self.cfg.set("post_worker_init", post_worker_init)
            self.cfg.set("worker_exit", worker_exit)
            if metrics_dir:
                self.cfg.set("child_exit", metrics.child_exit)
                self.cfg.set("on_exit", lambda server: metrics.remove_multiprocess_dir(metrics_dir))

        def load(self):
            return create_app(config)

    def announce(server) -> None:
        for listener in server.LISTENERS:
            print(f"bankapp: ready at http://{format_address(listener.sock.getsockname())}", flush=True)

    guard_line = (
        f"deposit_guard={config.deposit_guard} checkout_guard={config.checkout_guard} "
        f"transfer_policy={config.transfer_policy} race_window_ms={config.race_window_ms:g} "
        f"store={config.store} workers={config.workers}"
    )
    print(f"bankapp: starting on {config.host}:{config.port} ({guard_line})", flush=True)
    Server().run()


def format_address(address: tuple) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
