"""`GET /metrics`: the lab in the Prometheus text format, and how long requests take.

Two kinds of figure, made two ways (both with `prometheus_client`):

- The lab's counters are not counted twice. A custom collector calls
  `lab.stats()` when Prometheus scrapes and turns that one answer into
  metric families, so every figure of a scrape comes from the same moment
  and agrees with `/stats`: there is no second set of counters to drift
  from the first. Wherever `lab.stats()` reads its counters (this process,
  or a database shared by a fleet), `/metrics` reads the same.
- Request latency is observed per request (from its arrival at the app to
  its answer, see `every_request`) into a histogram by method, route and
  guard, in seconds, with buckets from 0.5 ms to 10 s: a 1 ms deposit and a
  1 s deadlock each land in a bucket of their own size.

Resets. `POST /admin/reset` zeroes the lab's counters. A Prometheus counter
only goes up, except when it starts again from zero, as on a process
restart; `rate()` and `increase()` read any decrease as such a restart. A
lab reset is exactly that, so the totals stay counters, each with a
`_created` sample that says when it last started from zero, and
`bankapp_lab_resets_total` counts the resets, so a graph can mark them.
What is a level rather than a count (in flight, the lost-update cents, which
a write in progress can even make negative for a moment) is a gauge.

Several workers. gunicorn's workers are processes; a histogram kept in one
worker's memory would show only the requests that worker served. With
`workers` > 1 the launcher gives prometheus_client a fresh directory
(`PROMETHEUS_MULTIPROC_DIR`) where each worker writes its histogram to
memory-mapped files, and a scrape adds them all up (prometheus_client's
multiprocess mode); the lab's counters come from `lab.stats()` as always.
prometheus_client picks where it keeps values when it is first imported, so
this module imports it only when an app is built, in the worker, after the
launcher has set the directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from typing import Any

from flask import Request, Response, current_app, request
from flask_openapi3 import OpenAPI, Tag

from ..lab import LabLike
from ..lab.admission import REASONS as CHECKOUT_REJECTIONS
from ..settings import Config
from .views.dispatch import Blueprint as APIBlueprint

#: Upper bounds of the latency buckets, in seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The setting that guards each blueprint's routes: the `guard` label of their latency.
GUARD_OF_BLUEPRINT = {"accounts": "deposit_guard", "checkout": "checkout_guard", "transfers": "transfer_policy"}
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Label values come from a bounded set, whatever a client sends: a method of its own invention is "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: How far back `/stats` `served_by` looks.
SERVED_BY_WINDOW_S = 5.0

bp = APIBlueprint("metrics", __name__, abp_tags=[Tag(name="metrics", description="Prometheus metrics")])

METRICS_RESPONSE = {
    "description": "the Prometheus text format (OpenMetrics when the Accept header asks for it)",
    "content": {
        "text/plain": {"schema": {"type": "string"}},
        "application/openmetrics-text": {"schema": {"type": "string"}},
    },
}


@bp.get("/metrics", responses={200: METRICS_RESPONSE})
def metrics():
    """The lab's counters as of this moment (as `/stats` has them) and the request-latency histogram."""
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encoder(current_app.extensions["bankapp.metrics"].registry()), content_type=content_type)


def served_by() -> str:
    """`<pid>/<thread name>`: which process and thread serves this request."""
    return f"{os.getpid()}/{threading.current_thread().name}"


