"""The verdict on hand-made numbers: Jepsen's counter and bank checks, and their edges."""

import json

import pytest

from loadtests.options import make_plan
from loadtests.tally import Tally, settle
from loadtests.verdict import judge, render


def deposits(account="acc-00", sent=0, ok=0, failed=0, amount=1) -> dict:
    tally = Tally()
    for field, count in (("sent", sent), ("ok", ok), ("failed", failed)):
        tally.add("deposit", account, field, count)
        tally.add("deposit", account, f"{field}_amount", count * amount)
    return tally.snapshot()


def bank(**balances) -> dict:
    return {"balances": {k.replace("_", "-"): v for k, v in balances.items()}}


def test_lost_updates_are_counted_in_deposits_and_percent():
    verdict = judge(deposits(sent=100, ok=100), bank(acc_00=1000), bank(acc_00=1020), unit_amount=1)
    section = verdict["deposits"]
    assert verdict["ok"] is False
    assert section["acknowledged_amount"] == section["attempted_amount"] == 100
    assert section["balance_change"] == 20
    assert section["lost_updates"] == section["lost_deposits"] == 80
    assert section["lost_percent"] == 80.0
    assert verdict["anomalies"] == ["deposits: lost 80 of 100 acknowledged deposits (80.0 %)"]
    assert "lost 80 of 100 acknowledged deposits (80.0 %)" in render(verdict)


def test_lost_updates_of_unequal_amounts_are_told_in_cents_and_thousands_are_grouped():
    verdict = judge(deposits(sent=10_240, ok=10_240, amount=3), bank(acc_00=0), bank(acc_00=3 * 2_117))
    assert verdict["deposits"]["lost_updates"] == 3 * 8_123
    assert verdict["anomalies"] == ["deposits: lost 24,369 of 30,720 acknowledged cents of deposits (79.3 %)"]


def test_a_change_between_acknowledged_and_attempted_is_fine():
    # 10 sent, 8 acknowledged, 2 without an answer: 8, 9 or 10 are all possible outcomes
    for change in (8, 9, 10):
        verdict = judge(deposits(sent=10, ok=8), bank(acc_00=0), bank(acc_00=change), unit_amount=1)
        assert verdict["ok"], (change, verdict["anomalies"])
        assert verdict["deposits"]["lost_updates"] == 0


def test_a_definite_failure_narrows_the_bounds():
    # 10 sent, 8 acknowledged, 2 refused (4xx or lock timeout): exactly 8 may have happened
    verdict = judge(deposits(sent=10, ok=8, failed=2), bank(acc_00=0), bank(acc_00=9), unit_amount=1)
    assert verdict["deposits"]["attempted_amount"] == 8
    assert verdict["deposits"]["applied_twice"] == 1
    assert "applied twice" in verdict["anomalies"][0]


def test_an_untouched_account_that_moved_is_flagged():
    verdict = judge(deposits(sent=5, ok=5), bank(acc_00=0, acc_01=0), bank(acc_00=5, acc_01=7))
    assert verdict["deposits"]["per_account"]["acc-01"]["applied_twice"] == 7
    assert verdict["ok"] is False


def test_the_verdict_says_when_the_server_counts_disagree_with_the_clients():
    before = {**bank(acc_00=0), "stats": {"deposits": {"acknowledged_amount": 0, "lost_updates": 0}}}
    after = {**bank(acc_00=100), "stats": {"deposits": {"acknowledged_amount": 60, "lost_updates": 0}}}
    verdict = judge(deposits(sent=100, ok=100), before, after)
    assert verdict["ok"] is False
    assert verdict["disagreements"] == [
        "deposits: the server counts 60 cents of acknowledged deposits; the clients saw 100 acknowledged and 0 "
        "without an answer"
    ]
    agreeing = {**after, "stats": {"deposits": {"acknowledged_amount": 100, "lost_updates": 0}}}
    assert judge(deposits(sent=100, ok=100), before, agreeing)["ok"]


