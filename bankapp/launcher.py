"""`bankapp serve` runs gunicorn here: the gthread worker, configured from `Config`.

How a worker stops, and what it says as it goes (its stuck requests, its
last line), is `shutdown`'s: gunicorn calls it through the `post_worker_init`
and `worker_exit` hooks set here.
"""

from __future__ import annotations

from . import shutdown
from .settings import Config


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
                "worker_class": "gthread",
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
