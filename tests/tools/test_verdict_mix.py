"""The verdict when user classes run together, on hand-made numbers: each anomaly against its cause.

Every pair of the five scenario classes of the spec runs under safe settings
and under each unsafe one. A hand-made run adds up what each class would
leave behind: its counts, and what it did to the balances and the stock
under those settings (a racing deposit loses cents, an unlocked transfer
loses a credit, an audit reads a wrong total while something unguarded
writes). The verdict must then name exactly the unsafe setting's own
scenario, and only if that scenario ran.
"""

from collections import Counter
from itertools import combinations

import pytest

from loadtests import keys as k
from loadtests.tally import Tally
from loadtests.verdict import judge, render

SAFE = {"deposit_guard": "rlock", "deposit_permits": 1, "checkout_guard": "semaphore", "transfer_policy": "ordered"}
INITIAL, FLASH_STOCK = 1_000, 40
CLASSES = ("DepositUser", "BatchDepositUser", "CheckoutUser", "TransferUser", "AuditUser")

#: Each unsafe setting, and the scenario (anomaly prefix) that owns its anomalies when its classes run.
UNSAFE = {
    "deposit_guard unsafe": ({"deposit_guard": "unsafe"}, "deposits", {"DepositUser", "BatchDepositUser"}),
    "deposit semaphore(4)": (
        {"deposit_guard": "semaphore", "deposit_permits": 4},
        "deposits",
        {"DepositUser", "BatchDepositUser"},
    ),
    "deposit_guard lock": ({"deposit_guard": "lock"}, "deposits", {"BatchDepositUser"}),
    "checkout_guard unsafe": ({"checkout_guard": "unsafe"}, "checkout", {"CheckoutUser"}),
    "transfer_policy unsafe": ({"transfer_policy": "unsafe"}, "transfers", {"TransferUser"}),
    "transfer_policy naive": ({"transfer_policy": "naive"}, "transfers", {"TransferUser"}),
    "transfer_policy release-first": ({"transfer_policy": "release-first"}, "transfers", {"TransferUser+AuditUser"}),
}


