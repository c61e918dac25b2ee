"""Where the bank's money went, account by account, and which scenario is to blame for what is missing.

Deposits and transfers write the same balances, so neither check can look at
its own scenario alone. Per account the clients know what they did:

- deposits added at least the acknowledged sum and at most the attempted
  sum (Jepsen's counter);
- transfer legs moved the acknowledged ins minus the acknowledged outs,
  give or take the legs that got no answer.

A balance change outside those bounds is a *gap*: money missing (below) or
appearing from nowhere (above). It is the fault of a scenario whose settings
let it write unguarded:

- deposits, under a guard that does not exclude (`unsafe`, a semaphore of
  more than one permit): they race with each other, and they write without
  the account lock that transfers take, so a deposit can erase a transfer's
  leg as well as a transfer a deposit;
- transfers, under `unsafe`, which takes no lock at all.

When exactly one of them could have made the gap, it is theirs; when both
could, it is one anomaly naming both. When neither could, something went
wrong that no setting explains, and the gap stays with the account's
deposits (money applied twice by retries without an `Idempotency-Key` is
such a case), or else its transfers.

Audits that read a wrong total are blamed the same way: deposits under a
guard that does not exclude write without the account lock the audit reads
under (and their lost updates stay missing from every later total);
transfers under `unsafe` or `release-first` let an audit see money in flight.

Transfers move money and never make or destroy it, so the bank's total, less
the gaps already blamed on deposits, must have changed by exactly what the
deposits added.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import keys as k
from .model import Run

DEPOSITS, TRANSFERS = "deposits", "transfers"
BOTH = "deposits and transfers"


@dataclass(frozen=True)
class Suspects:
    """Which scenarios the settings in force (at the start or the end of the run) let write unguarded."""

    deposits: str = ""  # why deposits race, e.g. "deposit_guard unsafe"; "" when they cannot
    transfers: str = ""  # why transfers make or destroy money: "transfer_policy unsafe"
    in_flight: str = ""  # why an audit can see a transfer half done: "transfer_policy release-first"

    @classmethod
    def of(cls, settings_seen: list[dict]) -> Suspects:
        deposits = transfers = in_flight = ""
        for settings in settings_seen:
            guard, permits = settings.get("deposit_guard"), settings.get("deposit_permits") or 1
            if guard == "unsafe":
                deposits = "deposit_guard unsafe"
            elif guard == "semaphore" and permits > 1 and not deposits:
                deposits = f"deposit_guard semaphore with deposit_permits {permits}"
            policy = settings.get("transfer_policy")
            if policy == "unsafe":
                transfers = in_flight = "transfer_policy unsafe"
            elif policy == "release-first" and not in_flight:
                in_flight = "transfer_policy release-first"
        return cls(deposits, transfers, in_flight)


@dataclass
class Account:
    """What the clients did to one account against how its balance changed."""

    id: str
    change: int
    deposits: tuple[int, int]  # lowest and highest sum the deposits may have added
    legs: tuple[int, int]  # lowest and highest sum the transfer legs may have moved
    deposited: bool
    transferred: bool
    keyless_retries: int = 0
    owner: str | None = None  # who is to blame for the gap, if there is one

    @property
    def low(self) -> int:
        return self.deposits[0] + self.legs[0]

    @property
    def high(self) -> int:
        return self.deposits[1] + self.legs[1]

    @property
    def gap(self) -> int:
        """Cents outside the bounds: negative when money is missing, positive when it appeared."""
        return self.change - min(max(self.change, self.low), self.high)


@dataclass
class Money:
    accounts: dict[str, Account]
    unlisted: list[str]  # accounts the clients used that the server does not list
    total_change: int
    deposited: tuple[int, int]  # lowest and highest sum of every deposit
    in_flight: int  # cents of transfers that got no answer
    suspects: Suspects

    def blamed_on(self, *owners: str) -> list[Account]:
        return [account for account in self.accounts.values() if account.gap and account.owner in owners]

    def lost_and_extra(self, *owners: str) -> tuple[int, int]:
        gaps = [account.gap for account in self.blamed_on(*owners)]
        return -sum(gap for gap in gaps if gap < 0), sum(gap for gap in gaps if gap > 0)

    def transfers_error(self) -> int:
        """Cents the transfers made (+) or destroyed (-) in the bank's total, beyond the gaps blamed elsewhere.

        The gaps blamed on deposits (or on both) were measured against bounds
        that allow for transfers without an answer; up to that much of them
        may be such a transfer's money, which at rest is all there. So when
        there are such gaps, that much is given to the transfers' benefit.
        """
        blamed = sum(account.gap for account in self.blamed_on(DEPOSITS, BOTH))
        low, high = self.deposited[0] + blamed, self.deposited[1] + blamed
        error = self.total_change - min(max(self.total_change, low), high)
        slack = self.in_flight if blamed else 0
        return 0 if abs(error) <= slack else error - slack * (1 if error > 0 else -1)


def open_amount(sent: dict, ok: dict, failed: dict, key: str) -> int:
    """Sent without a definite answer: it may or may not have been applied."""
    return max(0, sent.get(key, 0) - ok.get(key, 0) - failed.get(key, 0))


def count_money(run: Run) -> Money | None:
    """Every account's change against the clients' bounds, each gap with its owner; None without balances."""
    old, new = run.before.get("balances"), run.after.get("balances")
    if old is None or new is None:
        return None
    sent, ok = run.by_subject(k.DEPOSIT, k.SENT_AMOUNT), run.by_subject(k.DEPOSIT, k.OK_AMOUNT)
    failed = run.by_subject(k.DEPOSIT, k.FAILED_AMOUNT)
    legs = {field: run.by_subject(k.LEG, field) for field in k.LEG_FIELDS}
    keyless = run.by_subject(k.DEPOSIT, k.KEYLESS_RETRIES)
    suspects = Suspects.of(run.settings_seen())
    touched = set(sent) | set(legs[k.IN_SENT]) | set(legs[k.OUT_SENT])
    accounts: dict[str, Account] = {}
    for name in sorted(set(new) & set(old)):
        moved = legs[k.IN_OK].get(name, 0) - legs[k.OUT_OK].get(name, 0)
        open_in = open_amount(legs[k.IN_SENT], legs[k.IN_OK], legs[k.IN_FAILED], name)
        open_out = open_amount(legs[k.OUT_SENT], legs[k.OUT_OK], legs[k.OUT_FAILED], name)
        account = Account(
            id=name,
            change=new[name] - old[name],
            deposits=(ok.get(name, 0), ok.get(name, 0) + open_amount(sent, ok, failed, name)),
            legs=(moved - open_out, moved + open_in),
            deposited=name in sent,
            transferred=name in legs[k.IN_SENT] or name in legs[k.OUT_SENT],
            keyless_retries=keyless.get(name, 0),
        )
        account.owner = owner(account, suspects, run.ran_deposits) if account.gap else None
        accounts[name] = account
    unlisted = sorted(name for name in touched if name not in accounts)
    return Money(
        accounts=accounts,
        unlisted=unlisted,
        total_change=sum(account.change for account in accounts.values()),
        deposited=(sum(a.deposits[0] for a in accounts.values()), sum(a.deposits[1] for a in accounts.values())),
        in_flight=sum(open_amount(legs[k.OUT_SENT], legs[k.OUT_OK], legs[k.OUT_FAILED], name) for name in accounts),
        suspects=suspects,
    )


def owner(account: Account, suspects: Suspects, ran_deposits: bool) -> str:
    """Who made this account's gap: whoever could, by the settings; else its deposits, else its transfers."""
    deposits = account.deposited and bool(suspects.deposits or (account.gap > 0 and account.keyless_retries))
    transfers = account.transferred and bool(suspects.transfers)
    if deposits and transfers:
        return BOTH
    if deposits or transfers:
        return DEPOSITS if deposits else TRANSFERS
    if account.deposited or (ran_deposits and not account.transferred):
        return DEPOSITS
    return TRANSFERS


def audit_owner(run: Run, suspects: Suspects) -> str:
    """Who made audits read a wrong total: whoever could, by the settings; else the transfers' check fails."""
    deposits = run.ran_deposits and bool(suspects.deposits)
    transfers = run.ran_transfers and bool(suspects.in_flight)
    if deposits and transfers:
        return BOTH
    return DEPOSITS if deposits else TRANSFERS
