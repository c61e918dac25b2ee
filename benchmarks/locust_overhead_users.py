"""Locustfile of the overhead benchmark: two users on GET /healthz, side by side.

`MinimalUser` is the least a FastHttpUser can do. `BookkeepingUser` is a
project user (a `BankUser`, with the referee attached as in
`loadtests/locustfile.py`) doing, per request, exactly the bookkeeping of
`DepositUser.deposit`: tally before and after, `catch_response`, outcome
classification, a grouped name. Both run in one Locust process against one
server, so they share the machine's weather; the ratio of their rates is the
cost of the bookkeeping.
"""

import json
import os
import resource

from locust import FastHttpUser, constant, events, task

from loadtests.options import add_options
from loadtests.referee import Referee
from loadtests.users import BankUser, definite_failure, describe

USERS_EACH = int(os.environ.get("OVERHEAD_USERS_EACH", "8"))

events.init_command_line_parser.add_listener(add_options)
Referee().attach(events)
CPU_FILE = os.environ.get("OVERHEAD_CPU_FILE")
started = {}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@events.spawning_complete.add_listener
def measure_from_here(**_kwargs) -> None:
    """Start the CPU clock once the users run: imports and start-up are not per-request costs."""
    started["cpu"] = cpu_seconds()


@events.test_stopping.add_listener
def write_cpu(**_kwargs) -> None:
    if CPU_FILE and "cpu" in started:
        with open(CPU_FILE, "w") as handle:
            json.dump({"cpu_seconds": cpu_seconds() - started["cpu"]}, handle)


class MinimalUser(FastHttpUser):
    fixed_count = USERS_EACH
    wait_time = constant(0)

    @task
    def healthz(self) -> None:
        self.client.get("/healthz", name="minimal: GET /healthz")


class BookkeepingUser(BankUser):
    fixed_count = USERS_EACH

    @task
    def healthz(self) -> None:
        account, amount = self.pick_account(), self.pick_amount()
        self.tally.add("bench", account, "sent")
        self.tally.add("bench", account, "sent_amount", amount)
        with self.client.get("/healthz", name="bookkeeping: GET /healthz", catch_response=True) as response:
            if response.status_code == 200:
                self.tally.add("bench", account, "ok")
                self.tally.add("bench", account, "ok_amount", amount)
                return
            if definite_failure(response):
                self.tally.add("bench", account, "failed")
                self.tally.add("bench", account, "failed_amount", amount)
            response.failure(describe(response))
