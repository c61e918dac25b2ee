"""A row over time: readings turned into series, and the sampler against a real server."""

import threading
import time

import pytest
import requests

from bankapp.compare.series import Sampler, build, reading
from bankapp.server.processes import ServerProcess


def stats(acknowledged=0, refused=0, in_flight=0, deadlocks=0, wrong=0, capacity=None):
    return {
        "deposits": {"acknowledged": acknowledged, "rejected": {"lock_timeout": refused}},
        "checkout": {"in_flight": in_flight, "capacity": capacity, "oversold": 0, "completed": acknowledged},
        "transfers": {"committed": acknowledged, "deadlocks": deadlocks, "wrong_total_reads": wrong},
        "settings": {"gateway_capacity": 8},
    }


def test_rates_are_counter_differences_over_the_seconds_between_readings():
    samples = [
        (0.0, reading("deposit", stats(), {"lost_updates": 0})),
        (1.0, reading("deposit", stats(acknowledged=500, refused=2), {"lost_updates": 100})),
        (3.0, reading("deposit", stats(acknowledged=1500, refused=2), {"lost_updates": 350})),
    ]
    series = build("deposit", samples)
    assert series == {
        "t": [0.0, 1.0, 3.0],
        "completed_per_s": [0.0, 500.0, 500.0],
        "rejected_per_s": [0.0, 2.0, 0.0],
        "lost_cents": [0, 100, 350],
    }


def test_each_scenario_has_its_own_quantities_all_as_long_as_t():
    checkout = build("checkout", [(0.0, reading("checkout", stats(in_flight=3)))])
    assert checkout["capacity"] == [8]  # nothing admits under unsafe: the gateway's capacity is the limit
    assert set(checkout) == {"t", "completed_per_s", "rejected_per_s", "in_flight", "capacity", "oversold"}
    audit = {"total": 990, "expected_total": 1000}
    transfer = build("transfer", [(0.0, reading("transfer", stats(deadlocks=2), audit=audit))])
    assert transfer["audited_total"] == [990] and transfer["expected_total"] == [1000]
    refused = build("transfer", [(0.0, reading("transfer", stats(), audit=None))])
    assert refused["audited_total"] == [None]  # the sampler's audit was refused that second
    for series in (checkout, transfer, refused):
        assert {len(values) for values in series.values()} == {1}


@pytest.mark.e2e
def test_the_sampler_reads_a_real_server_once_an_interval_and_stays_bounded():
    """Deposits from real threads while the sampler runs every 50 ms with room for 8 readings:
    it thins itself (every other reading dropped, the interval doubled) and keeps the whole span."""
    with ServerProcess("--guard", "lock", "--race-window-ms", "0") as server:
        stop = threading.Event()

        def deposit_loop():
            with requests.Session() as session:
                while not stop.is_set():
                    session.post(server.url + "/accounts/acc-01/deposit", json={"amount": 1}, timeout=10)

        depositors = [threading.Thread(target=deposit_loop) for _ in range(2)]
        with Sampler(server.url, "deposit", interval=0.05, max_samples=8) as sampler:
            for thread in depositors:
                thread.start()
            time.sleep(1.5)
            stop.set()
            for thread in depositors:
                thread.join(10)
        final = requests.get(server.url + "/stats", timeout=10).json()
        races = requests.get(server.url + "/debug/races", timeout=10).json()
        sampler.finish(reading("deposit", final, races))
    series = sampler.series()
    assert 4 <= len(series["t"]) <= 9 and sampler.interval >= 0.2  # thinned at least twice
    assert series["t"] == sorted(series["t"]) and series["t"][0] < 0.1 and series["t"][-1] > 1.4
    assert {len(values) for values in series.values()} == {len(series["t"])}
    assert max(series["completed_per_s"]) > 0 and series["lost_cents"] == [0] * len(series["t"])
    assert sampler.missed == 0
