"""The referee: resets the server, gathers every process's tally, judges the run.

Wired to Locust's events, in whichever process it runs:

- `test_start`: every process builds its plan; the master (or the single
  local process) resets the server if asked and snapshots what it holds.
- `report_to_master` / `worker_report`: each worker's counts ride along with
  Locust's own periodic stats report and merge into the master's tally.
- `test_stop`: a worker sends what it counted since its last report (its
  users are stopped, so that is everything) in a `bankapp_tally` message,
  before it tells the master it has stopped. A headless master that quits
  at `--run-time` fires its own `test_stop` before its workers stop, so it
  first asks them to (`bankapp_flush`); then it waits for every worker's
  final tally and for the server to finish what the stopped users left in
  flight, snapshots the server again, judges, prints the verdict block,
  writes `--verdict-json`, and hands the verdict to `on_verdict` (the web
  UI's tab, see `webui`).
- `quitting`: with `--fail-on-anomaly`, a failed verdict makes the exit code 1.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import gevent
from locust.runners import MasterRunner, WorkerRunner

from . import keys as k
from . import server
from .options import make_plan
from .tally import Tally, total
from .users import BankUser
from .verdict import judge, render

log = logging.getLogger("bankapp.verdict")

FINAL_TALLY = "bankapp_tally"
FLUSH = "bankapp_flush"
FINAL_WAIT_SECONDS = 15
#: How long the server may take to finish the requests of stopped users (a lock timeout and then some).
QUIET_WAIT_SECONDS = 5


class Referee:
    """One per process; only the master's (or local runner's) judges."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.before: dict = {}
        self.verdict: dict | None = None
        self.final_from: set[str] = set()
        self.workers = 0
        self.unit_amount: int | None = None
        self.running = False
        self.on_verdict = lambda verdict: None

    def attach(self, events) -> None:
        events.init.add_listener(self.on_init)
        events.test_start.add_listener(self.on_test_start)
        events.report_to_master.add_listener(self.on_report_to_master)
        events.worker_report.add_listener(self.on_worker_report)
        events.test_stop.add_listener(self.on_test_stop)
        events.quitting.add_listener(self.on_quitting)

    def on_init(self, environment, **_kwargs) -> None:
        environment.host = server.team_host(environment.host, getattr(environment.parsed_options, "team", ""))
        if isinstance(environment.runner, MasterRunner):
            environment.runner.register_message(FINAL_TALLY, self.on_final_tally)
        if isinstance(environment.runner, WorkerRunner):
            environment.runner.register_message(FLUSH, self.on_flush)

    def on_flush(self, environment, msg, **_kwargs) -> None:
        """The master wants the verdict now: stop the users; `test_stop` then sends the final tally."""
        environment.runner.stop()

    def on_test_start(self, environment, **_kwargs) -> None:
        options = environment.parsed_options
        environment.host = server.team_host(environment.host, options.team)  # a host typed in the web UI too
        host = environment.host or ""
        BankUser.tally.drain()  # nothing from an earlier run may leak into this one
        BankUser.plan = make_plan(options, server.account_ids(host) if "all" in str(options.accounts) else [])
        self.unit_amount = BankUser.plan.unit_amount
        if isinstance(environment.runner, WorkerRunner):
            return
        self.tally, self.verdict, self.final_from, self.running = Tally(), None, set(), True
        self.workers = environment.runner.worker_count if isinstance(environment.runner, MasterRunner) else 0
        try:
            if options.reset_first:
                server.reset(host, options.admin_token)
            self.before = server.snapshot(host, token=options.admin_token)
        except OSError as error:
            log.error("bankapp: could not read the server at %s before the run: %s", host, error)
            self.before = {}

    def on_report_to_master(self, client_id, data, **_kwargs) -> None:
        data["bankapp"] = BankUser.tally.drain()

    def on_worker_report(self, client_id, data, **_kwargs) -> None:
        self.tally.merge(data.get("bankapp"))

    def on_final_tally(self, environment, msg, **_kwargs) -> None:
        self.tally.merge(msg.data)
        self.final_from.add(msg.node_id)

    def on_test_stop(self, environment, **_kwargs) -> None:
        runner = environment.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message(FINAL_TALLY, BankUser.tally.drain())
            return
        if isinstance(runner, MasterRunner):
            self.wait_for_workers(runner)
        else:
            self.tally.merge(BankUser.tally.drain())
        self.verdict = self.judge(environment)
        self.running = False
        print(render(self.verdict), flush=True)
        path = environment.parsed_options.verdict_json
        if path:
            Path(path).write_text(json.dumps(self.verdict, indent=2) + "\n")
            log.info("bankapp: verdict written to %s", path)
        self.on_verdict(self.verdict)

    def wait_for_workers(self, runner) -> None:
        """Every worker's last counts, even when a headless master quits without stopping them first."""
        if len(self.final_from) < self.workers:
            runner.send_message(FLUSH)
        deadline = time.monotonic() + FINAL_WAIT_SECONDS
        while len(self.final_from) < self.workers and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if len(self.final_from) < self.workers:
            log.warning(
                "bankapp: only %d of %d workers sent their final counts; the verdict may miss some requests",
                len(self.final_from),
                self.workers,
            )

    def judge(self, environment) -> dict:
        counts = self.tally.snapshot()
        ran_transfers = total(counts, k.TRANSFER, k.SENT) or total(counts, k.AUDIT, k.READS)
        host, busy = environment.host or "", 0
        try:
            busy = server.wait_until_quiet(host, QUIET_WAIT_SECONDS)
            after = server.snapshot(host, audit=bool(ran_transfers), token=environment.parsed_options.admin_token)
        except OSError as error:
            log.error("bankapp: could not read the server after the run: %s", error)
            after = {}
        verdict = judge(counts, self.before, after, self.unit_amount)
        if busy:
            verdict["notes"].append(
                f"the server still had {busy:,} transfers or checkouts in flight {QUIET_WAIT_SECONDS} s after the "
                "users stopped (a deadlock nobody breaks?): the balances were read with them half done"
            )
        verdict["host"] = environment.host
        verdict["workers"] = self.workers
        verdict["clients"] = counts
        return verdict

    def on_quitting(self, environment, **_kwargs) -> None:
        if isinstance(environment.runner, WorkerRunner) or self.verdict is None:
            return
        if environment.parsed_options.fail_on_anomaly and not self.verdict["ok"]:
            environment.process_exit_code = 1
