"""The postgres store against a real PostgreSQL, driven by real threads: two labs are two workers.

Each lab has its own Python guards and its own pool, and both share one
database, as two gunicorn workers do. Races are forced with a race window
far longer than the threads' start skew (they start behind one barrier), so
both deposits read before either writes whenever the guard lets them.
"""

import threading
import time

import psycopg
import pytest

from bankapp.lab.admission import AdmissionRejected
from bankapp.lab.guards import GuardTimeout
from bankapp.lab.locks import DeadlockVictim
from bankapp.lab.shop import OutOfStock
from bankapp.lab.store import StoreUnavailable
from bankapp.postgres import bank as database_bank
from bankapp.settings import SettingsError
from bankapp.web.metrics import lab_families

from ..harness import run_together
from ..pg import until

pytestmark = pytest.mark.postgres

WINDOW = {"race_window_ms": 300}


def deposit_twice(first, second, account="acc-00", expect=()):
    jobs = [lambda: first.bank.deposit(account, 5), lambda: second.bank.deposit(account, 7)]
    return run_together(jobs, expect=expect)


@pytest.mark.parametrize(
    ("guard", "loses"),
    [
        ("unsafe", True),
        ("lock", True),
        ("rlock", True),
        ("semaphore", True),
        ("row-lock", False),
        ("advisory-lock", False),
        ("atomic-update", False),
        ("serializable", False),
    ],
)
def test_two_workers_depositing_into_one_account(make_pg_lab, guard, loses):
    first = make_pg_lab(deposit_guard=guard, **WINDOW)
    second = make_pg_lab(join=True)
    results = deposit_twice(first, second)
    assert all(isinstance(result, int) for result in results), results
    deposits = first.stats()["deposits"]
    assert deposits["acknowledged"] == 2 and deposits["acknowledged_amount"] == 12
    balance = first.bank.balance("acc-00")
    races = second.races(10)  # fleet-wide: the other worker names what happened too
    if loses:  # a Python lock in one process does not stop a request in the other
        assert balance in (100_005, 100_007)
        assert deposits["lost_updates"] == 100_012 - balance
        (erasure,) = races["races"]
        assert erasure["erased"][0]["delta"] == deposits["lost_updates"] == races["lost_updates"]
    else:
        assert balance == 100_012 and deposits["lost_updates"] == 0
        assert races["erasures"] == 0 and races["races"] == []


def test_a_python_lock_is_exact_within_one_worker(make_pg_lab):
    lab = make_pg_lab(deposit_guard="lock", **WINDOW)
    deposit_twice(lab, lab)
    assert lab.bank.balance("acc-00") == 100_012
    assert lab.stats()["deposits"]["lost_updates"] == 0


def test_serializable_retries_are_counted_and_bounded(make_pg_lab, monkeypatch):
    first = make_pg_lab(deposit_guard="serializable", **WINDOW)
    second = make_pg_lab(join=True)
    deposit_twice(first, second)
    assert first.stats()["deposits"]["serialization_retries"] >= 1
    monkeypatch.setattr(database_bank, "SERIALIZABLE_ATTEMPTS", 1)
    results = deposit_twice(first, second, "acc-01", expect=(StoreUnavailable,))
    refused = [result for result in results if isinstance(result, StoreUnavailable)]
    assert len(refused) == 1 and refused[0].slug == "serialization-failure", results
    assert first.bank.balance("acc-01") - 100_000 in (5, 7)  # the refused one changed nothing
    assert first.stats()["deposits"]["lost_updates"] == 0


def test_a_refused_serializable_deposit_says_it_was_a_serialization_failure_and_how_often_it_retried(
    make_pg_lab, database_url, monkeypatch
):
    """Another transaction updates the row under each attempt, so PostgreSQL refuses every one (40001)."""
    monkeypatch.setattr(database_bank, "SERIALIZABLE_ATTEMPTS", 3)
    lab = make_pg_lab(deposit_guard="serializable", race_window_ms=1000)
    outcome = []
    depositing = threading.Thread(target=lambda: outcome.append(capture(lambda: lab.bank.deposit("acc-02", 5))))
    with psycopg.connect(database_url, autocommit=True) as other, psycopg.connect(database_url, autocommit=True) as eye:
        depositing.start()
        for attempt in range(1, 4):  # each attempt reads, waits its window, then its UPDATE meets our uncommitted one
            other.execute("BEGIN")
            other.execute("UPDATE bankapp_accounts SET balance = balance + 1, net = net + 1 WHERE id = 'acc-02'")
            until_blocked(eye, other.info.backend_pid, depositing)
            other.execute("COMMIT")  # the waiting deposit now fails: 40001, concurrent update
            until(
                lambda n=attempt: lab.stats()["deposits"]["serialization_retries"] == n,
                what=f"attempt {attempt} failed",
            )
    depositing.join(30)
    (refusal,) = outcome
    assert isinstance(refusal, StoreUnavailable) and refusal.slug == "serialization-failure", refusal
    assert refusal.fields["attempts"] == 3 and refusal.fields["retries"] == 2 and refusal.fields["sqlstate"] == "40001"
    assert "serialization failure" in str(refusal) and "retried 2 times" in str(refusal)
    assert "could not serialize access due to concurrent update" in str(refusal)
    deposits = lab.stats()["deposits"]
    assert deposits["serialization_failures"] == {"refused": 1, "retries": 2}
    assert deposits["serialization_retries"] == 3 and deposits["rejected"]["serialization_failure"] == 1
    assert lab.bank.balance("acc-02") == 100_003  # ours, not the refused deposit's
    metrics = {family.name: family for family in lab_families(lab.stats(), created=0.0, resets=0)}
    aborted = metrics["bankapp_deposits_serialization_aborts"].samples  # three attempts, two of them retried
    assert [sample.value for sample in aborted if sample.name.endswith("_total")] == [3]
    refused_by = {
        s.labels["reason"]: s.value for s in metrics["bankapp_deposits_refused"].samples if s.name.endswith("_total")
    }
    assert refused_by["serialization_failure"] == 1