def test_checkout_peak_above_capacity_and_oversell_fail_rejections_do_not():
    tally = Tally()
    tally.add("checkout", "widget", "sent", 50)
    tally.add("checkout", "widget", "ok", 30)
    tally.add("checkout", "widget", "ok_quantity", 30)
    tally.add("checkout", "widget", "rejected", 20)
    stats = {"capacity": 8, "peak_in_flight": 8, "admitted": 30, "rejected": 20, "oversold": 0}
    settings = {"checkout_guard": "semaphore"}
    before = {"stats": {"checkout": {"admitted": 0, "rejected": 0, "oversold": 0}}}
    after = {"stats": {"checkout": stats, "settings": settings}}
    verdict = judge(tally.snapshot(), before, after)
    assert verdict["ok"], verdict["anomalies"]
    assert {k: verdict["checkout"][k] for k in ("capacity", "peak_in_flight", "admitted", "rejected", "oversold")} == {
        "capacity": 8,
        "peak_in_flight": 8,
        "admitted": 30,
        "rejected": 20,
        "oversold": 0,
    }
    overloaded = {"stats": {"checkout": {**stats, "peak_in_flight": 24, "oversold": 3}, "settings": settings}}
    verdict = judge(tally.snapshot(), before, overloaded)
    assert verdict["anomalies"] == [
        "checkout: 24 checkouts were in flight at once, above the capacity of 8",
        "checkout: oversold 3 units",
    ]


def test_clients_sold_beyond_the_stock_even_if_the_server_says_nothing():
    tally = Tally()
    tally.add("checkout", "flash-sale", "sent", 110)
    tally.add("checkout", "flash-sale", "ok", 104)
    tally.add("checkout", "flash-sale", "ok_quantity", 104)
    tally.add("checkout", "flash-sale", "out_of_stock", 6)
    verdict = judge(tally.snapshot(), {"stock": {"flash-sale": 100}}, {"stats": {}})
    assert verdict["checkout"]["oversold"] == 4
    assert "checkout: oversold 4 units" in verdict["anomalies"]
    assert any("no checkout section" in note for note in verdict["notes"])


def transfers(committed=10, deadlocks=0, reads=0, wrong=0) -> dict:
    tally = Tally()
    tally.add("transfer", "all", "sent", committed + deadlocks)
    tally.add("transfer", "all", "committed", committed)
    tally.add("transfer", "all", "deadlocks", deadlocks)
    tally.add("leg", "acc-00", "out_sent", committed + deadlocks)
    tally.add("leg", "acc-00", "out_ok", committed)
    tally.add("leg", "acc-00", "out_failed", deadlocks)
    tally.add("leg", "acc-01", "in_sent", committed + deadlocks)
    tally.add("leg", "acc-01", "in_ok", committed)
    tally.add("leg", "acc-01", "in_failed", deadlocks)
    tally.add("audit", "all", "reads", reads)
    tally.add("audit", "all", "wrong_total", wrong)
    return tally.snapshot()


def test_transfers_that_conserve_money_pass():
    audit = {"total": 200, "expected_total": 200, "negative_accounts": [], "consistent": True}
    verdict = judge(transfers(reads=5), bank(acc_00=100, acc_01=100), {**bank(acc_00=90, acc_01=110), "audit": audit})
    assert verdict["ok"], verdict["anomalies"]
    section = verdict["transfers"]
    assert (section["committed"], section["total_conserved"], section["negative_balances"]) == (10, True, 0)
    assert section["wrong_total_reads"] == 0


def test_transfers_that_destroy_money_deadlock_or_read_wrong_totals_fail():
    audit = {"total": 170, "expected_total": 200, "negative_accounts": ["acc-00"], "consistent": False}
    after = {**bank(acc_00=-10, acc_01=180), "audit": audit}
    verdict = judge(transfers(deadlocks=2, reads=5, wrong=3), bank(acc_00=100, acc_01=100), after)
    assert verdict["transfers"]["total_conserved"] is False
    assert verdict["anomalies"] == [
        "transfers: money was not conserved: the bank's total moved by -30 cents",
        "transfers: 1 accounts ended below zero",
        "transfers: 3 of 5 audit reads saw a wrong total",
        "transfers: 2 transfers were deadlock victims (409), rolled back",
    ]


def test_transfers_without_audit_or_stats_sections_are_judged_from_balances():
    verdict = judge(transfers(), bank(acc_00=100, acc_01=100), {**bank(acc_00=90, acc_01=110), "stats": {}})
    assert verdict["ok"]
    assert verdict["transfers"]["total_conserved"] is True
    assert any("no /audit" in note for note in verdict["notes"])
    assert any("no transfers section" in note for note in verdict["notes"])


