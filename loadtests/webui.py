"""The verdict in Locust's web UI: a tab, a page of JSON, and anomalies counted as failures.

Locust's documented way to extend its web UI (its `extend_web_ui.py`
example) is a tab fed by the stats the UI already polls: `extended_tabs`
and `extended_tables` in the page's template arguments name the tab and its
columns, and `/stats/requests` carries the rows under `extended_stats`. Here
the rows are the lines of the verdict block, the same block the terminal
shows, and they change when a run stops.

- the tab "bankapp verdict", next to Statistics and Failures;
- `GET /bankapp/verdict`: `{"running", "verdict", "text"}`, the last
  verdict as its JSON and as the block;
- every anomaly also becomes failures (request type `VERDICT`, named
  `verdict: <scenario>`) in Statistics and Failures, as many as the
  operations it concerns (lost deposits, oversold units, wrong audit
  reads; see `Verdict`), so the UI's failure ratio does not say 0 % when
  the verdict fails. Only with the web UI: a headless run's exit code and
  stats files stay the load's own (`--fail-on-anomaly` sets the exit code
  from the verdict).

Example::

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000   # then open the "bankapp verdict" tab
"""

from __future__ import annotations

import json

from flask import jsonify, request

from .verdict import render

TAB = "bankapp-verdict"
WAITING = "no verdict yet: it appears here when a run stops"
RUNNING = "a run is going on: its verdict appears here when it stops"
#: Enough to tell the failure ratio, few enough to file at once.
MAX_FAILURES_EACH = 100_000


class Anomaly(Exception):
    """One failed check of the verdict, filed as a failure in Locust's stats."""


class VerdictTab:
    """Shows the referee's last verdict in the web UI of the master (or the single local process)."""

    def __init__(self, referee) -> None:
        self.referee = referee

    def attach(self, events) -> None:
        events.init.add_listener(self.on_init)

    def on_init(self, environment, **_kwargs) -> None:
        web_ui = environment.web_ui
        if web_ui is None:
            return
        self.referee.on_verdict = lambda verdict: self.count_anomalies(environment, verdict)
        web_ui.template_args["extended_tabs"] = [{"title": "bankapp verdict", "key": TAB}]
        web_ui.template_args["extended_tables"] = [
            {"key": TAB, "structure": [{"key": "part", "title": ""}, {"key": "says", "title": "bankapp verdict"}]}
        ]
        web_ui.app.add_url_rule(
            "/bankapp/verdict", "bankapp_verdict", web_ui.auth_required_if_enabled(self.verdict_page)
        )
        web_ui.app.after_request(self.add_rows)

    def verdict_page(self):
        verdict = self.referee.verdict
        return jsonify(
            {
                "running": self.referee.running,
                "verdict": verdict,
                "text": render(verdict) if verdict else None,
            }
        )

    def add_rows(self, response):
        """Rows of the tab, on the stats the UI polls every few seconds."""
        if request.path != "/stats/requests" or not response.is_json:
            return response
        stats = {**response.get_json(), "extended_stats": [{"key": TAB, "data": self.rows()}]}
        response.set_data(json.dumps(stats))
        return response

    def rows(self) -> list[dict[str, str]]:
        if self.referee.running:
            return [{"part": "", "says": RUNNING}]
        if self.referee.verdict is None:
            return [{"part": "", "says": WAITING}]
        lines = [line for line in render(self.referee.verdict).splitlines() if line and not line.startswith("=")]
        return [{"part": line[:11].strip(), "says": line[11:]} for line in lines]

    @staticmethod
    def count_anomalies(environment, verdict: dict) -> None:
        for sentence, operations in zip(verdict["anomalies"], verdict["anomaly_counts"], strict=True):
            scenario = sentence.split(":", 1)[0]
            for _ in range(min(operations, MAX_FAILURES_EACH)):
                environment.events.request.fire(
                    request_type="VERDICT",
                    name=f"verdict: {scenario}",
                    response_time=0,
                    response_length=0,
                    exception=Anomaly(sentence),
                    context={},
                )