class RecentServers:
    """Which threads of this worker served requests lately: thread -> (last served, requests).

    With `threading.active_count()` beside them, so a page that polls `/stats`
    needs no second request to `/threads` for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}

    def record(self, name: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._seen[name] = (now, self._seen.get(name, (now, 0))[1] + 1)

    def report(self) -> dict:
        """The threads that served in the last `SERVED_BY_WINDOW_S` seconds, with their requests so far."""
        now = time.monotonic()
        with self._lock:
            recent = {name: count for name, (last, count) in self._seen.items() if now - last <= SERVED_BY_WINDOW_S}
        return {
            "window_s": SERVED_BY_WINDOW_S,
            "active_count": threading.active_count(),
            "threads": [{"by": name, "requests": count} for name, count in sorted(recent.items())],
        }


class Metrics:
    """One app's metrics: the latency histogram, recent servers, and the registry a scrape reads."""

    def __init__(self, lab: LabLike, multiprocess: bool):
        from prometheus_client import Histogram, values

        if multiprocess and (not os.environ.get(MULTIPROC_ENV) or values.ValueClass is values.MutexValue):
            raise RuntimeError(
                f"workers > 1 needs prometheus_client's multiprocess mode: set {MULTIPROC_ENV} to an empty "
                "directory before prometheus_client is imported (bankapp serve does)"
            )
        self.lab = lab
        self.multiprocess = multiprocess
        self.servers = RecentServers()
        self.latency = Histogram(
            "bankapp_http_request_duration_seconds",
            "Time from the start of a request to its answer, by route and the guard it ran under",
            ["method", "route", "guard"],
            buckets=LATENCY_BUCKETS,
            registry=None,  # each app registers its own, so every create_app() starts from zero
        )
        self._children: dict[tuple[str, str, str], Histogram] = {}  # labels -> the histogram's child
        #: id of a URL rule -> its route label and the setting naming its guard; the app's rules live as long as it
        self._rules: dict[int, tuple[str, str | None]] = {}
        self.room: Any = None  # a room (`bankapp.rooms.Room`): with teams, each lab's families with a team label

    def registry(self):
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        if self.multiprocess:
            MultiProcessCollector(registry)  # every worker's histogram files, added up
        else:
            registry.register(self.latency)
        teams = None if self.room is None or self.room.alone else self.room.teams()
        registry.register(LabCollector(self.lab) if teams is None else RoomCollector(teams))
        return registry

    def labels(self, request: Request) -> tuple[str, str | None]:
        """The route label of a routed request, and which setting names its guard (None: no guard).

        The guard label itself is read once the request has run (`guard_label`):
        the guard it ran under. Both come from the URL rule only, so they are worked out once per rule."""
        rule = request.url_rule
        found = self._rules.get(id(rule))
        if found is None:
            found = (rule.rule if rule else "unmatched", GUARD_OF_BLUEPRINT.get(request.blueprint or ""))
            self._rules[id(rule)] = found
        return found

    def observe(self, method: str, route: str, guard: str, seconds: float) -> None:
        """One request's latency; the histogram's child of each label set is looked up once and kept."""
        key = (method if method in METHODS else "other", route, guard)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.latency.labels(*key)  # the same child whoever asks first
        child.observe(seconds)


def guard_label(setting: str | None, config: Config) -> str:
    """The guard label of a request whose guard is `setting`, which ran under `config`."""
    return getattr(config, setting) if setting else "none"


class LabCollector:
    """Families made from one `lab.stats()` at scrape time (see the module docstring)."""

    def __init__(self, lab: LabLike):
        self.lab = lab

    def collect(self):
        created = self.lab.counters_since  # read before the stats: a reset between them shows as a reset
        resets = self.lab.resets
        return lab_families(self.lab.stats(), created, resets)


class RoomCollector:
    """A room's families: every team's lab, each sample labelled with its `team` (docs/rooms.md)."""

    def __init__(self, teams: list):
        self.teams = teams

    def collect(self):
        merged: dict[str, Any] = {}
        for team in self.teams:
            lab = team.lab
            created, resets = lab.counters_since, lab.resets
            for family in lab_families(lab.stats(), created, resets, team=team.name):
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        return list(merged.values())