def capture(job):
    try:
        return job()
    except Exception as error:  # handed back: the test decides
        return error


def until_blocked(eye, holder: int, depositing: threading.Thread, timeout: float = 30) -> None:
    """Until some backend waits for `holder` (pg_blocking_pids), as the isolation tester polls, or the deposit
    has ended (its outcome tells why). `eye` is a connection of its own, in autocommit: within one transaction
    pg_stat_activity is a snapshot taken at its first read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and depositing.is_alive():
        waiting = eye.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (holder,)
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.01)
    if depositing.is_alive():
        pytest.fail(f"nobody waited for our row lock within {timeout} s")


def test_a_patch_on_one_worker_is_in_force_on_the_other_at_its_next_request(make_pg_lab):
    first = make_pg_lab(deposit_guard="unsafe")
    second = make_pg_lab(join=True)
    assert second.config().deposit_guard == "unsafe"
    first.settings.patch({"deposit_guard": "row-lock", "capacity": 3})
    config = second.config()
    assert (config.deposit_guard, config.capacity) == ("row-lock", 3)
    with pytest.raises(SettingsError, match="database_url: can only be set at start"):
        second.settings.patch({"database_url": "postgresql://elsewhere/bank"})


def test_settings_chosen_at_start_win_and_the_rest_come_from_the_database(make_pg_lab):
    make_pg_lab(deposit_guard="row-lock", race_window_ms=7)
    joining = make_pg_lab(join=True, deposit_guard="lock")  # nothing chosen: takes the fleet's
    assert (joining.config().deposit_guard, joining.config().race_window_ms) == ("row-lock", 7)
    chooser = make_pg_lab(deposit_guard="atomic-update")  # FAST's race window and this guard chosen
    assert (chooser.config().deposit_guard, joining.config().deposit_guard) == ("atomic-update", "atomic-update")


@pytest.mark.parametrize("guard", ["row-lock", "advisory-lock", "atomic-update", "serializable"])
def test_batch_deposit_takes_a_database_lock_again_and_succeeds(make_pg_lab, guard):
    lab = make_pg_lab(deposit_guard=guard)
    assert lab.bank.batch_deposit("acc-03", [1, 2, 3]) == 100_006
    assert lab.stats()["deposits"]["acknowledged"] == 3


def test_a_held_row_is_waited_for_shown_in_debug_locks_and_times_out(make_pg_lab, database_url):
    lab = make_pg_lab(deposit_guard="row-lock", lock_timeout_ms=20_000)
    with psycopg.connect(database_url, autocommit=True, application_name="test holder") as holder:
        with holder.transaction():
            holder.execute("SELECT balance FROM bankapp_accounts WHERE id = 'acc-02' FOR UPDATE")
            waiter = threading.Thread(target=lab.bank.deposit, args=("acc-02", 9))
            waiter.start()
            edges = wait_for_edge(lab)
            assert edges[0]["holder"]["name"] == "test holder", edges
            assert edges[0]["waiter"]["name"].startswith("bankapp "), edges
            lab.settings.patch({"lock_timeout_ms": 200})
            with pytest.raises(GuardTimeout, match="row-lock of acc-02 in the database"):
                lab.bank.deposit("acc-02", 1)
        waiter.join(30)
    assert lab.bank.balance("acc-02") == 100_009  # the waiter went on once the holder let go
    assert lab.stats()["deposits"]["lock_timeouts"] == 1


def wait_for_edge(lab, timeout=20):
    """Poll `/debug/locks` until someone waits, as PostgreSQL's isolation tester polls pg_locks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        edges = lab.transfers.debug_locks()["wait_for"]
        if edges:
            return edges
        time.sleep(0.02)
    pytest.fail("nobody ever waited")