def test_balances_that_cannot_be_read_fail_rather_than_pass():
    verdict = judge(deposits(sent=5, ok=5), {}, {})
    assert verdict["ok"] is False
    assert "could not be read" in verdict["anomalies"][0]


def test_tallies_of_several_processes_merge_by_addition():
    master, worker_a, worker_b = Tally(), Tally(), Tally()
    worker_a.add("deposit", "acc-00", "ok_amount", 3)
    worker_b.add("deposit", "acc-00", "ok_amount", 4)
    master.merge(worker_a.drain())
    master.merge(worker_b.drain())
    master.merge(worker_a.drain())  # a second drain is empty: nothing counted twice
    assert master.snapshot() == {"deposit/acc-00/ok_amount": 7}
    json.dumps(master.snapshot())  # travels in Locust's report as plain data


def retried(account="acc-00", logical=10, ok=10, retries=10, timeouts=10, replayed=0, keyed=True) -> dict:
    """A retrying client's counts: `logical` one-cent deposits, each counted once however often retried."""
    tally = Tally()
    tally.merge(deposits(account, sent=logical, ok=ok))
    tally.add("deposit", account, "retries", retries)
    tally.add("deposit", account, "timeouts", timeouts)
    tally.add("deposit", account, "replayed", replayed)
    if not keyed:
        tally.add("deposit", account, "keyless_retries", retries)
        tally.add("deposit", account, "keyless_retry_amount", retries)
    return tally.snapshot()


def test_keyed_retries_that_replay_apply_nothing_twice_and_are_counted():
    stats = {"deposits": {"acknowledged_amount": 0}}
    after = {**bank(acc_00=10), "stats": {"deposits": {"acknowledged_amount": 10}}}
    verdict = judge(retried(replayed=10), {**bank(acc_00=0), "stats": stats}, after, unit_amount=1)
    assert verdict["ok"], verdict["anomalies"]
    section = verdict["deposits"]
    assert (section["attempted_amount"], section["balance_change"], section["applied_twice"]) == (10, 10, 0)
    assert (section["retries"], section["timeouts"], section["replayed"], section["keyless_retries"]) == (10, 10, 10, 0)
    assert "retries 10 (all keyed) after 10 timeouts, 10 answered by replay" in render(verdict)


def test_keyless_retries_that_apply_a_timed_out_deposit_again_are_named_as_the_cause():
    # 10 deposits, each timed out once (the server applied it anyway) and retried once: 20 cents moved
    stats = {"deposits": {"acknowledged_amount": 0}}
    after = {**bank(acc_00=20), "stats": {"deposits": {"acknowledged_amount": 20}}}
    verdict = judge(retried(keyed=False), {**bank(acc_00=0), "stats": stats}, after, unit_amount=1)
    section = verdict["deposits"]
    assert verdict["ok"] is False
    assert (section["attempted_amount"], section["balance_change"], section["applied_twice"]) == (10, 20, 10)
    assert section["keyless_retries"] == 10
    # the server saw 20 deposits where the clients counted 10: the keyless retries explain it, no disagreement
    assert verdict["disagreements"] == []
    assert verdict["anomalies"] == [
        "deposits: acc-00 grew by 10 cents more than every attempted deposit could explain: something was applied "
        "twice; 10 retries without an Idempotency-Key (after 10 timeouts) are the likely cause: a deposit whose "
        "client timed out may still have been applied, and its retry applied it again"
    ]
    assert "retries 10 (10 without an Idempotency-Key) after 10 timeouts" in render(verdict)


def test_keyless_retries_do_not_excuse_money_beyond_what_they_could_apply():
    # the same run, but the server counts more deposits than every try together
    stats = {"deposits": {"acknowledged_amount": 0}}
    after = {**bank(acc_00=25), "stats": {"deposits": {"acknowledged_amount": 25}}}
    verdict = judge(retried(keyed=False), {**bank(acc_00=0), "stats": stats}, after, unit_amount=1)
    assert verdict["disagreements"] == [
        "deposits: the server counts 25 cents of acknowledged deposits; the clients saw 10 acknowledged and 0 "
        "without an answer, plus 10 cents retried without an Idempotency-Key"
    ]


