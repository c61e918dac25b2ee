"""The adaptive checkout guard: its limit driven by a fake clock, then the guard with real threads and HTTP."""

import contextlib
import threading

import pytest
import requests

from bankapp.lab.admission.adaptive import AdaptiveGuard, VegasLimit
from bankapp.settings import SettingsError, load

from ..harness import make_lab, wait_until
from ..live import live_server

SERVICE_S = 0.05


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def drive(limit: VegasLimit, clock: FakeClock, gateway: int, windows: int, in_flight=None) -> list[int]:
    """Feed `windows` windows of samples as a gateway of `gateway` places would time them; the limit after each."""
    seen = []
    for _ in range(windows):
        inside = limit.limit if in_flight is None else in_flight
        rtt = SERVICE_S * max(1.0, inside / gateway)
        for _ in range(limit.parameters.window_samples):
            clock.now += limit.parameters.window_s / limit.parameters.window_samples
            limit.sample(rtt, inside)
        seen.append(limit.limit)
    return seen


def test_the_limit_falls_under_overload_and_settles_between_g_minus_1_and_2g():
    clock = FakeClock()
    limit = VegasLimit(initial=16, max_limit=46, clock=clock)
    limit.sample(SERVICE_S, 1)  # one checkout alone at the start: the time without a queue
    seen = drive(limit, clock, gateway=4, windows=60)
    assert seen[2] < 16  # it moved down at once
    assert all(3 <= value <= 8 for value in seen[-20:]), seen  # and stays within G - 1 .. 2G


def test_the_limit_rises_while_checkouts_see_no_queue_and_tracks_a_larger_gateway():
    clock = FakeClock()
    limit = VegasLimit(initial=8, max_limit=46, clock=clock)
    drive(limit, clock, gateway=8, windows=40)
    settled = limit.limit
    assert 7 <= settled <= 16
    seen = drive(limit, clock, gateway=24, windows=80)  # the gateway grew: no queue at the old limit
    assert seen[5] > settled
    assert all(23 <= value <= 46 for value in seen[-20:]), seen


def test_a_window_with_few_in_flight_changes_nothing():
    """App-limited: the load, not the limit, kept them few, so that says nothing about the limit."""
    clock = FakeClock()
    limit = VegasLimit(initial=20, max_limit=46, clock=clock)
    assert drive(limit, clock, gateway=100, windows=10, in_flight=3) == [20] * 10


def test_the_limit_stays_within_its_bounds():
    clock = FakeClock()
    limit = VegasLimit(initial=500, max_limit=10, clock=clock)
    assert limit.limit == 10
    limit.sample(SERVICE_S, 1)
    falling = drive(limit, clock, gateway=1, windows=200, in_flight=10)
    assert falling[-1] < 10 and min(falling) >= 1
    rising = drive(limit, clock, gateway=1000, windows=50)  # no queue at any limit: up to the bound, no further
    assert max(rising) == rising[-1] == 10


def test_the_guard_admits_up_to_its_limit_with_real_threads():
    guard = AdaptiveGuard("checkout", permits=3)
    inside = threading.Barrier(4)
    release = threading.Event()
    results = []

    def holder():
        results.append(guard.acquire(5))
        inside.wait(10)
        release.wait(10)
        guard.release()

    threads = [threading.Thread(target=holder) for _ in range(3)]
    for thread in threads:
        thread.start()
    inside.wait(10)  # three are in: the limit
    assert guard.acquire(0) is False
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == [True] * 3
    assert guard.acquire(0) is True
    guard.release()


def test_adaptive_is_a_checkout_guard_only():
    with pytest.raises(SettingsError, match="deposit_guard: adaptive is a checkout guard only"):
        load({"deposit_guard": "adaptive"})
    config = load({"guard": "adaptive"})  # sets the checkout guard alone
    assert (config.deposit_guard, config.checkout_guard) == ("unsafe", "adaptive")


def test_the_shop_reports_the_limit_and_a_reset_restarts_it_at_capacity():
    lab = make_lab(checkout_guard="adaptive", capacity=5, service_time_ms=0, race_window_ms=0)
    lab.shop.checkout("widget", 1)
    report = lab.shop.report()
    assert report["limit"] == 5 and report["guard"] == "adaptive" and report["completed"] == 1
    guard = lab.shop.admission_guard(lab.settings.current)
    guard.limiter.limit = 2
    assert lab.shop.report()["limit"] == 2
    lab.shop.reset()
    assert lab.shop.report()["limit"] == 5


def checkout_load(url: str, stop: threading.Event, clients: int) -> list[threading.Thread]:
    def client():
        with requests.Session() as session:
            while not stop.is_set():
                with contextlib.suppress(requests.RequestException):
                    session.post(url + "/checkout", json={"sku": "widget", "quantity": 1}, timeout=10)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.e2e
def test_over_http_the_limit_falls_under_overload_and_rises_when_the_gateway_grows():
    """Clients queue for admission (a 2 s timeout) rather than spin on fast 503s: on two shared cores a
    flood of refusals would slow every checkout too, and a limit read from latency takes that for a queue."""
    flags = ("--checkout-guard", "adaptive", "--capacity", "12", "--threads", "48", "--max-waiting", "16")
    with live_server(*flags) as server:
        server.configure(gateway_capacity=2, service_time_ms=50, admission_timeout_ms=2000)
        stop = threading.Event()
        threads = checkout_load(server.url, stop, clients=20)
        try:

            def limit():
                return server.get("/stats").json()["checkout"]["limit"]

            wait_until(lambda: limit() <= 4, timeout=60, every=0.2)  # at most 2G, from 12
            metrics = server.get("/metrics").text
            assert "bankapp_checkout_limit " in metrics
            low = limit()
            assert server.patch("/admin/config", json={"gateway_capacity": 16}).status_code == 200
            wait_until(lambda: limit() >= low + 4, timeout=60, every=0.2)  # it tracks the larger gateway
        finally:
            stop.set()
            for thread in threads:
                thread.join(15)
