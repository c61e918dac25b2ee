"""The run over time: a row's figures read once a second while its Locust runs.

A table row says how a configuration ended; the series says how it got
there: whether deposits were lost from the first second or only once the
load built up, whether a semaphore held in flight at its capacity all along,
whether deadlocks came steadily or in bursts.

`Sampler` is a thread in the compare process. While a row's Locust runs it
asks the server, once a second, for `GET /stats` (every counter),
`GET /debug/races?limit=1` on deposit rows (the lost cents so far) and
`GET /audit` on transfer rows (the audited total), and keeps one `reading`
per second, `t` seconds after the row began. After Locust ends, the runner
adds the row's final figures as the last reading, so a series always ends
where the table row does.

Why these sources:

- Rates come from the server's counters (`rows.outcomes`: deposits
  acknowledged, checkouts completed, transfers committed; and those
  refused), differenced between readings: the same definition as the
  table's `completed/s` and `rejected/s`, on the same clock as every other
  quantity, with no Locust CSV to parse (Locust's own history file is
  written on its own schedule and counts audits and 409s as requests).
- Lost cents so far come from `/debug/races`, whose totals are exact at
  every moment: each erasure is counted when its write lands. `/stats`
  computes `lost_updates` from a balance snapshot taken outside the ledger's
  lock, exact at rest but a few cents off while deposits are mid-write.
  At rest the two agree (see docs/forensics.md).
- The audited total is what `/audit` read, under every account lock: a
  consistent read. It is one more audit among the AuditUsers' dozens per
  second; one that is refused (a deadlock victim under `naive`, or turned
  away by the gate) leaves `null` for that second.

The series is bounded: past `MAX_SAMPLES` readings, every other one is
dropped and the interval doubles, so a long row keeps its whole span.
"""

from __future__ import annotations

import threading
import time

import requests

from .rows import outcomes

#: Readings kept per row; a row longer than this many intervals is thinned (every other reading dropped).
MAX_SAMPLES = 600

#: The series of each scenario, besides `t`, `completed_per_s` and `rejected_per_s` (every row has those).
QUANTITIES = {
    "deposit": ("lost_cents",),
    "checkout": ("in_flight", "capacity", "oversold"),
    "transfer": ("deadlocks", "audited_total", "expected_total", "wrong_audits"),
}


def reading(scenario: str, stats: dict, races: dict | None = None, audit: dict | None = None) -> dict:
    """One second's figures, cumulative, from `/stats` (and `/debug/races`, `/audit`); no rates yet."""
    completed, rejected = outcomes(scenario, stats)
    figures: dict[str, int | None] = {"completed": completed, "rejected": rejected}
    if scenario == "deposit":
        figures["lost_cents"] = (races or {}).get("lost_updates", 0)
    elif scenario == "checkout":
        checkout = stats.get("checkout", {})
        figures["in_flight"] = checkout.get("in_flight", 0)
        # under unsafe nothing admits; the limit being overrun is the payment gateway's
        figures["capacity"] = checkout.get("capacity") or stats.get("settings", {}).get("gateway_capacity")
        figures["oversold"] = checkout.get("oversold", 0)
    else:
        transfers = stats.get("transfers", {})
        figures["deadlocks"] = transfers.get("deadlocks", 0)
        figures["audited_total"] = audit.get("total") if audit else None
        figures["expected_total"] = audit.get("expected_total") if audit else None
        figures["wrong_audits"] = transfers.get("wrong_total_reads", 0)
    return figures


def build(scenario: str, samples: list[tuple[float, dict]]) -> dict:
    """The row's `series`: `t` and one list per quantity, all as long as `t`.

    `completed_per_s` and `rejected_per_s` at a reading are over the interval
    that ends there (0 at the first); the other quantities are as read.
    """
    series: dict[str, list] = {"t": [], "completed_per_s": [], "rejected_per_s": []}
    series.update({name: [] for name in QUANTITIES[scenario]})
    previous: tuple[float, dict] | None = None
    for t, figures in samples:
        series["t"].append(round(t, 2))
        for rate, counter in (("completed_per_s", "completed"), ("rejected_per_s", "rejected")):
            if previous is None or t <= previous[0]:
                series[rate].append(0.0)
            else:
                series[rate].append(round((figures[counter] - previous[1][counter]) / (t - previous[0]), 1))
        for name in QUANTITIES[scenario]:
            series[name].append(figures[name])
        previous = (t, figures)
    return series


class Sampler:
    """Reads a row's figures from the server once a second, in a thread, while Locust runs.

    Example::

        with Sampler(server.url, "deposit") as sampler:
            run_locust(job)
        sampler.finish(reading("deposit", final_stats, races=final_races))
        row["series"] = sampler.series()
    """

    def __init__(self, url: str, scenario: str, interval: float = 1.0, max_samples: int = MAX_SAMPLES):
        self.url, self.scenario = url, scenario
        self.interval, self.max_samples = interval, max_samples
        self.samples: list[tuple[float, dict]] = []
        self.missed = 0  # readings that failed (the server too busy to answer within the timeout)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the thread keeps readings, and so does `finish`
        self._thread = threading.Thread(target=self._run, name=f"compare-sampler-{scenario}", daemon=True)
        self._began = 0.0

    def __enter__(self) -> Sampler:
        self._began = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(15)

    def _run(self) -> None:
        with requests.Session() as session:
            due = self._began
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                t = time.monotonic() - self._began
                try:
                    self._keep(t, self._read(session))
                except (requests.RequestException, ValueError):
                    self.missed += 1
                due += self.interval
                # a reading that took longer than the interval (an audit waiting on locks): skip the missed ticks
                due = max(due, time.monotonic())

    def _read(self, session: requests.Session) -> dict:
        stats = self._get(session, "/stats")
        races = self._get(session, "/debug/races", params={"limit": 1}) if self.scenario == "deposit" else None
        audit = None
        if self.scenario == "transfer":
            answer = session.get(self.url + "/audit", timeout=5)
            audit = answer.json() if answer.status_code == 200 else None  # refused: no audited total this second
        return reading(self.scenario, stats, races, audit)

    def _get(self, session: requests.Session, path: str, **kwargs) -> dict:
        answer = session.get(self.url + path, timeout=5, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def _keep(self, t: float, figures: dict) -> None:
        with self._lock:
            if len(self.samples) >= self.max_samples:
                del self.samples[1::2]  # keep the first, drop every other: the whole span, half as dense
                self.interval *= 2
            self.samples.append((t, figures))

    def finish(self, figures: dict) -> None:
        """The row's final figures (read after Locust ended) as the last reading."""
        self._keep(time.monotonic() - self._began, figures)

    def series(self) -> dict:
        with self._lock:
            return build(self.scenario, list(self.samples))
