"""A customer's two accounts and the rule over both: write skew, with real threads, on both stores.

Each withdrawal reads both balances, checks their sum covers it, and debits
its own account. Two of them on the two accounts of one customer, both
inside the check at once, both pass: the sum goes below zero with no update
lost. The memory tests make the two meet right after their check read
(`MeetingStore`); the postgres tests widen the window instead, and the
guards that cover both rows (or a SERIALIZABLE transaction) refuse one.
"""

from functools import partial

import pytest

from bankapp.lab.customers import CombinedFundsShort, NotTheCustomersAccount, UnknownCustomer, accounts_of, customer_ids
from bankapp.lab.lab import Lab

from ..harness import MeetingStore, make_lab, run_together

#: The two withdrawals meet just after each read the second account, so both checked the same sum.
CheckersMeet = partial(MeetingStore, on="read", accounts={"acc-01"}, once=True, timeout=1.0)
#: 150,000 from each of two accounts of 100,000: each alone is covered by the pair's 200,000; both are not.
AMOUNT = 150_000


def withdraw_from_both(first: Lab, second: Lab | None = None) -> list:
    second = second or first
    return run_together(
        [
            lambda: first.bank.customer_withdraw("cust-00", "acc-00", AMOUNT),
            lambda: second.bank.customer_withdraw("cust-00", "acc-01", AMOUNT),
        ],
        expect=(CombinedFundsShort,),  # the refusal a guard on both accounts gives the second
    )


def combined(lab: Lab) -> int:
    return lab.bank.balance("acc-00") + lab.bank.balance("acc-01")


def test_customers_own_two_accounts_each():
    ids = [f"acc-{i:02d}" for i in range(16)]
    assert customer_ids(ids) == [f"cust-{i:02d}" for i in range(8)]
    assert accounts_of(ids, "cust-03") == ("acc-06", "acc-07")
    assert customer_ids(ids[:5]) == ["cust-00", "cust-01"]  # the odd account out has no customer
    with pytest.raises(UnknownCustomer):
        accounts_of(ids, "cust-08")


def test_one_account_may_go_below_zero_while_the_pair_covers_it():
    lab = make_lab()
    assert lab.bank.customer_withdraw("cust-00", "acc-01", AMOUNT) == (-50_000, 200_000)
    with pytest.raises(CombinedFundsShort, match="hold 50000 cents together"):
        lab.bank.customer_withdraw("cust-00", "acc-00", AMOUNT)
    with pytest.raises(NotTheCustomersAccount, match="acc-02"):
        lab.bank.customer_withdraw("cust-00", "acc-02", 1)
    assert combined(lab) == 50_000
    assert lab.stats()["deposits"]["rejected"]["insufficient_funds"] == 1


def test_unguarded_both_pass_the_check_and_the_sum_goes_below_zero():
    lab = make_lab(store=CheckersMeet, deposit_guard="unsafe")
    results = withdraw_from_both(lab)
    assert results == [(-50_000, 200_000), (-50_000, 200_000)], results
    assert combined(lab) == -100_000
    assert lab.stats()["deposits"]["lost_updates"] == 0  # nothing overwritten: write skew, not a lost update


@pytest.mark.parametrize("guard", ["lock", "rlock"])
def test_a_guard_on_both_accounts_refuses_the_second(guard):
    lab = make_lab(store=CheckersMeet, deposit_guard=guard)
    results = withdraw_from_both(lab)
    refused = [r for r in results if isinstance(r, CombinedFundsShort)]
    assert len(refused) == 1, results
    assert combined(lab) == 50_000


def test_the_route(client):
    answer = client.post("/customers/cust-00/withdraw", json={"account": "acc-01", "amount": AMOUNT})
    assert answer.status_code == 200
    assert answer.get_json() == {
        "customer": "cust-00",
        "account": "acc-01",
        "balance": -50_000,
        "checked_combined": 200_000,
    }
    shown = client.get("/customers/cust-00").get_json()
    assert shown["combined"] == 50_000 and [a["id"] for a in shown["accounts"]] == ["acc-00", "acc-01"]
    short = client.post("/customers/cust-00/withdraw", json={"account": "acc-00", "amount": AMOUNT})
    assert short.status_code == 409 and short.get_json()["combined"] == 50_000
    assert short.mimetype == "application/problem+json"
    other = client.post("/customers/cust-00/withdraw", json={"account": "acc-02", "amount": 1})
    assert other.status_code == 422 and other.get_json()["accounts"] == ["acc-00", "acc-01"]
    assert client.post("/customers/cust-42/withdraw", json={"account": "acc-00", "amount": 1}).status_code == 404
    assert client.get("/customers/cust-42").status_code == 404
    for bad in ({"account": "acc-00"}, {"account": "acc-00", "amount": 0}, {"amount": 5}, {"account": 1, "amount": 5}):
        assert client.post("/customers/cust-00/withdraw", json=bad).status_code == 422, bad
    assert client.get("/customers/cust-00").get_json()["combined"] == 50_000  # the refusals changed nothing


WINDOW = {"race_window_ms": 500}


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("guard", "skews"),
    [
        ("unsafe", True),
        ("lock", False),  # one process: both accounts' Python locks
        ("row-lock", False),  # SELECT ... FOR UPDATE of both rows
        ("advisory-lock", False),
        ("serializable", False),  # 40001 for one, retried, then refused by the rule
    ],
)
def test_two_withdrawals_on_the_postgres_store(make_pg_lab, guard, skews):
    lab = make_pg_lab(deposit_guard=guard, **WINDOW)
    results = withdraw_from_both(lab)
    if skews:
        assert all(isinstance(r, tuple) for r in results), results
        assert combined(lab) == -100_000
    else:
        assert sum(isinstance(r, CombinedFundsShort) for r in results) == 1, results
        assert combined(lab) == 50_000
    assert lab.stats()["deposits"]["lost_updates"] == 0
    if guard == "serializable":
        assert lab.stats()["deposits"]["serialization_retries"] >= 1


@pytest.mark.postgres
def test_a_python_lock_in_two_workers_does_not_keep_the_rule(make_pg_lab):
    first = make_pg_lab(deposit_guard="lock", **WINDOW)
    second = make_pg_lab(join=True)
    results = withdraw_from_both(first, second)
    assert all(isinstance(r, tuple) for r in results), results
    assert combined(first) == -100_000


@pytest.mark.postgres
def test_atomic_update_checks_and_debits_in_one_statement(make_pg_lab):
    lab = make_pg_lab(deposit_guard="atomic-update")
    assert lab.bank.customer_withdraw("cust-00", "acc-01", AMOUNT) == (-50_000, 200_000)
    with pytest.raises(CombinedFundsShort):
        lab.bank.customer_withdraw("cust-00", "acc-00", AMOUNT)
    assert combined(lab) == 50_000 and lab.stats()["deposits"]["lost_updates"] == 0