def lab_families(stats: dict, created: float, resets: int, team: str | None = None) -> list:
    """The metric families of one `/stats` answer; counters started from zero at `created`; `team`: a room's."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

    families = []
    teamed = ["team"] if team else []
    named = [team] if team else []

    def add(kind, name: str, doc: str, value, label: str | None = None) -> None:
        """One family; `value` a number, None (no sample), or {label value: number}."""
        family = kind(f"bankapp_{name}", doc, labels=([label] if label else []) + teamed or None)
        samples = value.items() if label else [((), value)]
        for key, number in samples:
            if number is not None:
                extra = {"created": created} if kind is CounterMetricFamily else {}
                family.add_metric(([key] if label else []) + named, number, **extra)
        families.append(family)

    def counter(name, doc, value, label=None):
        add(CounterMetricFamily, name, doc, value, label)

    def gauge(name, doc, value, label=None):
        add(GaugeMetricFamily, name, doc, value, label)

    deposits, checkout, transfers, settings = (stats[k] for k in ("deposits", "checkout", "transfers", "settings"))
    counter("deposits_acknowledged", "Deposits acknowledged (200)", deposits["acknowledged"])
    counter("deposits_acknowledged_cents", "Cents of acknowledged deposits", deposits["acknowledged_amount"])
    counter("withdrawals_acknowledged", "Withdrawals acknowledged (200)", deposits["withdrawals"])
    counter("withdrawals_acknowledged_cents", "Cents of acknowledged withdrawals", deposits["withdrawn_amount"])
    refused = {"lock_timeout": deposits["lock_timeouts"], "self_deadlock": deposits["self_deadlocks"]}
    counter("deposits_refused", "Deposits and withdrawals refused, by reason", refused | deposits["rejected"], "reason")
    counter(
        "deposits_serialization_aborts",
        "Deposit and withdrawal attempts PostgreSQL aborted under serializable (40001, or a 40P01 deadlock), "
        "each retried but a refused deposit's last (absent: memory store)",
        deposits.get("serialization_retries"),
    )
    gauge(
        "lost_updates_cents",
        "Acknowledged changes minus the balance change: cents that acknowledged updates lost",
        deposits["lost_updates"],
    )
    gauge("balance_change_cents", "Balances now minus balances at the last reset", deposits["balance_change"])
    gauge(
        "accounts_with_lost_updates",
        "Accounts whose balance misses acknowledged cents",
        deposits["accounts_with_lost_updates"],
    )

    rejected = {reason: checkout["rejections"].get(reason, 0) for reason in CHECKOUT_REJECTIONS}
    counter("checkouts_admitted", "Checkouts admitted by checkout_guard", checkout["admitted"])
    counter("checkouts_rejected", "Checkouts turned away (503), by reason", rejected | checkout["rejections"], "reason")
    counter("checkouts_completed", "Checkouts paid and answered 200", checkout["completed"])
    counter("checkouts_out_of_stock", "Checkouts refused for want of stock (409)", checkout["out_of_stock"])
    counter("checkout_oversold_units", "Units sold beyond the stock there was", checkout["oversold"])
    gauge("checkout_capacity", "Checkouts admitted at once (absent: no limit)", checkout["capacity"])
    gauge("checkout_limit", "Checkouts admitted at once now (adaptive: its limit; absent: none)", checkout["limit"])
    gauge("checkout_available_permits", "The admission semaphore's value", checkout["available_permits"])
    gauge("checkout_in_flight", "Checkouts admitted and not yet finished", checkout["in_flight"])
    gauge("checkout_peak_in_flight", "Most checkouts in flight at once since the reset", checkout["peak_in_flight"])
    gauge("checkout_waiting", "Checkouts waiting for admission", checkout["waiting"])
    gauge("checkout_gateway_capacity", "Checkouts the gateway serves at full speed", checkout["gateway_capacity"])
    gauge("stock_units", "Units in stock, by SKU", checkout["stock"], "sku")

    counter("transfers_committed", "Transfers committed", transfers["committed"])
    counter("deadlocks", "Deadlocks (wait-for cycles) detected", transfers["deadlocks"])
    counter("deadlock_victims", "Requests that gave up in a deadlock and answered 409", transfers["deadlock_victims"])
    lock_timeouts = {"transfer": transfers["lock_timeouts"], "deposit": deposits["lock_timeouts"]}
    counter("lock_timeouts", "Guard acquires that ran out of lock_timeout_ms (503)", lock_timeouts, "operation")
    counter("transfer_retries", "Backoff retries of transfers", transfers["retries"])
    counter("audits", "Audits read", transfers["audits"])
    counter(
        "audit_wrong_total_reads", "Audits that saw a total other than the expected one", transfers["wrong_total_reads"]
    )
    gauge("transfers_in_flight", "Transfers under way", transfers["in_flight"])
    gauge("bank_total_cents", "Sum of all balances", transfers["total"])
    gauge("bank_expected_total_cents", "What the bank should hold", transfers["expected_total"])
    gauge("negative_balances", "Accounts with a negative balance", transfers["negative_balances"])

    info = InfoMetricFamily("bankapp_guards", "The guards in force", labels=teamed or None)
    info.add_metric(
        named, {name: str(settings[name]) for name in ("deposit_guard", "checkout_guard", "transfer_policy")}
    )
    families.append(info)
    gauge("race_window_seconds", "race_window_ms, in seconds", settings["race_window_ms"] / 1000)
    resets_family = CounterMetricFamily(
        "bankapp_lab_resets", "POST /admin/reset calls: every counter restarted from zero", labels=teamed or None
    )
    resets_family.add_metric(named, resets)
    families.append(resets_family)
    return families


def init_app(app: OpenAPI, lab: LabLike, workers: int) -> Metrics:
    """Keep the latency histogram (`every_request` times each request into it) and serve `/metrics`.

    `workers` comes from the settings the process started with, never from
    `lab.config()`: on the postgres store that reads the database, and a
    worker must boot (gunicorn respawns one at any time) while it is down.
    """
    state = Metrics(lab, multiprocess=workers > 1)
    app.extensions["bankapp.metrics"] = state
    app.register_api(bp)
    return state


# the launcher's side of multiprocess mode


def prepare_multiprocess(workers: int) -> str | None:
    """With several workers, a fresh directory for their histogram files, named in the environment
    that gunicorn's workers inherit; None with one worker."""
    if workers <= 1:
        return None
    path = tempfile.mkdtemp(prefix="bankapp-metrics-")
    os.environ[MULTIPROC_ENV] = path
    return path


def child_exit(server, worker) -> None:
    """gunicorn's `child_exit` hook: a dead worker's live gauges stop counting."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def remove_multiprocess_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
