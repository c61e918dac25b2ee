"""The shop under each checkout guard, with real threads and barriers."""

import re
import threading
from functools import partial

import pytest

from bankapp.lab.admission import AdmissionRejected
from bankapp.lab.shop import Inventory, OutOfStock, UnknownSku, gateway_time_ms
from bankapp.settings import SettingsError, load

from ..harness import MeetingInventory, make_lab, run_together, wait_until


def make_shop(inventory=Inventory, **settings):
    lab = make_lab(inventory=inventory, **settings)
    return lab.shop, lab.settings


def crowd(shop, threads, sku="widget", quantity=1):
    """`threads` checkouts released together; their outcomes by kind."""
    results = run_together([lambda: shop.checkout(sku, quantity)] * threads, expect=(OutOfStock, AdmissionRejected))
    outcomes = {
        "ok": [r for r in results if not isinstance(r, Exception)],
        "out_of_stock": sum(isinstance(r, OutOfStock) for r in results),
        "rejected": [r for r in results if isinstance(r, AdmissionRejected)],
    }
    errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, OutOfStock | AdmissionRejected)]
    assert not errors  # any other failure must surface in the test
    return outcomes


def in_background(shop, count, sku="widget", quantity=1):
    """Start `count` checkouts in threads; returns the threads and their outcomes."""
    results = []

    def client():
        try:
            results.append(shop.checkout(sku, quantity))
        except Exception as error:
            results.append(error)

    pool = [threading.Thread(target=client) for _ in range(count)]
    for thread in pool:
        thread.start()
    return pool, results


def assert_counters_agree(report, attempts):
    assert report["admitted"] + report["rejected"] == attempts
    assert report["admitted"] == report["completed"] + report["out_of_stock"] + report["failed"]
    assert report["in_flight"] == report["waiting"] == 0
    assert report["failed"] == 0


# The gateway model


@pytest.mark.parametrize(
    ("inside", "capacity", "expected"),
    [(1, 8, 50), (8, 8, 50), (16, 8, 100), (24, 8, 150), (3, 1, 150)],
)
def test_the_gateway_is_full_speed_up_to_its_capacity_and_proportionally_slower_beyond(inside, capacity, expected):
    assert gateway_time_ms(50, inside, capacity) == expected


# One checkout at a time


def test_a_checkout_takes_stock_and_is_counted():
    shop, _ = make_shop(checkout_guard="semaphore")
    order = shop.checkout("flash-sale", 7)
    assert (order.sku, order.quantity, order.remaining, order.guard) == ("flash-sale", 7, 93, "semaphore")
    assert order.order_id.startswith("ord-")
    report = shop.report()
    assert report["stock"]["flash-sale"] == 93
    assert report["sold"]["flash-sale"] == 7
    assert (report["admitted"], report["completed"], report["rejected"], report["oversold"]) == (1, 1, 0, 0)
    assert report["available_permits"] == report["capacity"] == 8
    assert report["wait_ms"]["max"] == 0.0
    assert report["latency_ms"]["max"] is not None


@pytest.mark.parametrize("guard", ["unsafe", "lock", "rlock", "semaphore"])
def test_out_of_stock_changes_nothing_but_its_counter(guard):
    shop, _ = make_shop(checkout_guard=guard)
    with pytest.raises(OutOfStock) as caught:
        shop.checkout("flash-sale", 101)
    assert (caught.value.available, caught.value.quantity) == (100, 101)
    report = shop.report()
    assert report["stock"]["flash-sale"] == 100
    assert (report["admitted"], report["out_of_stock"], report["completed"]) == (1, 1, 0)
    assert report["in_flight"] == 0


def test_unknown_sku_is_refused_before_any_guard():
    shop, _ = make_shop(checkout_guard="lock")
    with pytest.raises(UnknownSku):
        shop.checkout("gadget", 1)
    assert shop.report()["admitted"] == shop.report()["rejected"] == 0
    assert shop.admission_guard(shop._config()).holders() == {}


def test_order_ids_are_unique_and_survive_a_reset():
    shop, _ = make_shop()
    first = shop.checkout("widget", 1).order_id
    shop.reset()
    assert shop.checkout("widget", 1).order_id != first


# The flash sale


def test_unsafe_flash_sale_oversells():
    shop, _ = make_shop(partial(MeetingInventory, timeout=0.5), checkout_guard="unsafe", race_window_ms=5)
    outcomes = crowd(shop, threads=20, sku="flash-sale", quantity=10)
    report = shop.report()
    assert shop.inventory.meeting.met > 0, "no two checkouts were ever between read and write together"
    assert report["sold"]["flash-sale"] == 10 * len(outcomes["ok"]) > 100
    assert report["oversold"] == report["sold"]["flash-sale"] - 100 > 0
    assert_counters_agree(report, 20)


