"""`bankapp serve`: gunicorn with the gthread worker, configured from flags.

Every setting of `Config` is a flag named after it (`race_window_ms` is
`--race-window-ms`) and a `BANKAPP_*` variable; a flag wins over the
environment, which wins over the default.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import launcher
from .settings import ENV_PREFIX, Config, SettingsError, load
from .web import admin_auth


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, with its default and variable in the help."""
    parser.add_argument(
        "--guard",
        default=None,
        help=f"sets both --deposit-guard and --checkout-guard [default: unsafe] (env {ENV_PREFIX}GUARD)",
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


def print_table(rows: list[dict], explain: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="bankapp: guards compared over HTTP")
    for column in ("scenario", "guard", "req/s", "p50", "p95", "p99", "lost", "oversold", "peak/cap", "rejected"):
        table.add_column(column, justify="left" if column in {"scenario", "guard"} else "right")
    table.add_column("deadlocks", justify="right")
    table.add_column("verdict")
    for row in rows:
        peak = f"{row['peak_in_flight']}/{row['capacity'] or '-'}" if row["scenario"] == "checkout" else ""
        table.add_row(
            row["scenario"],
            row["guard"],
            f"{row['rps']:.0f}",
            f"{row['p50_ms']:.0f}",
            f"{row['p95_ms']:.0f}",
            f"{row['p99_ms']:.0f}",
            f"{row['lost_updates']:,}",
            f"{row['oversold']:,}",
            peak,
            f"{row['rejected']:,}",
            f"{row['deadlocks']:,}",
            "ok" if row["ok"] else "[red]anomaly[/red]",
        )
    console = Console(width=max(132, shutil.get_terminal_size().columns))
    console.print(table)
    if explain:
        for row in rows:
            console.print(f"[bold]{row['scenario']} / {row['guard']}[/bold]: {row['sentence']}")


def compare(args: argparse.Namespace, demo: bool) -> int:
    from .compare.report import write
    from .compare.runner import CompareError, Run, execute

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    run = Run(
        duration=3 if demo or args.quick else args.duration,
        users=None if demo else args.users,
        out=args.out,
        scenarios=None if demo or not args.scenarios else set(args.scenarios.split(",")),
        guards=None if demo or not args.guards else set(args.guards.split(",")),
        explain=True,
    )
    began = time.monotonic()
    try:
        rows, folder = execute(run)
    except CompareError as error:
        print(f"bankapp {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bankapp {args.command}: interrupted; the server and Locust were stopped", file=sys.stderr)
        return 130
    paths = write(rows, folder, title="bankapp demo" if demo else "bankapp compare")
    print_table(rows, explain=True)
    print(f"\nreport: {paths['report.html']} (also report.md, results.json, results.csv, report.png)")
    print(f"took {time.monotonic() - began:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bankapp", description="A concurrency lab served over HTTP.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve",
        help="run the service with gunicorn",
        description="Run the bank and shop with gunicorn (gthread worker). Flags win over BANKAPP_* variables.",
    )
    add_setting_flags(serve_parser)
    demo_parser = commands.add_parser(
        "demo",
        help="run a short compare of every guard and explain each row",
        description="Start a server on a free loopback port, run short Locust scenarios for each guard and "
        "policy, print the table with a sentence per row, write the report, stop the server.",
    )
    demo_parser.add_argument("--out", type=Path, help="report folder [reports/<time>]")
    compare_parser = commands.add_parser(
        "compare",
        help="run the full guard matrix and write a report with charts",
        description="Run each configuration of the matrix against one server (settings switched live, state "
        "reset between rows) and write results.json, results.csv, report.md and report.html.",
    )
    compare_parser.add_argument("--quick", action="store_true", help="3 s per configuration, for a demo")
    compare_parser.add_argument("--duration", type=float, default=10, help="seconds per configuration [10]")
    compare_parser.add_argument("--users", type=int, help="Locust users per configuration [scenario's own]")
    compare_parser.add_argument("--out", type=Path, help="report folder [reports/<time>]")
    compare_parser.add_argument("--scenarios", help="comma-separated: deposit,checkout,transfer [all]")
    compare_parser.add_argument(
        "--guards",
        help="comma-separated guards or policies (unsafe,lock,semaphore(4),naive) or rows (deposit:unsafe) [all]",
    )
    args = parser.parse_args(argv)
    if args.command in {"demo", "compare"}:
        return compare(args, demo=args.command == "demo")
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
        launcher.serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
