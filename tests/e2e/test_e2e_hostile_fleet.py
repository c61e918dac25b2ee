"""The fleet in a hostile room: 4 workers on the postgres store, the database pulled out from under them.

Faults are injected on this test's own database only: its backends are
terminated (`pg_terminate_backend`), or the loopback relay between the
service and PostgreSQL (`pg.Plug`) is cut and restored. The machine's
PostgreSQL itself is never stopped: other tests use it.
"""

from __future__ import annotations

import threading
import time

import psutil
import pytest
import requests

from ..live import live_server
from ..pg import Plug, until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.xdist_group("postgres-fleet")]  # one fleet at a time

FLEET = ("--store", "postgres", "--workers", "4", "--threads", "16")


def per_worker(server, path: str, workers: int = 4, timeout: float = 30) -> dict[str, dict]:
    """`path` as each of the `workers` workers answers it (new connections until each has answered 200)."""
    answers: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(answers) < workers and time.monotonic() < deadline:
        response = requests.get(server.url + path, timeout=10, headers={"Connection": "close"})
        if response.status_code == 503:  # a worker's pool still finding its dead connections after an outage
            continue
        assert response.status_code == 200, response.text
        answers[response.headers["X-Served-By"].split("/")[0]] = response.json()
    assert len(answers) == workers, f"only {len(answers)} workers answered {path} within {timeout} s"
    return answers


def loop(url: str, stop: threading.Event, statuses: list, path: str, body: dict) -> None:
    with requests.Session() as session:
        while not stop.is_set():
            try:
                statuses.append(session.post(url + path, json=body, timeout=15).status_code)
            except requests.RequestException:
                statuses.append("cut")


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_a_database_outage_mid_checkout_leaks_no_admission(databases):
    """Issue 19, item 1: 12 threads checking out through a semaphore of 4 (and 3 transferring) while the
    database goes away twice (the relay cut) and its backends are killed once; at rest every worker has its
    4 permits, nothing is in flight, and every admitted checkout is counted with its outcome."""
    url = databases.create()
    plug = Plug(("127.0.0.1", 5432))
    flags = (*FLEET, "--database-url", plug.url(url), "--checkout-guard", "semaphore", "--capacity", "4")
    flags += ("--admission-timeout-ms", "0", "--service-time-ms", "20", "--race-window-ms", "1")
    try:
        with live_server(*flags, startup_timeout=60) as server, databases.admin() as admin:
            stop, statuses = threading.Event(), []
            checkout, transfer = {"sku": "widget", "quantity": 1}, {"from": "acc-00", "to": "acc-01", "amount": 1}
            threads = [
                threading.Thread(target=loop, args=(server.url, stop, statuses, "/checkout", checkout))
                for _ in range(12)
            ]
            threads += [
                threading.Thread(target=loop, args=(server.url, stop, [], "/transfers", transfer)) for _ in range(3)
            ]
            for thread in threads:
                thread.start()
            try:
                until(lambda: statuses.count(200) >= 20, 30, "no checkout went through")
                for _ in range(2):
                    plug.pull()
                    time.sleep(1.0)  # checkouts meet the database gone at every step of theirs
                    plug.push()
                    until(lambda: statuses[-5:].count(200) >= 1, 30, "no checkout went through again")
                databases.terminate(url, conn=admin)  # held: a full server cannot refuse the kill
                until(lambda: statuses[-5:].count(200) >= 1, 30, "no checkout went through after the kill")
            finally:
                stop.set()
                for thread in threads:
                    thread.join(30)
            assert 500 not in statuses, f"{statuses.count(500)} checkouts answered 500"
            assert any(status == 503 for status in statuses)  # the outage was felt: 503s, not 500s
            until(lambda: server.get("/healthz").status_code == 200, 30, "the store did not come back")

            for pid, stats in per_worker(server, "/stats").items():
                checkout = stats["checkout"]
                assert checkout["available_permits"] == 4, (pid, checkout)
                assert checkout["in_flight"] == 0 and checkout["waiting"] == 0, (pid, checkout)
                finished = checkout["completed"] + checkout["out_of_stock"] + checkout["failed"]
                assert checkout["admitted"] == finished, (pid, checkout)
                assert stats["transfers"]["in_flight"] == 0, (pid, stats["transfers"])
            # and every worker admits again: checkouts one at a time, each on a new connection, all go through
            answered = set()
            for _ in range(40):
                response = requests.post(
                    server.url + "/checkout", json={"sku": "widget", "quantity": 1}, timeout=10,
                    headers={"Connection": "close"},
                )  # fmt: skip
                if response.status_code == 503 and response.json()["type"].endswith("store-unavailable"):
                    continue  # a dead connection found (and dropped) by its pool, not a permit refused
                assert response.status_code == 200, response.text
                answered.add(response.headers["X-Served-By"].split("/")[0])
            assert len(answered) >= 2, answered
    finally:
        plug.pull()


