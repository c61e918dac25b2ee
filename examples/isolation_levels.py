"""The bank's own lost update and write skew, stepped like PostgreSQL's isolation tester, at one isolation level.

    python examples/isolation_levels.py lost-update --database-url URL --level "read committed"
    python examples/isolation_levels.py write-skew --database-url URL --level "repeatable read" [--lock]

Two sessions (T1, T2: real connections of their own) run the bank's
read-modify-writes on its own table, `bankapp_accounts`, one step at a time
in a fixed order, as `bankapp isolation` runs Hermitage's cases; a step that
waits for a lock is shown `<waiting on T1>` and the order goes on.

- `lost-update`: two deposits into acc-00, of 5 and 7 cents, each reading
  the balance and writing the sum it computed (the `unsafe` guard's
  read-modify-write, in one transaction). Under read committed T2 waits for
  T1's row lock, then writes over it: 5 cents lost. Under repeatable read
  PostgreSQL refuses T2 (40001): retry it, as the `serializable` guard does.
- `write-skew`: customer cust-00 (acc-00 and acc-01) withdraws 150,000
  cents from each account at once; each checks (in Python, between steps)
  that the pair's sum covers it, then debits its own account. Under read
  committed and repeatable read both pass and the sum goes below zero;
  under serializable one commit is refused (40001). `--lock` reads both
  rows `FOR UPDATE`: T2 waits for T1, and at read committed then reads T1's
  debit and refuses by the rule.

The writes keep the bank's ledger columns, so `/stats` counts what happened.
Reset the bank afterwards (`bankapp lesson N`, or `POST /admin/reset`).
"""

from __future__ import annotations

import argparse
import sys

from bankapp.isolation.stepper import Done, Stepper
from bankapp.isolation.steps import Step

LEVELS = ("read committed", "repeatable read", "serializable")
AMOUNT = 150_000  # from each account of cust-00: each alone is covered by the pair, both are not


def read(session: str, ids: tuple[str, ...], lock: bool) -> Step:
    where = f"id = '{ids[0]}'" if len(ids) == 1 else f"id in ({', '.join(repr(each) for each in ids)})"
    text = f"select id, balance from bankapp_accounts where {where} order by id" + (" for update" if lock else "")
    return Step(session, text, lambda k, v: True)


def write(session: str, account: str, balance: int, counted: str) -> Step:
    """The balance the application computed, with the ledger's columns (so /stats stays exact)."""
    assignment = f"set balance = {int(balance)}"
    return Step(
        session,
        f"update bankapp_accounts {assignment}, version = version + 1, {counted} where id = '{account}' "
        "returning id, balance",
        shown=f"update bankapp_accounts {assignment} where id = '{account}'",
    )


def commit(session: str) -> Step:
    return Step(session, "commit")


def deposit(stepper: Stepper, session: str, seen: Done, amount: int) -> Done:
    """Write what the read saw plus `amount`: the application's read-modify-write."""
    counted = f"deposits = deposits + 1, deposit_amount = deposit_amount + {amount}, net = net + {amount}"
    return stepper.step(write(session, "acc-00", seen.rows[0][1] + amount, counted))


def lost_update(stepper: Stepper, level: str, lock: bool) -> list[str]:
    stepper.begin(level, ["T1", "T2"])
    try:
        first = stepper.step(read("T1", ("acc-00",), lock))
        second = stepper.step(read("T2", ("acc-00",), lock))  # with --lock it waits here for T1
        done = [first, second, deposit(stepper, "T1", first, 5)]
        read_already = second.status == "ok"  # a plain read has; a locking one still waits for T1
        if read_already:
            done.append(deposit(stepper, "T2", second, 7))  # waits for T1's row lock
        done.append(stepper.step(commit("T1")))
        if not read_already and second.status == "ok":
            done.append(deposit(stepper, "T2", second, 7))
        done.append(stepper.step(commit("T2")))
    finally:
        stepper.end(["T1", "T2"])
    balance = stepper.observer.execute("select balance from bankapp_accounts where id = 'acc-00'").fetchone()[0]
    got = balance - first.rows[0][1]
    lines = [d.line() for d in done]
    refused = [d for d in done if d.sqlstate == "40001"]
    if refused:
        lines.append(f"acc-00 grew by {got}: T2 was refused (40001), so nothing was lost; retry it")
    else:
        lost = 12 - got
        lines.append(f"acc-00 grew by {got} of the 12 deposited: {lost} lost" + (": a lost update" if lost else ""))
    return lines


def withdraw(stepper: Stepper, session: str, seen: Done, account: str) -> list[Done]:
    """The rule, checked by the application between steps: debit `account` if the pair's sum covers it."""
    balances = dict(seen.rows)
    if sum(balances.values()) < AMOUNT:
        return [stepper.step(Step(session, "abort", shown="rollback (the sum does not cover it)"))]
    counted = f"withdrawals = withdrawals + 1, withdrawal_amount = withdrawal_amount + {AMOUNT}, net = net - {AMOUNT}"
    return [stepper.step(write(session, account, balances[account] - AMOUNT, counted))]


def write_skew(stepper: Stepper, level: str, lock: bool) -> list[str]:
    pair = ("acc-00", "acc-01")
    stepper.begin(level, ["T1", "T2"])
    try:
        first = stepper.step(read("T1", pair, lock))
        second = stepper.step(read("T2", pair, lock))  # with --lock it waits here for T1
        done = [first, second, *withdraw(stepper, "T1", first, "acc-00")]
        read_already = second.status == "ok"
        if read_already:
            done += withdraw(stepper, "T2", second, "acc-01")
        done.append(stepper.step(commit("T1")))
        if not read_already and second.status == "ok":
            done += withdraw(stepper, "T2", second, "acc-01")
        if done[-1].step.kind != "abort":
            done.append(stepper.step(commit("T2")))
    finally:
        stepper.end(["T1", "T2"])
    rows = stepper.observer.execute(
        "select id, balance from bankapp_accounts where id in ('acc-00', 'acc-01') order by id"
    ).fetchall()
    lines = [d.line() for d in done]
    for session, seen in (("T1", first), ("T2", second)):
        if seen.status == "ok":
            total = sum(dict(seen.rows).values())
            lines.append(f"{session}'s check read a sum of {total}: " + ("covered" if total >= AMOUNT else "refused"))
    combined = sum(balance for _, balance in rows)
    said = "below zero: write skew" if combined < 0 else "kept at zero or above"
    lines.append(f"cust-00's accounts: {', '.join(f'{k} {v}' for k, v in rows)}; combined {combined}, {said}")
    return lines


SCENARIOS = {"lost-update": lost_update, "write-skew": write_skew}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=list(SCENARIOS))
    parser.add_argument("--database-url", required=True, help="the bank's PostgreSQL database")
    parser.add_argument("--level", choices=LEVELS, default="read committed")
    parser.add_argument("--lock", action="store_true", help="read the rows FOR UPDATE")
    args = parser.parse_args(argv)
    with Stepper(args.database_url, ("T1", "T2"), scratch=False) as stepper:
        lines = SCENARIOS[args.scenario](stepper, args.level, args.lock)
    print(f"{args.scenario} at {args.level}" + (", reading FOR UPDATE" if args.lock else ""))
    print("\n".join("  " + line for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
