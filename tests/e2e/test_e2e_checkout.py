"""Checkout bursts against a real gunicorn: 24 clients at once, /healthz polled throughout."""

import threading
from collections import Counter

import pytest
import requests

from ..harness import run_together
from ..live import live_server

pytestmark = pytest.mark.e2e

BURST = 24


class HealthProbe:
    """Polls /healthz from its own thread for as long as a burst lasts."""

    def __init__(self, server):
        self.url = server.url + "/healthz"
        self.statuses = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._poll)

    def _poll(self):
        with requests.Session() as session:
            while not self.stopped.is_set():
                try:
                    self.statuses.append(session.get(self.url, timeout=10).status_code)
                except requests.RequestException as error:
                    self.statuses.append(repr(error))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopped.set()
        self.thread.join(15)


def burst(server, sku="widget", quantity=1, clients=BURST):
    """`clients` threads released together, each with its own connection; what each saw."""
    responses = []
    tally = threading.Lock()

    def client():
        with requests.Session() as session:
            response = session.post(f"{server.url}/checkout", json={"sku": sku, "quantity": quantity}, timeout=30)
            with tally:
                responses.append(response)

    with HealthProbe(server) as probe:
        run_together([client] * clients, timeout=60)
    assert len(responses) == clients
    assert probe.statuses, "/healthz was never asked during the burst"
    assert set(probe.statuses) == {200}, f"/healthz failed during the burst: {Counter(probe.statuses)}"
    return responses


def statuses(responses):
    return Counter(response.status_code for response in responses)


def check_stats_agree(server, responses, capacity=None):
    """What the clients saw is what /stats counted, and everything came back."""
    seen = statuses(responses)
    assert set(seen) <= {200, 409, 503}, seen
    checkout = server.get("/stats").json()["checkout"]
    assert checkout["admitted"] == seen[200] + seen[409]
    assert checkout["completed"] == seen[200]
    assert checkout["out_of_stock"] == seen[409]
    assert checkout["rejected"] == seen[503]
    assert checkout["in_flight"] == checkout["waiting"] == 0
    if capacity is not None:
        assert checkout["available_permits"] == capacity
    return checkout


@pytest.fixture(scope="module")
def server():
    with live_server("--checkout-guard", "semaphore", "--capacity", "4", "--race-window-ms", "0") as running:
        yield running


def test_semaphore_admits_at_most_capacity_and_turns_the_rest_away_with_503(server):
    server.configure(checkout_guard="semaphore", capacity=4, max_waiting=8, admission_timeout_ms=0, service_time_ms=500)
    responses = burst(server)
    checkout = check_stats_agree(server, responses, capacity=4)
    assert 1 <= checkout["peak_in_flight"] <= 4
    assert checkout["gateway_peak_in_use"] <= 4
    rejected = [response for response in responses if response.status_code == 503]
    assert rejected, "24 checkouts of 500 ms each and 4 places: some must be turned away"
    for response in rejected:
        assert response.headers["Retry-After"] == "1"
        assert response.headers["Content-Type"] == "application/problem+json"
        body = response.json()
        assert body["type"].endswith("admission-rejected")
        assert body["capacity"] == 4 and 0 <= body["in_flight"] <= 4 and body["waiting"] == 0


def test_with_an_admission_timeout_most_of_the_burst_gets_in_over_time(server):
    server.configure(
        checkout_guard="semaphore", capacity=4, max_waiting=20, admission_timeout_ms=2000, service_time_ms=100
    )
    responses = burst(server)
    checkout = check_stats_agree(server, responses, capacity=4)
    assert statuses(responses)[200] > BURST // 2
    assert 1 <= checkout["peak_in_flight"] <= 4
    assert checkout["peak_waiting"] >= 1
    assert checkout["wait_ms"]["max"] > 0


def test_semaphore_flash_sale_never_oversells(server):
    server.configure(
        checkout_guard="semaphore",
        capacity=4,
        max_waiting=20,
        admission_timeout_ms=10_000,
        service_time_ms=20,
        race_window_ms=20,
    )
    responses = burst(server, sku="flash-sale", quantity=10)
    checkout = check_stats_agree(server, responses, capacity=4)
    assert statuses(responses) == {200: 10, 409: 14}
    assert checkout["sold"]["flash-sale"] == 100 and checkout["stock"]["flash-sale"] == 0
    assert checkout["oversold"] == 0


def test_unsafe_lets_everyone_in_slows_the_gateway_and_oversells_the_flash_sale(server):
    server.configure(checkout_guard="unsafe", service_time_ms=500, gateway_capacity=8, race_window_ms=0)
    responses = burst(server)
    checkout = check_stats_agree(server, responses)
    assert statuses(responses) == {200: BURST}
    assert checkout["peak_in_flight"] > 8
    assert max(response.json()["gateway_ms"] for response in responses) > 500

    server.configure(checkout_guard="unsafe", service_time_ms=50, race_window_ms=100)
    responses = burst(server, sku="flash-sale", quantity=10)
    checkout = check_stats_agree(server, responses)
    sold = checkout["sold"]["flash-sale"]
    assert sold == 10 * statuses(responses)[200]
    assert sold > 100 and checkout["oversold"] == sold - 100


@pytest.mark.parametrize("guard", ["lock", "rlock"])
def test_a_lock_lets_one_checkout_in_at_a_time(server, guard):
    server.configure(checkout_guard=guard, max_waiting=8, lock_timeout_ms=2000, service_time_ms=50, race_window_ms=0)
    responses = burst(server)
    checkout = check_stats_agree(server, responses)
    assert checkout["peak_in_flight"] == checkout["gateway_peak_in_use"] == 1
    assert checkout["capacity"] == 1
    assert statuses(responses)[200] >= 1
    assert checkout["peak_waiting"] <= 8


def test_the_readme_burst_example_runs_and_reports(server):
    import subprocess
    import sys
    from pathlib import Path

    server.configure(checkout_guard="semaphore", capacity=4, max_waiting=8, admission_timeout_ms=0, service_time_ms=300)
    example = Path(__file__).resolve().parents[2] / "examples" / "checkout_burst.py"
    result = subprocess.run(
        [sys.executable, str(example), "--url", server.url, "--sku", "flash-sale", "--quantity", "10"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "under checkout_guard semaphore" in result.stdout
    assert "capacity 4" in result.stdout and "available_permits 4" in result.stdout
    assert "oversold (all SKUs) 0" in result.stdout
