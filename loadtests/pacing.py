"""Warm-up and think time, for measurements across load (`bankapp sweep`).

- `--warmup S`: S seconds after the test starts, Locust's statistics are
  reset (`stats.reset_all()`), so the final stats (`--json-file`) cover
  only the steady part of the run: connections opened, caches warm, queues
  formed. The verdict, which counts money and stock, still sees the whole run.
- `--think-time Z`: each user waits Z seconds between an answer and its
  next request (a closed loop with think time: Little's law then reads
  N = X * (R + Z)). 0, the default, keeps each scenario's own wait.

Example::

    locust -f loadtests/locustfile.py DepositUser --headless -u 8 -t 7s --warmup 2 --json-file stats
"""

from __future__ import annotations

import gevent
from locust import constant
from locust.runners import WorkerRunner

from .users import BankUser


def add_options(parser) -> None:
    """Listener of `events.init_command_line_parser`."""
    from .options import add_option

    add_option(parser, "--warmup", 0.0, "seconds at the start left out of Locust's statistics", type=float)
    add_option(parser, "--think-time", 0.0, "seconds each user waits between requests (0: its own)", type=float)


def on_test_start(environment, **_kwargs) -> None:
    options = environment.parsed_options
    think = float(getattr(options, "think_time", 0) or 0)
    if think > 0:
        for user_class in environment.user_classes:
            if issubclass(user_class, BankUser):
                user_class.wait_time = constant(think)
    warmup = float(getattr(options, "warmup", 0) or 0)
    if warmup > 0 and not isinstance(environment.runner, WorkerRunner):
        gevent.spawn_later(warmup, environment.runner.stats.reset_all)


def attach(events) -> None:
    events.init_command_line_parser.add_listener(add_options)
    events.test_start.add_listener(on_test_start)