@pytest.mark.parametrize(
    ("guard", "settings"),
    [
        ("lock", {"max_waiting": 29}),
        ("rlock", {"max_waiting": 29}),
        ("semaphore", {"capacity": 8, "max_waiting": 22, "admission_timeout_ms": 30_000}),
    ],
)
def test_a_guarded_flash_sale_sells_exactly_its_stock(guard, settings):
    shop, _ = make_shop(
        partial(MeetingInventory, timeout=0.05),
        checkout_guard=guard,
        race_window_ms=2,
        lock_timeout_ms=30_000,
        **settings,
    )
    outcomes = crowd(shop, threads=30, sku="flash-sale", quantity=10)
    report = shop.report()
    assert shop.inventory.meeting.met == 0, "two checkouts were between read and write together"
    assert len(outcomes["ok"]) == 10 and outcomes["out_of_stock"] == 20
    assert report["sold"]["flash-sale"] == 100 and report["stock"]["flash-sale"] == 0
    assert report["oversold"] == 0
    assert_counters_agree(report, 30)


# How many run at once


def test_semaphore_never_lets_more_than_capacity_in():
    shop, _ = make_shop(
        checkout_guard="semaphore", capacity=3, max_waiting=9, admission_timeout_ms=30_000, service_time_ms=30
    )
    outcomes = crowd(shop, threads=12)
    report = shop.report()
    assert len(outcomes["ok"]) == 12
    assert 1 <= report["peak_in_flight"] <= 3
    assert report["gateway_peak_in_use"] <= 3
    assert report["peak_waiting"] <= 9
    assert report["available_permits"] == 3
    assert_counters_agree(report, 12)


@pytest.mark.parametrize("guard", ["lock", "rlock"])
def test_a_lock_lets_one_checkout_in_at_a_time(guard):
    shop, _ = make_shop(checkout_guard=guard, max_waiting=7, lock_timeout_ms=30_000, service_time_ms=10)
    outcomes = crowd(shop, threads=8)
    report = shop.report()
    assert len(outcomes["ok"]) == 8
    assert report["peak_in_flight"] == report["gateway_peak_in_use"] == 1
    assert report["capacity"] == 1 and report["available_permits"] is None
    assert_counters_agree(report, 8)


def test_unsafe_lets_everyone_in_and_the_gateway_slows_down():
    shop, _ = make_shop(checkout_guard="unsafe", service_time_ms=300, gateway_capacity=4)
    outcomes = crowd(shop, threads=16)
    report = shop.report()
    assert len(outcomes["ok"]) == 16 and report["rejected"] == 0
    assert report["peak_in_flight"] > 4
    assert report["capacity"] is None
    assert max(order.gateway_ms for order in outcomes["ok"]) > 300
    assert_counters_agree(report, 16)


# Turned away: at once, from a full queue, after a timeout, at the door


def test_with_every_place_taken_and_no_timeout_a_checkout_is_turned_away_at_once():
    shop, _ = make_shop(checkout_guard="semaphore", capacity=2, service_time_ms=1000)
    pool, results = in_background(shop, 2)
    wait_until(lambda: shop.admission.in_flight == 2)
    with pytest.raises(AdmissionRejected) as caught:
        shop.checkout("widget", 1)
    rejection = caught.value
    assert (rejection.reason, rejection.capacity, rejection.in_flight, rejection.waiting) == ("full", 2, 2, 0)
    assert shop.report()["available_permits"] == 0
    for thread in pool:
        thread.join(10)
    assert all(not isinstance(result, Exception) for result in results)
    report = shop.report()
    assert report["available_permits"] == 2
    assert report["rejections"] == {"full": 1}
    assert report["stock"]["widget"] == 1_000_000 - 2
    assert_counters_agree(report, 3)


def test_beyond_max_waiting_a_checkout_is_turned_away_at_once_and_the_waiters_get_in():
    shop, _ = make_shop(
        checkout_guard="semaphore", capacity=2, max_waiting=2, admission_timeout_ms=30_000, service_time_ms=500
    )
    running, ran = in_background(shop, 2)
    wait_until(lambda: shop.admission.in_flight == 2)
    queued, queue_results = in_background(shop, 2)
    wait_until(lambda: shop.admission.waiting == 2)
    with pytest.raises(AdmissionRejected) as caught:
        shop.checkout("widget", 1)
    assert (caught.value.reason, caught.value.in_flight, caught.value.waiting) == ("queue-full", 2, 2)
    for thread in running + queued:
        thread.join(10)
    assert all(not isinstance(result, Exception) for result in ran + queue_results)
    assert min(order.wait_ms for order in queue_results) > 0
    report = shop.report()
    assert report["peak_waiting"] == 2 and report["peak_in_flight"] == 2
    assert report["rejections"] == {"queue-full": 1}
    assert report["wait_ms"]["max"] > 0
    assert_counters_agree(report, 5)