def transfer_both_ways(lab, amount=5, expect=()):
    return run_together(
        [
            lambda: lab.transfers.transfer("acc-00", "acc-01", amount),
            lambda: lab.transfers.transfer("acc-01", "acc-00", amount),
        ],
        expect=expect,
    )


def test_opposing_naive_transfers_deadlock_and_postgres_picks_one_victim(make_pg_lab):
    lab = make_pg_lab(transfer_policy="naive", **WINDOW)
    results = transfer_both_ways(lab, expect=(DeadlockVictim,))
    victims = [result for result in results if isinstance(result, DeadlockVictim)]
    assert len(victims) == 1 and sum(isinstance(result, dict) for result in results) == 1, results
    deadlock = victims[0].deadlock
    assert "deadlock detected" in str(victims[0]) and "ShareLock on transaction" in str(victims[0])
    assert len(deadlock["cycle"]) == 2 and deadlock["accounts"] == ["acc-00", "acc-01"]
    assert deadlock["cycle"][0]["blocked_by"] == deadlock["cycle"][1]["process"]
    assert lab.transfers.audit()["consistent"]  # the victim's debit was rolled back
    assert lab.stats()["transfers"]["deadlocks"] == 1
    assert lab.transfers.debug_locks()["recent_deadlocks"][0]["cycle"] == deadlock["cycle"]


@pytest.mark.parametrize("policy", ["ordered", "backoff"])
def test_ordered_and_backoff_transfers_never_deadlock(make_pg_lab, policy):
    lab = make_pg_lab(transfer_policy=policy, **WINDOW)
    results = transfer_both_ways(lab)
    assert all(isinstance(result, dict) for result in results), results
    stats = lab.stats()["transfers"]
    assert stats["committed"] == 2 and stats["deadlocks"] == 0 and stats["total_conserved"]
    if policy == "backoff":
        assert stats["retries"] >= 1


def test_an_audit_between_release_first_commits_sees_the_money_in_flight(make_pg_lab):
    lab = make_pg_lab(transfer_policy="release-first", race_window_ms=1500)
    mover = threading.Thread(target=lab.transfers.transfer, args=("acc-04", "acc-05", 11))
    mover.start()
    time.sleep(0.5)
    in_flight = lab.transfers.audit()
    mover.join(30)
    assert (in_flight["consistent"], in_flight["difference"]) == (False, -11)
    assert lab.transfers.audit()["consistent"]
    assert lab.stats()["transfers"]["wrong_total_reads"] == 1


def checkouts(labs, count, quantity=1, sku="widget", expect=()):
    chosen = [labs[i % len(labs)] for i in range(count)]
    return run_together([lambda lab=lab: lab.shop.checkout(sku, quantity) for lab in chosen], expect=expect)


@pytest.mark.parametrize(("guard", "fleet_limit"), [("semaphore", False), ("advisory-semaphore", True)])
def test_a_python_semaphore_admits_per_worker_an_advisory_one_across_the_fleet(make_pg_lab, guard, fleet_limit):
    first = make_pg_lab(checkout_guard=guard, capacity=2, max_waiting=2, service_time_ms=600, admission_timeout_ms=0)
    second = make_pg_lab(join=True)
    results = checkouts([first, second], 6, expect=(AdmissionRejected,))
    checkout = first.stats()["checkout"]
    if fleet_limit:
        assert checkout["peak_in_flight"] <= 2 and checkout["admitted"] <= 4
        assert checkout["rejections"].get("full", 0) >= 2, results
    else:  # two per worker
        assert checkout["peak_in_flight"] > 2, checkout
    assert checkout["in_flight"] == 0 and checkout["admitted"] + checkout["rejected"] == 6


def test_unsafe_oversells_the_flash_sale_a_guarded_update_does_not(make_pg_lab):
    first = make_pg_lab(checkout_guard="unsafe", service_time_ms=0, **WINDOW)
    second = make_pg_lab(join=True)
    orders = checkouts([first, second], 2, quantity=60, sku="flash-sale")  # both sold: no error raised
    assert len({order.order_id for order in orders}) == 2
    assert first.stats()["checkout"]["oversold"] == 20
    first.reset()
    first.settings.patch({"checkout_guard": "advisory-semaphore", "capacity": 2, "max_waiting": 2})
    results = checkouts([first, second], 2, quantity=60, sku="flash-sale", expect=(OutOfStock,))
    assert sum(isinstance(result, OutOfStock) for result in results) == 1, results
    assert first.stats()["checkout"]["oversold"] == 0


def test_an_advisory_lock_admits_one_checkout_at_a_time_and_queues_the_next(make_pg_lab):
    first = make_pg_lab(checkout_guard="advisory-lock", max_waiting=3, service_time_ms=300, lock_timeout_ms=5000)
    second = make_pg_lab(join=True)
    results = checkouts([first, second], 3)
    assert all(not isinstance(result, Exception) for result in results), results
    checkout = first.stats()["checkout"]
    assert (checkout["peak_in_flight"], checkout["admitted"]) == (1, 3)
    assert checkout["peak_waiting"] >= 1