class HandMadeRun:
    """What some user classes leave behind under some settings."""

    def __init__(self, classes, settings):
        self.classes, self.settings = set(classes), settings
        self.tally, self.change, self.sold = Tally(), Counter(), Counter()
        for name in sorted(self.classes):
            getattr(self, name)()

    @property
    def deposits_race(self) -> bool:
        guard = self.settings["deposit_guard"]
        return guard == "unsafe" or (guard == "semaphore" and self.settings["deposit_permits"] > 1)

    def DepositUser(self):
        for account in ("acc-00", "acc-01"):
            for field in (k.SENT, k.OK):
                self.tally.add(k.DEPOSIT, account, field, 100)
                self.tally.add(k.DEPOSIT, account, k.AMOUNT_OF[field], 100)
            self.change[account] += 80 if self.deposits_race else 100

    def BatchDepositUser(self):
        self.tally.add(k.BATCH, "acc-00", k.SENT, 10)
        self.tally.add(k.DEPOSIT, "acc-00", k.SENT, 30)
        self.tally.add(k.DEPOSIT, "acc-00", k.SENT_AMOUNT, 30)
        if self.settings["deposit_guard"] == "lock":  # the nested acquire times out: 503, nothing applied
            self.tally.add(k.BATCH, "acc-00", k.SELF_DEADLOCK, 10)
            self.tally.add(k.DEPOSIT, "acc-00", k.FAILED, 30)
            self.tally.add(k.DEPOSIT, "acc-00", k.FAILED_AMOUNT, 30)
            return
        self.tally.add(k.BATCH, "acc-00", k.OK, 10)
        self.tally.add(k.DEPOSIT, "acc-00", k.OK, 30)
        self.tally.add(k.DEPOSIT, "acc-00", k.OK_AMOUNT, 30)
        self.change["acc-00"] += 24 if self.deposits_race else 30

    def CheckoutUser(self):
        sold = 45 if self.settings["checkout_guard"] == "unsafe" else FLASH_STOCK
        self.tally.add(k.CHECKOUT, "flash-sale", k.SENT, 50)
        self.tally.add(k.CHECKOUT, "flash-sale", k.OK, sold)
        self.tally.add(k.CHECKOUT, "flash-sale", k.OK_QUANTITY, sold)
        self.tally.add(k.CHECKOUT, "flash-sale", k.OUT_OF_STOCK, 50 - sold)

    def TransferUser(self):
        deadlocks = 5 if self.settings["transfer_policy"] == "naive" else 0
        for source, target in (("acc-00", "acc-01"), ("acc-01", "acc-00")):
            self.tally.add(k.TRANSFER, k.ALL, k.SENT, 20)
            self.tally.add(k.TRANSFER, k.ALL, k.COMMITTED, 20 - deadlocks)
            self.tally.add(k.TRANSFER, k.ALL, k.DEADLOCKS, deadlocks)
            for leg, account in (("out", source), ("in", target)):
                self.tally.add(k.LEG, account, f"{leg}_sent", 20)
                self.tally.add(k.LEG, account, f"{leg}_ok", 20 - deadlocks)
                self.tally.add(k.LEG, account, f"{leg}_failed", deadlocks)
        if self.settings["transfer_policy"] == "unsafe":
            self.change["acc-01"] -= 3  # credits written over by a concurrent transfer: money destroyed

    def AuditUser(self):
        deposits = self.deposits_race and self.classes & {"DepositUser", "BatchDepositUser"}
        in_flight = self.settings["transfer_policy"] in ("unsafe", "release-first") and "TransferUser" in self.classes
        self.tally.add(k.AUDIT, k.ALL, k.READS, 10)
        self.tally.add(k.AUDIT, k.ALL, k.WRONG_TOTAL, 10 if deposits or in_flight else 0)

    def verdict(self) -> dict:
        balances = {f"acc-{n:02}": INITIAL for n in range(4)}
        before = {"balances": balances, "config": self.settings, "stock": {"flash-sale": FLASH_STOCK}}
        after = {
            "balances": {name: balance + self.change[name] for name, balance in balances.items()},
            "config": self.settings,
            "stats": {},
        }
        return judge(self.tally.snapshot(), before, after, unit_amount=1)


def scenarios_blamed(verdict: dict) -> set[str]:
    return {sentence.split(":")[0] for sentence in verdict["anomalies"]}


PAIRS = list(combinations(CLASSES, 2))


@pytest.mark.parametrize("pair", PAIRS, ids=["+".join(pair) for pair in PAIRS])
def test_every_pair_under_safe_settings_is_ok(pair):
    verdict = HandMadeRun(pair, SAFE).verdict()
    assert verdict["ok"], verdict["anomalies"]
    assert "verdict    OK" in render(verdict)


@pytest.mark.parametrize("pair", PAIRS, ids=["+".join(pair) for pair in PAIRS])
@pytest.mark.parametrize("setting", UNSAFE, ids=list(UNSAFE))
def test_every_pair_under_an_unsafe_setting_gets_exactly_its_own_anomalies(pair, setting):
    changes, scenario, culprits = UNSAFE[setting]
    ran = set(pair)
    guilty = any(set(culprit.split("+")) <= ran for culprit in culprits)
    verdict = HandMadeRun(pair, {**SAFE, **changes}).verdict()
    assert scenarios_blamed(verdict) == ({scenario} if guilty else set()), verdict["anomalies"]


def test_the_issue_run_blames_the_deposits_not_the_transfers():
    """`--guard unsafe --transfer-policy ordered`, every class: the lost deposits move the total, not transfers."""
    verdict = HandMadeRun(CLASSES, {**SAFE, "deposit_guard": "unsafe", "checkout_guard": "unsafe"}).verdict()
    assert scenarios_blamed(verdict) == {"deposits", "checkout"}
    transfers = verdict["transfers"]
    assert transfers["total_conserved"] is True
    assert transfers["total_change"] == 2 * 80 + 24 and transfers["total_error"] == 0
    assert (transfers["wrong_total_reads"], transfers["audit_wrong_total"]) == (0, 10)
    assert transfers["wrong_total_blamed_on"] == "deposits"
    assert verdict["deposits"]["lost_updates"] == 2 * 20 + 6
    assert verdict["deposits"]["wrong_total_reads"] == 10
    assert "audits 10 of which 10 saw a wrong total (blamed on deposits)" in render(verdict)


