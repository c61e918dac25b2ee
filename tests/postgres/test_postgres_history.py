"""The dashboard's history on the postgres store: each worker samples the fleet's totals (read from the database), so
whichever worker a tab reaches draws the whole fleet's run; a reset on one worker starts the others' again."""

from __future__ import annotations

import pytest

from bankapp.postgres import prepare
from bankapp.settings import load
from bankapp.web import create_app
from bankapp.web.history import samples

pytestmark = pytest.mark.postgres


@pytest.fixture
def worker(database_url):
    """`worker(**settings)`: one worker's app (its own lab, pool and history) on the test's database, and a test
    client for it; each lab closed at the end, before its database is dropped."""
    apps = []

    def start(**settings):
        config = load({"store": "postgres", "database_url": database_url, "threads": 8, **settings}, environ={})
        apps.append(create_app(prepare(config, set(settings))))
        return apps[-1].test_client()

    yield start
    for app in apps:
        app.extensions["bankapp"].close()


def deposit(client, amount=5):
    with client.post("/accounts/acc-00/deposit", json={"amount": amount}) as response:
        assert response.status_code == 200


def test_each_worker_samples_the_fleets_totals_and_sees_the_others_reset(worker, monkeypatch):
    monkeypatch.setattr(samples, "INTERVAL_S", 0.0)
    one, two = worker(race_window_ms=0), worker()
    for _ in range(3):
        deposit(one)
    deposit(two)
    seen_by_two = two.get("/dashboard/history").json
    assert seen_by_two["series"]["acknowledged"][-1] == 4, "the fleet's four deposits, three made on the other worker"
    assert seen_by_two["money"]["total_change"] == 20 and seen_by_two["money"]["off"] == 0
    assert one.post("/admin/reset").status_code == 200
    after = two.get("/dashboard/history").json
    assert after["resets"] == seen_by_two["resets"] + 1 and after["series"]["acknowledged"] == [0]