def test_money_applied_twice_without_keyless_retries_blames_nothing_in_particular():
    verdict = judge(retried(replayed=10), bank(acc_00=0), bank(acc_00=12), unit_amount=1)
    assert verdict["deposits"]["applied_twice"] == 2
    assert verdict["anomalies"] == [
        "deposits: acc-00 grew by 2 cents more than every attempted deposit could explain: something was applied twice"
    ]


def test_a_logical_deposit_settles_on_its_tries():
    assert settle(["unanswered", "unanswered", "ok"], keyed=False) == "ok"
    assert settle(["refused"], keyed=False) == "failed"
    assert settle(["unanswered", "unanswered"], keyed=True) == "maybe"
    # a refusal after a timeout: with a key the server ran the key once, so nothing was applied;
    # without, the timed-out try may have been applied on its own
    assert settle(["unanswered", "refused"], keyed=True) == "failed"
    assert settle(["unanswered", "refused"], keyed=False) == "maybe"
    assert settle([], keyed=True) == "maybe"  # stopped before the first try answered


def test_plan_from_options():
    class Options:
        accounts, amounts, batch_size, skus = "all", "1,5", 2, "widget"

    plan = make_plan(Options, ["acc-00", "acc-01"])
    assert plan.accounts == ("acc-00", "acc-01")
    assert plan.amounts == (1, 5)
    assert plan.unit_amount is None
    assert (plan.request_timeout, plan.retries, plan.idempotency_keys) == (0.1, 3, True)  # options absent
    Options.amounts = "2"
    assert make_plan(Options, []).unit_amount == 2
    Options.request_timeout, Options.retries, Options.idempotency_keys = "0.05", 5, False
    plan = make_plan(Options, [])
    assert (plan.request_timeout, plan.retries, plan.idempotency_keys) == (0.05, 5, False)
    Options.request_timeout = 0
    with pytest.raises(ValueError, match="--request-timeout"):
        make_plan(Options, [])


def server(balance, lost):
    return {**bank(acc_00=balance), "stats": {"deposits": {"lost_updates": lost}}}


def race(number, sentence, erased=1):
    write = {"request_id": "x", "operation": "deposit", "thread": "T", "pid": 1, "delta": 1}
    return {"id": number, "sentence": sentence, "erased": [write] * erased, "revived": [], "complete": True}


def test_the_verdict_quotes_the_newest_simple_erasure_the_server_named():
    races = [race(7, "seventh, two at once", erased=2), race(6, "deposit 3f2a on T read 5 (v1): its 1 cent is gone.")]
    before = {**server(0, lost=0), "races": {"erasures": 1, "lost_updates": 1, "races": [race(5, "old")]}}
    after = {**server(97, lost=3), "races": {"erasures": 3, "lost_updates": 4, "races": [*races, race(5, "old")]}}
    verdict = judge(deposits(sent=100, ok=100), before, after, unit_amount=1)
    section = verdict["races"]
    assert section["erasures"] == 2 and section["lost_updates"] == 3 == section["server_lost_updates"]
    assert section["example"] == races[1]["sentence"] and section["example_race"]["id"] == 6
    text = render(verdict)
    assert "races      the server named 2 writes that erased others, 3 cents in all (/debug/races)" in text
    assert "deposit 3f2a on T read 5 (v1): its 1 cent is gone." in text
    assert not [note for note in verdict["notes"] if "/debug/races" in note]


def test_the_verdict_notes_when_the_named_cents_and_lost_updates_differ_or_the_server_has_no_races():
    after = {**server(98, lost=2), "races": {"erasures": 1, "lost_updates": 1, "races": [race(1, "one")]}}
    verdict = judge(deposits(sent=100, ok=100), bank(acc_00=0), after, unit_amount=1)
    assert any("names 1 lost cents, its /stats counts 2" in note for note in verdict["notes"])
    older = judge(deposits(sent=10, ok=10), bank(acc_00=0), bank(acc_00=10), unit_amount=1)
    assert "races" not in older and "the server has no /debug/races: nobody named who erased whom" in older["notes"]
    quiet = {**bank(acc_00=10), "races": {"erasures": 0, "lost_updates": 0, "races": []}}
    assert "races      no write erased another" in render(judge(deposits(sent=10, ok=10), bank(acc_00=0), quiet))
