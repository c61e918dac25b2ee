"""The `bankapp` command: its arguments, and which part of bankapp each command runs.

`bankapp serve` is gunicorn with the gthread worker (`bankapp.server.launcher`); `bankapp
demo` and `bankapp compare` run the guard matrix (`compare.console`);
`bankapp urls` prints what to open once the lab runs (`urls`); `bankapp
lesson N` puts a running server in the state a lesson of the lab guide
starts from (`lessons`); `bankapp interleave` replays one interleaving on a
running server (`POST /admin/interleave`, see `interleave`). Every
setting of `Config` is a flag of `serve` named after it (`race_window_ms` is
`--race-window-ms`) and a `BANKAPP_*` variable; a flag wins over the
environment, which wins over the default.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import requests

from .. import boot
from ..exercise import command as exercise_command
from ..explore import command as explore_command
from ..interleave import SCENARIOS, render
from ..isolation import console as isolation
from ..server import exercise, launcher
from ..settings import ENV_PREFIX, Config, SettingsError
from ..sweep import command as sweep_command
from ..web import admin_auth
from . import doctor, lessons, urls


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


def compare(args: argparse.Namespace, demo: bool) -> int:
    from ..compare.console import run_command  # rich and matplotlib: only for the commands that draw
    from ..compare.runner import Run

    run = Run(
        duration=3 if demo or args.quick else args.duration,
        users=None if demo else args.users,
        out=args.out,
        scenarios=None if demo or not args.scenarios else set(args.scenarios.split(",")),
        guards=None if demo or not args.guards else set(args.guards.split(",")),
        **({} if demo else {"store": args.store, "database_url": args.database_url, "workers": args.workers}),
    )
    if run.store == "postgres" and not run.database_url:
        print("bankapp compare: --database-url: the postgres store needs the database's URL", file=sys.stderr)
        return 2
    return run_command(run, args.command)


def make_parser() -> argparse.ArgumentParser:
    """Every command and its flags; parsing starts nothing (the compose file's commands are checked with it)."""
    parser = argparse.ArgumentParser(prog="bankapp", description="A concurrency lab served over HTTP.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve",
        help="run the service with gunicorn",
        description="Run the bank and shop with gunicorn (gthread worker). Flags win over BANKAPP_* variables.",
    )
    add_setting_flags(serve_parser)
    serve_parser.add_argument(
        "--exercise",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="plug a trainee's FILE in for exercise NAME at start-up, on loopback only; chosen by the value "
        "exercise of the setting it stands in for (--deposit-guard, --checkout-guard, --transfer-policy); "
        "repeatable, one file per part (docs/exercises-load.md)",
    )
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
    compare_parser.add_argument("--store", choices=["memory", "postgres"], default="memory", help="[memory]")
    compare_parser.add_argument("--database-url", help="libpq URL of the database, with --store postgres")
    compare_parser.add_argument("--workers", type=int, default=2, help="gunicorn workers with --store postgres [2]")
    urls_parser = commands.add_parser(
        "urls",
        help="print the URLs to open once the lab runs (docker compose up)",
        description="Print the dashboard, Locust, API docs, metrics and Prometheus URLs of the lab that "
        "docker-compose.yml publishes, and how the admin token reaches the dashboard.",
    )
    urls_parser.add_argument("--host", default="localhost", help="host name or address to print [localhost]")
    urls_parser.add_argument(
        "--port", type=int, default=urls.PROXY_PORT, help=f"the dashboard's port [{urls.PROXY_PORT}]"
    )
    urls_parser.add_argument(
        "--locust-port", type=int, default=urls.LOCUST_PORT, help=f"Locust's web UI port [{urls.LOCUST_PORT}]"
    )
    urls_parser.add_argument(
        "--prometheus-port", type=int, default=urls.PROMETHEUS_PORT, help=f"Prometheus' port [{urls.PROMETHEUS_PORT}]"
    )
    lesson_parser = commands.add_parser(
        "lesson",
        help="put a running server in the state a lesson of the lab guide starts from",
        description="Set every runtime setting to its default and lesson N's settings over them "
        "(PATCH /admin/config), reset balances and counters (POST /admin/reset), and print the "
        "lesson's settings. See docs/lab-guide.md.",
    )
    lesson_parser.add_argument(
        "number", type=int, choices=sorted(lessons.LESSONS), metavar="N", help=f"lesson, 1 to {max(lessons.LESSONS)}"
    )
    lesson_parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server [%(default)s]")
    lesson_parser.add_argument("--room", metavar="URL", help="move every team of the room at URL to lesson N")
    lesson_parser.add_argument("--token", help="the admin token (default: BANKAPP_ADMIN_TOKEN)")
    interleave_parser = commands.add_parser(
        "interleave",
        help="replay one interleaving of real threads, step by step, on a running server",
        description="Run the scenario's threads in the server, each paused at its steps (read, write, acquire, "
        "release) and released in the order of the schedule, in a scratch bank of their own under the settings "
        "in force (POST /admin/interleave). Prints each step with what it saw, and the end state; the same "
        "every run. Scenarios: " + "; ".join(f"{name}: {scenario.shows}" for name, scenario in SCENARIOS.items()),
        epilog='example: bankapp interleave deposit --guard unsafe --schedule "a.read b.read a.write b.write"',
    )
    interleave_parser.add_argument("scenario", choices=list(SCENARIOS), metavar="SCENARIO", help=", ".join(SCENARIOS))
    interleave_parser.add_argument(
        "--guard",
        help="deposit, withdraw, batch, checkout: unsafe, lock, rlock, semaphore; transfer, audit: naive, ordered, "
        "release-first, unsafe [the one in force]",
    )
    interleave_parser.add_argument(
        "--schedule",
        help='the steps as THREAD.STEP, in order, e.g. "a.read b.read a.write b.write" [the scenario\'s own]',
    )
    interleave_parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server [%(default)s]")
    interleave_parser.add_argument("--json", action="store_true", help="print the server's JSON answer instead")
    isolation.add_parser(commands)
    explore_command.add_parser(commands)
    sweep_command.add_parser(commands)
    exercise_command.add_parser(commands)
    doctor.add_parser(commands)
    return parser


#: How long `bankapp interleave` waits for the server's answer before it gives up on it.
REPLAY_CLIENT_TIMEOUT_S = 300


def interleave(args: argparse.Namespace) -> int:
    """POST the replay to the server and print it; a refused schedule is the server's message and exit 2."""
    url = args.url.rstrip("/")
    body = {"scenario": args.scenario, "guard": args.guard, "schedule": args.schedule}
    token = lessons.token_from_environment()
    try:
        response = requests.post(
            url + "/admin/interleave",
            json={name: value for name, value in body.items() if value is not None},
            headers={"Authorization": f"Bearer {token}"} if token else {},
            # the server bounds every wait of a replay; windows of up to 10 s, one thread at a time, add up
            timeout=REPLAY_CLIENT_TIMEOUT_S,
        )
    except requests.ConnectionError:
        print(f"bankapp interleave: no server answers at {url}; start one first: bankapp serve", file=sys.stderr)
        return 2
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        print(f"bankapp interleave: {detail}", file=sys.stderr)
        return 2 if response.status_code < 500 else 1
    print(json.dumps(response.json(), indent=2) if args.json else "\n".join(render(response.json())))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    if args.command == "urls":
        print(urls.render(args.host, args.port, args.locust_port, args.prometheus_port))
        return 0
    if args.command == "lesson":
        try:
            token = args.token or lessons.token_from_environment()
            if args.room:
                print("\n".join(lessons.start_room(args.number, args.room.rstrip("/"), token)))
            else:
                print("\n".join(lessons.start(args.number, args.url.rstrip("/"), token)))
        except lessons.LessonError as error:
            print(f"bankapp lesson: {error}", file=sys.stderr)
            return 2
        return 0
    if args.command == "interleave":
        return interleave(args)
    if args.command == "isolation":
        return isolation.command(args)
    if args.command == "explore":
        return explore_command.run(args)
    if args.command == "sweep":
        return sweep_command.run(args)
    if args.command == "exercise":
        return exercise_command.run(args)
    if args.command == "doctor":
        return doctor.run(args)
    if args.command in {"demo", "compare"}:
        return compare(args, demo=args.command == "demo")
    if args.command == "serve":
        try:
            config = boot.settings(exercise.chosen(args.exercise, chosen_settings(args)))
        except (SettingsError, exercise.PlugError) as error:
            print(f"bankapp serve: {error}", file=sys.stderr)
            return 2
        try:  # a trainee's code: loaded here, before anything listens (see bankapp.server.exercise)
            plugged = exercise.plug_in(config, args.exercise)
        except exercise.PlugError as error:
            print(f"bankapp serve: {error}", file=sys.stderr)
            return 2
        if plugged:
            limits = exercise.limit_resources(config)
            print(f"bankapp: trainee's code plugged in; limits {limits}", flush=True)
        config, token = admin_auth.token_for_binding(config)
        if token:
            print(
                f"bankapp: bound to {config.host} with no admin_token; admin routes need this token "
                f"(shown once):\n    Authorization: Bearer {token}",
                flush=True,
            )
        if not admin_auth.is_loopback(config.host) and config.allowed_hosts.strip() != "*":
            names = config.allowed_hosts.strip() or "none"
            print(
                f"bankapp: answers IP addresses, loopback names and these host names: {names}; a room that opens "
                "it by another name needs --allowed-hosts NAME (or BANKAPP_ALLOWED_HOSTS)",
                flush=True,
            )
        if plugged:
            launcher.serve(config, plugged)
        else:
            launcher.serve(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
