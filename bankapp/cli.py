"""`bankapp serve`: gunicorn with the gthread worker, configured from flags.

Every setting of `Config` is a flag named after it (`race_window_ms` is
`--race-window-ms`) and a `BANKAPP_*` variable; a flag wins over the
environment, which wins over the default.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from . import admin_auth, lifecycle
from .settings import ENV_PREFIX, Config, SettingsError, load


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, with its default and variable in the help."""
    parser.add_argument(
        "--guard",
        default=None,
        help=f"sets both --deposit-guard and --checkout-guard (env {ENV_PREFIX}GUARD)",
    )
    for name, field in Config.model_fields.items():
        default = "none" if name == "lock_timeout_ms" and field.default is None else field.default
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            metavar=name.split("_")[-1].upper(),
            help=f"{field.description} [default: {default}] (env {ENV_PREFIX}{name.upper()})",
        )


def chosen_settings(args: argparse.Namespace) -> dict[str, Any]:
    names = set(Config.model_fields) | {"guard"}
    return {name: value for name, value in vars(args).items() if name in names and value is not None}


def serve(config: Config) -> None:
    """Run gunicorn in this process until it is stopped (SIGINT/SIGTERM)."""
    from gunicorn.app.base import BaseApplication

    from .app import create_app

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
            }
            for key, value in options.items():
                self.cfg.set(key, value)
            self.cfg.set("when_ready", announce)
            self.cfg.set("worker_exit", lifecycle.worker_exit)

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bankapp", description="A concurrency lab served over HTTP.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve",
        help="run the service with gunicorn",
        description="Run the bank and shop with gunicorn (gthread worker). Flags win over BANKAPP_* variables.",
    )
    add_setting_flags(serve_parser)
    args = parser.parse_args(argv)
    if args.command == "serve":
        try:
            config = load(chosen_settings(args))
        except SettingsError as error:
            print(f"bankapp serve: {error}", file=sys.stderr)
            return 2
        config, token = admin_auth.token_for_binding(config)
        if token:
            print(
                f"bankapp: bound to {config.host} with no admin_token; admin routes need this token "
                f"(shown once):\n    Authorization: Bearer {token}",
                flush=True,
            )
        serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
