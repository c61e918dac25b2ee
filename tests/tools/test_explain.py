"""compare's sentences are read from the row's numbers, never assumed from the guard's name."""

from bankapp.compare.explain import explain


def deposit_row(guard: str, lost: int, permits: int | None = None) -> dict:
    settings = {"deposit_guard": guard.split("(")[0]}
    if permits is not None:
        settings["deposit_permits"] = permits
    return {"scenario": "deposit", "guard": guard, "settings": settings, "acknowledged": 1000, "lost_updates": lost}


def transfer_row(guard: str, deadlocks: int, conserved: bool | None, error: int = 0, wrong: int = 0) -> dict:
    return {
        "scenario": "transfer",
        "guard": guard,
        "deadlocks": deadlocks,
        "total_conserved": conserved,
        "total_error": error,
        "wrong_total_reads": wrong,
        "retries": 3,
    }


def test_a_semaphore_names_its_permits_from_the_settings_not_from_its_label():
    said = explain(
        {**deposit_row("sem-wide", 40, permits=3), "settings": {"deposit_guard": "semaphore", "deposit_permits": 3}}
    )
    assert said.startswith("A semaphore of 3 permits lets that many deposits interleave: 40 lost (4.0%)")


def test_a_semaphore_of_several_permits_that_lost_nothing_is_called_luck():
    said = explain(deposit_row("semaphore(4)", 0, permits=4))
    assert "none of 1,000 was lost in this run: that is luck" in said


def test_a_lock_that_lost_money_is_said_to_have_lost_it():
    assert explain(deposit_row("lock", 7)) == (
        "A per-account lock should let one deposit at a time in, yet 7 of 1,000 were lost."
    )
    assert "none of 1,000 lost" in explain(deposit_row("semaphore(1)", 0, permits=1))


def test_ordered_transfers_report_the_deadlocks_and_the_total_they_had():
    clean = explain(transfer_row("ordered", 0, True))
    assert clean == "Locks taken in account-id order break circular wait: 0 deadlocks, and the total is conserved."
    broken = explain(transfer_row("ordered", 2, False, error=-15))
    assert "2 deadlocks, and the total is off by -15 cents" in broken


def test_naive_transfers_that_did_not_deadlock_say_so():
    assert "none did in this run" in explain(transfer_row("naive", 0, True))
    assert "deadlocked 9 times" in explain(transfer_row("naive", 9, True))


def test_release_first_and_unsafe_read_their_audits():
    assert "4 audits saw money in flight" in explain(transfer_row("release-first", 0, True, wrong=4))
    assert "no audit caught money in flight" in explain(transfer_row("release-first", 0, True))
    assert "the total is off by +12 cents" in explain(transfer_row("unsafe", 0, False, error=12))
    assert "the race did not strike" in explain(transfer_row("unsafe", 0, True))


def test_a_checkout_guard_over_its_capacity_is_called_out():
    row = {
        "scenario": "checkout",
        "guard": "semaphore",
        "peak_in_flight": 9,
        "capacity": 8,
        "completed_per_s": 100.0,
        "rejected_per_s": 5.0,
        "oversold": 0,
    }
    assert "admitted OVER its limit: 9 of capacity 8" in explain(row)
    assert "admitted at most 8 of capacity 8" in explain({**row, "peak_in_flight": 8})