def test_a_waiting_checkout_gives_up_when_its_admission_timeout_runs_out():
    shop, _ = make_shop(checkout_guard="semaphore", capacity=1, admission_timeout_ms=50, service_time_ms=500)
    pool, _ = in_background(shop, 1)
    wait_until(lambda: shop.admission.in_flight == 1)
    with pytest.raises(AdmissionRejected) as caught:
        shop.checkout("widget", 1)
    assert caught.value.reason == "timeout" and caught.value.waited_ms > 0
    assert shop.admission.waiting == 0
    for thread in pool:
        thread.join(10)
    assert shop.report()["available_permits"] == 1


def test_under_a_lock_a_waiter_gives_up_after_lock_timeout_ms():
    shop, _ = make_shop(checkout_guard="lock", lock_timeout_ms=50, service_time_ms=500)
    pool, _ = in_background(shop, 1)
    wait_until(lambda: shop.admission.in_flight == 1)
    with pytest.raises(AdmissionRejected) as caught:
        shop.checkout("widget", 1)
    assert (caught.value.reason, caught.value.capacity, caught.value.guard) == ("timeout", 1, "lock")
    for thread in pool:
        thread.join(10)


def test_under_unsafe_the_door_keeps_threads_free_for_healthz():
    # threads 4 leaves a budget of 2 checkouts: a third would take a reserved thread.
    shop, _ = make_shop(checkout_guard="unsafe", threads=4, service_time_ms=400)
    pool, results = in_background(shop, 2)
    wait_until(lambda: shop.admission.in_flight == 2)
    with pytest.raises(AdmissionRejected) as caught:
        shop.checkout("widget", 1)
    assert (caught.value.reason, caught.value.capacity, caught.value.in_flight) == ("server-busy", None, 2)
    for thread in pool:
        thread.join(10)
    assert all(not isinstance(result, Exception) for result in results)
    assert shop.checkout("widget", 1).remaining == 1_000_000 - 3


# Settings and reset


def test_the_semaphore_acquired_is_the_one_released_when_capacity_changes():
    shop, holder = make_shop(checkout_guard="semaphore", capacity=2, service_time_ms=300)
    old = shop.admission_guard(holder.current)
    pool, results = in_background(shop, 1)
    wait_until(lambda: old.available_permits == 1)
    holder.patch({"capacity": 5})
    assert shop.report()["available_permits"] == 5  # the new semaphore
    for thread in pool:
        thread.join(10)
    assert not isinstance(results[0], Exception)
    assert old.available_permits == 2 and old.holders() == {}


def test_reset_restores_stock_and_zeroes_counters_and_peaks():
    shop, _ = make_shop(checkout_guard="semaphore", capacity=2, service_time_ms=20)
    crowd(shop, threads=6, sku="flash-sale", quantity=5)
    assert shop.report()["peak_in_flight"] > 0
    shop.reset()
    report = shop.report()
    assert report["stock"] == {"widget": 1_000_000, "flash-sale": 100}
    assert report["sold"] == {"widget": 0, "flash-sale": 0}
    for name in ("admitted", "rejected", "completed", "out_of_stock", "peak_in_flight", "peak_waiting"):
        assert report[name] == 0, name
    assert report["wait_ms"]["p50"] is None and report["latency_ms"]["p99"] is None
    assert report["available_permits"] == 2


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"checkout_guard": "semaphore", "capacity": 20, "max_waiting": 11}, "capacity + max_waiting: 20 + 11"),
        ({"checkout_guard": "lock", "max_waiting": 30}, "max_waiting: 1 + 30"),
        ({"checkout_guard": "rlock", "max_waiting": 30}, "max_waiting: 1 + 30"),
    ],
)
def test_a_combination_that_could_take_every_thread_is_refused(settings, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        load(settings, environ={})


def test_the_largest_combinations_that_leave_two_threads_free_are_allowed():
    assert load({"checkout_guard": "semaphore", "capacity": 20, "max_waiting": 10}, environ={}).capacity == 20
    assert load({"checkout_guard": "lock", "max_waiting": 29}, environ={}).max_waiting == 29
    # unsafe has no limit to add up; the door in Admission keeps the threads free instead
    assert load({"checkout_guard": "unsafe", "max_waiting": 100}, environ={}).max_waiting == 100
