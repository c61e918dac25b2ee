"""`bankapp serve` runs gunicorn here: the gthread worker (hardened, see `worker`), configured from `Config`.

How a worker stops, and what it says as it goes (its stuck requests, its
last line), is `shutdown`'s: gunicorn calls it through the `post_worker_init`
and `worker_exit` hooks set here.
"""

from __future__ import annotations

from ..lab.plugged import Plugged
from ..settings import Config
from . import shutdown


def serve(config: Config, plugged: Plugged | None = None) -> None:
    """Run gunicorn in this process until it is stopped (SIGINT/SIGTERM).

    `plugged`: a trainee's code loaded here, in the master, before the fork (`exercise.plug_in`); each
    worker's lab is handed it.
    """
    from gunicorn.app.base import BaseApplication

    from ..web import create_app, metrics

    # several workers: their latency histograms meet in files (prometheus_client's multiprocess mode);
    # set before any worker starts, and before prometheus_client is first imported (see bankapp.web.metrics)
    metrics_dir = metrics.prepare_multiprocess(config.workers)
    if metrics_dir:
        print(f"bankapp: {config.workers} workers; request metrics in {metrics_dir} (multiprocess mode)", flush=True)

    class Server(BaseApplication):
        def load_config(self):
            options = {
                "bind": format_address((config.host, config.port)),  # an IPv6 address bracketed, as gunicorn needs
                "workers": config.workers,
                "threads": config.threads,
                "worker_class": "bankapp.server.worker.HardenedWorker",  # gthread, hardened (see `worker`)
                "graceful_timeout": 10,
                "timeout": 60,
                "proc_name": "bankapp",
                "control_socket_disable": True,
                "loglevel": config.log_level,
            }
            for key, value in options.items():
                self.cfg.set(key, value)
            self.cfg.set("when_ready", announce)
            self.cfg.set("post_worker_init", shutdown.post_worker_init)
            self.cfg.set("worker_exit", shutdown.worker_exit)
            if metrics_dir:
                self.cfg.set("child_exit", metrics.child_exit)
                self.cfg.set("on_exit", lambda server: metrics.remove_multiprocess_dir(metrics_dir))

        def load(self):
            return create_app(config, plugged)

    def announce(server) -> None:
        for listener in server.LISTENERS:
            print(f"bankapp: ready at http://{format_address(listener.sock.getsockname())}", flush=True)

    guard_line = (
        f"deposit_guard={config.deposit_guard} checkout_guard={config.checkout_guard} "
        f"transfer_policy={config.transfer_policy} race_window_ms={config.race_window_ms:g} "
        f"store={config.store} workers={config.workers}"
    )
    if plugged:
        guard_line += " exercise=" + ",".join(
            f"{part['exercise']}:{part['file']}" for part in plugged.report().values()
        )
    print(f"bankapp: starting on {format_address((config.host, config.port))} ({guard_line})", flush=True)
    Server().run()


def format_address(address: tuple) -> str:
    """`host:port`, an IPv6 address in brackets (`[::1]:8000`), as a URL and gunicorn's `bind` want it."""
    host, port = address[0].strip("[]"), address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