def test_money_destroyed_by_unlocked_transfers_is_not_a_lost_deposit():
    verdict = HandMadeRun(("DepositUser", "TransferUser"), {**SAFE, "transfer_policy": "unsafe"}).verdict()
    assert verdict["deposits"]["lost_updates"] == 0
    assert verdict["deposits"]["per_account"]["acc-01"]["blamed_on"] == "transfers"
    assert verdict["anomalies"] == [
        "transfers: money was not conserved: the bank's total moved by +197 cents, -3 beyond what the deposits explain"
    ]
    assert verdict["anomaly_counts"] == [3]  # three one-cent transfers' worth, for the web UI's failure ratio


def test_accounts_both_wrote_unguarded_are_one_anomaly_naming_both():
    settings = {**SAFE, "deposit_guard": "unsafe", "transfer_policy": "unsafe"}
    verdict = HandMadeRun(("DepositUser", "TransferUser", "AuditUser"), settings).verdict()
    assert verdict["anomalies"] == [
        "deposits and transfers: acc-00, acc-01 ended 43 cents short and 0 cents over what the clients did to them, "
        "and both wrote them unguarded (deposit_guard unsafe, transfer_policy unsafe): either race explains it",
        "deposits and transfers: 10 of 10 audit reads saw a wrong total: deposits under deposit_guard unsafe and "
        "transfers under transfer_policy unsafe both let an audit read between a change and its record",
    ]
    assert verdict["transfers"]["total_conserved"] is False
    assert verdict["deposits"]["lost_updates"] == 43  # not told as the deposits' own: either could have lost it


def test_a_deposit_that_writes_over_a_transfer_debit_is_the_deposits_fault():
    run = HandMadeRun(("DepositUser", "TransferUser"), {**SAFE, "deposit_guard": "unsafe"})
    run.change["acc-00"] += 25  # 20 lost deposits, and 5 debits erased by deposits that read before them
    verdict = run.verdict()
    assert scenarios_blamed(verdict) == {"deposits"}
    assert verdict["deposits"]["applied_twice"] == 5
    assert any("wrote over a transfer's debit" in sentence for sentence in verdict["anomalies"])


def test_a_transfer_without_an_answer_is_allowed_for_when_deposits_have_gaps():
    """A transfer cut off mid-run may have landed or not; the deposits' gaps were measured around it."""
    run = HandMadeRun(("DepositUser", "TransferUser"), {**SAFE, "deposit_guard": "unsafe"})
    run.tally.add(k.TRANSFER, k.ALL, k.SENT)
    run.tally.add(k.LEG, "acc-00", k.OUT_SENT, 4)
    run.tally.add(k.LEG, "acc-01", k.IN_SENT, 4)
    run.change["acc-00"] -= 4  # it committed after its client was stopped
    run.change["acc-01"] += 4
    verdict = run.verdict()
    assert scenarios_blamed(verdict) == {"deposits"}, verdict["anomalies"]
    assert verdict["transfers"]["total_conserved"] is True


def test_the_servers_own_count_says_when_it_holds_the_transfers_losses():
    run = HandMadeRun(("DepositUser", "TransferUser"), {**SAFE, "transfer_policy": "unsafe"})
    verdict = run.verdict()
    verdict["deposits"]["server"] = {"acknowledged": 200, "acknowledged_amount": 200, "lost_updates": 3}
    assert "the server's own count of lost updates: 3 cents (lost transfer legs included)" in render(verdict)
    alone = HandMadeRun(("DepositUser",), {**SAFE, "deposit_guard": "unsafe"}).verdict()
    alone["deposits"]["server"] = {"acknowledged": 200, "acknowledged_amount": 200, "lost_updates": 40}
    assert "the server's own count of lost updates: 40 cents\n" in render(alone)