def storm(url: str, seconds: float, jobs: list[tuple[str, str, dict | None, int]]) -> dict[str, list]:
    """Each job `(name, path, body, threads)` POSTed in a loop by that many threads for `seconds`; every answer
    (status, Retry-After, body) by name."""
    deadline = time.monotonic() + seconds
    answers: dict[str, list] = {name: [] for name, _, _, _ in jobs}

    def run(name, path, body):
        with requests.Session() as session:
            while time.monotonic() < deadline:
                response = session.post(url + path, json=body, timeout=30)
                answers[name].append((response.status_code, response.headers.get("Retry-After"), response.text))

    threads = [threading.Thread(target=run, args=job[:3]) for job in jobs for _ in range(job[3])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return answers


@pytest.mark.parametrize(
    "seconds",
    [pytest.param(5, id="short", marks=pytest.mark.slow), pytest.param(30, id="long", marks=pytest.mark.slow)],
)
def test_reset_under_load_never_answers_500(databases, seconds):
    """Issue 19, item 3: deposits, transfers both ways and checkouts on acc-00/acc-01 while two threads reset
    the lab in a loop: no request answers 500, a reset that cannot run says so (503 with Retry-After) in
    fewer than 1 in 20, and afterwards the books are whole."""
    url = databases.create()
    flags = (*FLEET, "--database-url", url, "--deposit-guard", "row-lock", "--transfer-policy", "naive")
    flags += ("--checkout-guard", "advisory-semaphore", "--capacity", "4", "--race-window-ms", "2")
    with live_server(*flags, startup_timeout=60) as server:
        answers = storm(
            server.url,
            seconds,
            [
                ("deposit 0", "/accounts/acc-00/deposit", {"amount": 1}, 2),
                ("deposit 1", "/accounts/acc-01/deposit", {"amount": 1}, 1),
                ("transfer 0-1", "/transfers", {"from": "acc-00", "to": "acc-01", "amount": 1}, 2),
                ("transfer 1-0", "/transfers", {"from": "acc-01", "to": "acc-00", "amount": 1}, 1),
                ("checkout", "/checkout", {"sku": "widget", "quantity": 1}, 2),
                ("reset", "/admin/reset", None, 2),
            ],
        )
        for path, got in answers.items():
            errors = [text for status, _, text in got if status >= 500 and status != 503]
            assert not errors, f"{path}: {len(errors)} of {len(got)} answered 5xx: {errors[:2]}"
            assert all(after for status, after, _ in got if status == 503), f"{path}: a 503 without Retry-After"
        resets = answers["reset"]
        refused = [text for status, _, text in resets if status != 200]
        assert resets and len(refused) * 20 < len(resets), (
            f"{len(refused)} of {len(resets)} resets refused: {refused[:2]}"
        )
        assert all(status in (200, 503) for status, _, _ in resets)

        assert server.post("/admin/reset").status_code == 200
        assert server.get("/audit").json()["consistent"]
        stats = server.get("/stats").json()
        assert stats["transfers"]["total_conserved"], stats["transfers"]
        assert stats["checkout"]["in_flight"] == 0 and stats["transfers"]["in_flight"] == 0


def backends_waiting_on_locks(databases, url: str) -> int:
    name = url.rsplit("/", 1)[1]
    with databases.admin() as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'", (name,)
        ).fetchone()[0]


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
def test_row_lock_waiters_count_against_the_cap_and_the_operator_keeps_answering(databases):
    """Issue 19, item 2: 80 deposits at once on acc-00 under `row-lock`, the first holding the row 6 s, the
    others waiting up to 5 s: at most 4 x (16 - 2) wait in the database, the rest are refused at once (503
    server-busy), and meanwhile the operator's routes answer (each within 3 s here, a loose bound for a
    loaded machine; they used to wait for a waiter's thread, here 5 s, in the issue tens of seconds).

    PostgreSQL's `lock_timeout` bounds each wait for a lock, not a statement's waits together: a row lock
    handed on every second, as with a 1 s window, never times out anyone in its queue."""
    url = databases.create()
    flags = (*FLEET, "--database-url", url, "--deposit-guard", "row-lock", "--race-window-ms", "6000")
    flags += ("--lock-timeout-ms", "5000")
    with live_server(*flags, startup_timeout=60) as server:
        statuses: list = []
        start = threading.Barrier(80, timeout=30)

        def deposit():
            start.wait()
            try:
                response = requests.post(
                    server.url + "/accounts/acc-00/deposit", json={"amount": 1}, timeout=30,
                    headers={"Connection": "close"},
                )  # fmt: skip
                statuses.append((response.status_code, response.json().get("type", "")))
            except requests.RequestException as error:
                statuses.append((0, str(error)))

        threads = [threading.Thread(target=deposit) for _ in range(80)]
        for thread in threads:
            thread.start()
        until(lambda: backends_waiting_on_locks(databases, url) >= 8, 30, "no deposit waited on the row")
        most_waiting, slowest = 0, {}
        for _ in range(2):
            for method, path in (
                ("GET", "/healthz"),
                ("GET", "/admin/config"),
                ("GET", "/debug/locks"),
                ("POST", "/admin/break-deadlocks"),
            ):
                started = time.monotonic()
                response = requests.request(method, server.url + path, timeout=30, headers={"Connection": "close"})
                took = time.monotonic() - started
                assert response.status_code == 200, (path, response.text)
                slowest[path] = max(slowest.get(path, 0.0), took)
            most_waiting = max(most_waiting, backends_waiting_on_locks(databases, url))
        for thread in threads:
            thread.join(60)
        assert all(took < 3 for took in slowest.values()), slowest
        assert most_waiting <= 4 * 14, most_waiting
        assert 500 not in [status for status, _ in statuses]
        assert any(kind.endswith("server-busy") for _, kind in statuses), statuses
        balance = server.get("/accounts/acc-00").json()["balance"]
        assert balance == 100_000 + sum(1 for status, _ in statuses if status == 200)  # nothing acknowledged lost


