"""`/metrics` through Flask's client: names, agreement with `/stats` after real
threads raced, the latency histogram, resets, and no wait on any guard."""

import os
import subprocess
import sys
import textwrap
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..scrape import pairs, samples, value

ACCOUNTS = ["acc-00", "acc-01"]


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    return samples(response.get_data(as_text=True))


def in_threads(app, count: int, work) -> None:
    """`work(client, i)` in `count` real threads released together by a barrier."""
    barrier = threading.Barrier(count)

    def run(i):
        client = app.test_client()
        barrier.wait()
        work(client, i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)


def test_every_name_has_the_prefix_and_counters_end_in_total(client):
    text = client.get("/metrics").get_data(as_text=True)
    families = list(text_string_to_metric_families(text))
    assert len(families) > 20
    for family in families:
        assert family.name.startswith("bankapp_"), family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith(("_total", "_created")), sample.name
    kinds = {family.name: family.type for family in families}
    assert kinds["bankapp_deposits_acknowledged"] == "counter"
    assert kinds["bankapp_lost_updates_cents"] == "gauge"
    assert kinds["bankapp_http_request_duration_seconds"] == "histogram"


def test_after_racing_threads_every_figure_equals_stats(make_app):
    """Unsafe deposits lose cents, a semaphore of 2 turns checkouts away, naive transfers deadlock."""
    app = make_app(
        deposit_guard="unsafe",
        checkout_guard="semaphore",
        capacity=2,
        transfer_policy="naive",
        race_window_ms=100,  # wide, so that a loaded machine still interleaves the threads
        service_time_ms=100,
        lock_timeout_ms=5000,
    )

    def work(client, i):
        if i < 6:
            for _ in range(3):
                assert client.post(f"/accounts/{ACCOUNTS[i % 2]}/deposit", json={"amount": 7}).status_code == 200
        elif i < 12:
            client.post("/checkout", json={"sku": "flash-sale", "quantity": 1})
        else:
            source, target = ACCOUNTS if i % 2 else ACCOUNTS[::-1]
            for _ in range(3):
                client.post("/transfers", json={"from": source, "to": target, "amount": 1})

    in_threads(app, 14, work)
    client = app.test_client()
    found, stats = scrape(client), client.get("/stats").json
    for figure, (metric, stat) in pairs(found, stats).items():
        assert metric == stat, figure
    assert stats["deposits"]["lost_updates"] > 0
    assert stats["checkout"]["rejected"] > 0
    assert stats["transfers"]["deadlocks"] > 0
    assert value(found, "bankapp_checkout_capacity") == 2
    assert value(found, "bankapp_bank_total_cents") == stats["transfers"]["total"]


def test_capacity_is_absent_when_nothing_limits_checkouts(client):
    found = scrape(client)
    assert ("bankapp_checkout_capacity", ()) not in found
    assert value(found, "bankapp_checkout_gateway_capacity") == 8


def test_latency_is_observed_by_route_and_the_guard_in_force(client):
    client.patch("/admin/config", json={"deposit_guard": "lock"})
    for _ in range(3):
        client.post("/accounts/acc-03/deposit", json={"amount": 1})
    client.patch("/admin/config", json={"deposit_guard": "rlock"})
    client.post("/accounts/acc-03/deposit", json={"amount": 1})
    client.get("/no/such/page")
    client.open("/no/such/page", method="BREW")  # a client's own method is not a label value of its own
    found = scrape(client)
    name = "bankapp_http_request_duration_seconds_count"
    deposit = {"method": "POST", "route": "/accounts/<account_id>/deposit"}
    assert value(found, name, guard="lock", **deposit) == 3
    assert value(found, name, guard="rlock", **deposit) == 1
    assert value(found, name, guard="none", method="GET", route="unmatched") == 1
    assert value(found, name, guard="none", method="other", route="unmatched") == 1
    buckets = {
        float(dict(labels)["le"])
        for (sample, labels) in found
        if sample == "bankapp_http_request_duration_seconds_bucket"
    }
    assert {0.001, 1.0} <= buckets  # a 1 ms deposit and a 1 s deadlock each have a bucket of their size
    assert value(found, "bankapp_http_request_duration_seconds_bucket", guard="lock", le="+Inf", **deposit) == 3


def test_a_reset_zeroes_the_counters_and_says_so(client):
    client.post("/accounts/acc-00/deposit", json={"amount": 5})
    before = scrape(client)
    assert value(before, "bankapp_deposits_acknowledged_total") == 1
    assert client.post("/admin/reset").status_code == 200
    after = scrape(client)
    assert value(after, "bankapp_deposits_acknowledged_total") == 0
    assert value(after, "bankapp_lab_resets_total") == value(before, "bankapp_lab_resets_total") + 1
    # the counter's _created moves to the reset: Prometheus reads the drop as a restart from zero
    created = "bankapp_deposits_acknowledged_created"
    assert value(after, created) > value(before, created)


def test_openmetrics_when_asked_for(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.get_data(as_text=True).endswith("# EOF\n")


def test_metrics_stats_and_the_page_answer_while_every_guard_is_held(make_app):
    """Neither `/metrics` nor `/` waits on a guard: with every lock held and
    `lock_timeout_ms none`, anything that did would never answer."""
    app = make_app(lock_timeout_ms="none", checkout_guard="lock")
    lab = app.extensions["bankapp"]
    config = lab.config()
    held = [lab.locks.acquire(account, None, None) for account in config.account_ids]
    guards = [
        lab.guards.get(kind, account) for kind in ("lock", "rlock", "semaphore") for account in config.account_ids
    ]
    guards.append(lab.shop.admission_guard(config))
    for guard in guards:
        assert guard.acquire(0)
    answers = {}

    def read():
        client = app.test_client()
        for path in ("/metrics", "/stats", "/"):
            answers[path] = client.get(path).status_code

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    try:
        assert answers == {"/metrics": 200, "/stats": 200, "/": 200}
    finally:
        for guard in guards:
            guard.release()
        for lock in held:
            lock.release()


MULTIPROCESS_WORKER = textwrap.dedent(
    """
    import sys
    from bankapp.settings import Config
    from bankapp.web import create_app

    # the memory store refuses workers > 1; the metrics side of several workers is what is tested here
    app = create_app(Config(race_window_ms=0).model_copy(update={"workers": 2}))
    client = app.test_client()
    for _ in range(int(sys.argv[1])):
        assert client.post("/accounts/acc-00/deposit", json={"amount": 1}).status_code == 200
    if sys.argv[2] == "scrape":
        sys.stdout.write(client.get("/metrics").get_data(as_text=True))
    """
)


def test_with_several_workers_the_histogram_adds_up_every_process(tmp_path):
    """prometheus_client's multiprocess mode: two real processes observe, one scrape sees both."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    run = [sys.executable, "-c", MULTIPROCESS_WORKER]
    subprocess.run([*run, "3", "quiet"], env=env, check=True, timeout=60)
    scraped = subprocess.run([*run, "4", "scrape"], env=env, check=True, timeout=60, capture_output=True, text=True)
    found = samples(scraped.stdout)
    deposit = {"guard": "unsafe", "method": "POST", "route": "/accounts/<account_id>/deposit"}
    assert value(found, "bankapp_http_request_duration_seconds_count", **deposit) == 7
    assert value(found, "bankapp_deposits_acknowledged_total") == 4  # this process's lab: the memory store


def test_several_workers_without_the_directory_is_refused_by_name(monkeypatch):
    from bankapp.settings import Config
    from bankapp.web import create_app

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR"):
        create_app(Config().model_copy(update={"workers": 2}))
