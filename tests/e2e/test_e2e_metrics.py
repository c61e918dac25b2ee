"""`/metrics` from a real gunicorn: after a burst of real HTTP requests every
figure equals `/stats`; with several workers the latency histogram adds up
every worker (prometheus_client's multiprocess mode)."""

import os
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest
import requests

from bankapp.server.processes import ServerProcess

from ..live import burst, live_server
from ..scrape import pairs, samples, value

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_after_a_burst_metrics_equal_stats():
    guards = ("--deposit-guard", "unsafe", "--checkout-guard", "semaphore", "--transfer-policy", "naive")
    with live_server(*guards, "--capacity", "2", "--race-window-ms", "5", "--service-time-ms", "100") as server:
        deposits = [(f"/accounts/acc-0{i % 2}/deposit", {"amount": 3}) for i in range(8)]
        checkouts = [("/checkout", {"sku": "widget", "quantity": 1})] * 6
        transfers = [("/transfers", {"from": "acc-02", "to": "acc-03", "amount": 1})] * 2
        transfers += [("/transfers", {"from": "acc-03", "to": "acc-02", "amount": 1})] * 2
        burst(server.url, 3, deposits + checkouts + transfers)
        found = samples(server.get("/metrics").text)
        stats = server.get("/stats").json()
    for figure, (metric, stat) in pairs(found, stats).items():
        assert metric == stat, figure
    assert stats["deposits"]["lost_updates"] > 0
    assert stats["checkout"]["admitted"] > 0 and stats["checkout"]["rejected"] > 0
    assert stats["transfers"]["deadlocks"] > 0


SERVE_TWO_WORKERS = textwrap.dedent(
    """
    from bankapp.server.launcher import serve
    from bankapp.settings import Config

    # the memory store refuses workers > 1 (each would have its own bank): what is tested here is
    # only the launcher's metrics side of several workers, which the postgres store relies on
    serve(Config(port=0, race_window_ms=0).model_copy(update={"workers": 2}))
    """
)


def test_with_two_workers_a_scrape_counts_every_workers_requests():
    clean = {key: None for key in os.environ if key.startswith(("BANKAPP_", "PROMETHEUS_"))}
    with ServerProcess(command=[sys.executable, "-c", SERVE_TWO_WORKERS], env=clean) as server:
        metrics_dir = Path(re.search(r"request metrics in (\S+)", "".join(server.output)).group(1))
        assert metrics_dir.is_dir()
        pids, sent = set(), 0
        deadline = time.monotonic() + 30
        while (len(pids) < 2 or sent < 20) and time.monotonic() < deadline:
            # a new connection each time, so that either worker may accept it
            response = requests.post(server.url + "/accounts/acc-00/deposit", json={"amount": 1}, timeout=10)
            assert response.status_code == 200
            pids.add(response.headers["X-Served-By"].split("/")[0])
            sent += 1
        assert len(pids) == 2, "both workers served"
        deposit = {"guard": "unsafe", "method": "POST", "route": "/accounts/<account_id>/deposit"}
        for _ in range(4):  # whichever worker answers the scrape
            found = samples(requests.get(server.url + "/metrics", timeout=10).text)
            assert value(found, "bankapp_http_request_duration_seconds_count", **deposit) == sent
    assert not metrics_dir.exists(), "the launcher removes its directory when gunicorn exits"