def test_workers_killed_mid_checkout_leave_no_checkout_in_flight(databases):
    """Issue 19, item 1: `kill -9` of every worker while they hold fleet-wide permits (`advisory-semaphore`) and
    checkouts in flight: their sessions end with them, and so do their places. The fleet's semaphore is whole again
    and nothing stays in flight (a row counter raised by a dead worker stayed raised for good)."""
    url = databases.create()
    flags = (*FLEET, "--database-url", url, "--checkout-guard", "advisory-semaphore", "--capacity", "4")
    flags += ("--admission-timeout-ms", "0", "--service-time-ms", "200")
    with live_server(*flags, startup_timeout=60) as server:
        stop, statuses = threading.Event(), []
        threads = [
            threading.Thread(
                target=loop, args=(server.url, stop, statuses, "/checkout", {"sku": "widget", "quantity": 1})
            )
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        try:
            until(lambda: server.get("/stats").json()["checkout"]["in_flight"] >= 2, 30, "no checkout in flight")
            for worker in psutil.Process(server.process.pid).children():  # gunicorn starts new ones
                worker.kill()
                worker.wait(10)
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert 500 not in statuses

        def at_rest() -> bool:
            response = server.get("/stats")
            if response.status_code != 200:
                return False
            checkout = response.json()["checkout"]
            return checkout["in_flight"] == 0 and checkout["available_permits"] == 4

        until(at_rest, 30, "the dead worker's checkouts stayed in flight")
        checkout = server.get("/stats").json()["checkout"]
        assert checkout["admitted"] == checkout["completed"] + checkout["out_of_stock"] + checkout["failed"]
