"""One user class per scenario; pick them by naming them on the command line.

Every user counts what it sent and what answer came back into the process's
`Tally` (see `tally`), and tells Locust how to file the request: expected
outcomes of the business (an admission rejection, an out-of-stock) get a name
of their own and are not failures; anything unexpected is a failure.

Example::

    locust -f loadtests/locustfile.py DepositUser --headless -u 16 -r 16 -t 10s
"""

from __future__ import annotations

import random
import uuid

import gevent
from locust import FastHttpUser, between, constant, task

from . import keys as k
from .options import Plan
from .tally import MAYBE, REFUSED, UNANSWERED, Tally, settle


def body_of(response) -> dict:
    """The JSON object of an answer, or {} when there is none."""
    try:
        body = response.json()
    except Exception:  # no body, not JSON, or a connection that broke mid-body
        return {}
    return body if isinstance(body, dict) else {}


def problem_type(response) -> str:
    return str(body_of(response).get("type", ""))


def definite_failure(response) -> bool:
    """An answer that promises nothing was applied: a 4xx, or a 503 for a guard that was never acquired."""
    if 400 <= response.status_code < 500:
        return True
    return response.status_code == 503 and problem_type(response).endswith(("lock-timeout", "self-deadlock"))


def timed_out(response) -> bool:
    """No answer within the client's timeout: the request may still be running, and be applied."""
    error = getattr(response, "error", None)
    error = getattr(error, "original", None) or error  # geventhttpclient wraps it in RetriesExceeded
    return response.status_code == 0 and isinstance(error, TimeoutError | gevent.Timeout)


def describe(response) -> str:
    """A failure as Locust files it: one message per kind of answer, never per request.

    Locust's error report (and the web UI's Failures tab) has a line per
    distinct message. A problem's `detail` names threads, accounts and
    milliseconds, different every time, so 300 deadlock victims would be 300
    lines on a shared screen; the status, the problem type and its title are
    the same for all of them: one line, with their count. The details stay
    on the server (`/debug/locks`, `/debug/races`).
    """
    if response.status_code == 0:
        error = getattr(response, "error", None)
        error = getattr(error, "original", None) or error  # geventhttpclient wraps it in RetriesExceeded
        return f"no answer: {type(error).__name__ if error else 'connection failed'}"
    body = body_of(response)
    kind = str(body.get("type", ""))
    if kind.startswith("urn:bankapp:problem:"):
        return f"{response.status_code} {kind.rsplit(':', 1)[-1]}: {body.get('title') or 'problem'}"
    first_line = (response.text or "").strip().splitlines()[:1] or ["no body"]
    return f"{response.status_code}: {first_line[0][:80]}"


class BankUser(FastHttpUser):
    """Shared by every scenario: the plan this process follows and its tally."""

    abstract = True
    wait_time = constant(0)  # closed loop: a race needs company, so no pause between requests
    tally = Tally()
    plan: Plan | None = None  # set at test start (`referee`), before any user runs

    @property
    def planned(self) -> Plan:
        if self.plan is None:
            raise RuntimeError("no plan: users run only after the test has started")
        return self.plan

    def pick_account(self) -> str:
        return random.choice(self.planned.accounts)

    def pick_amount(self) -> int:
        return random.choice(self.planned.amounts)


class DepositUser(BankUser):
    """Deposits into one of the plan's accounts, again and again: the lost-update lesson."""

    weight = 3

    @task
    def deposit(self) -> None:
        account, amount = self.pick_account(), self.pick_amount()
        self.tally.add(k.DEPOSIT, account, k.SENT)
        self.tally.add(k.DEPOSIT, account, k.SENT_AMOUNT, amount)
        with self.client.post(
            f"/accounts/{account}/deposit", json={"amount": amount}, name="deposit", catch_response=True
        ) as response:
            if response.status_code == 200:
                self.tally.add(k.DEPOSIT, account, k.OK)
                self.tally.add(k.DEPOSIT, account, k.OK_AMOUNT, amount)
                return
            if definite_failure(response):
                self.tally.add(k.DEPOSIT, account, k.FAILED)
                self.tally.add(k.DEPOSIT, account, k.FAILED_AMOUNT, amount)
            response.failure(describe(response))


class RetryingDepositUser(BankUser):
    """Deposits that give up after `--request-timeout` and retry: the idempotency lesson.

    A timeout tells the client nothing: the server may finish the deposit after
    the client stopped waiting. Each logical deposit is counted once as sent,
    however many tries it takes. With `--idempotency-keys` (the default) every
    try carries the same `Idempotency-Key`, so a retry replays the first answer
    (`Idempotent-Replayed: true`) and the money moves once. With
    `--no-idempotency-keys` a retry is a new deposit to the server, and one the
    server applied after the client timed out is applied twice: the balance
    then grows beyond every attempted deposit, which the verdict reports.

    Example::

        bankapp serve --guard lock --race-window-ms 200
        locust -f loadtests/locustfile.py RetryingDepositUser --request-timeout 0.05 --no-idempotency-keys
    """

    weight = 1

    def __init__(self, environment) -> None:
        if self.plan is not None:  # fixed when FastHttpUser builds the client; connecting keeps its own
            self.network_timeout = self.plan.request_timeout
        super().__init__(environment)

    @task
    def deposit(self) -> None:
        account, amount = self.pick_account(), self.pick_amount()
        key = str(uuid.uuid4()) if self.planned.idempotency_keys else None
        self.tally.add(k.DEPOSIT, account, k.SENT)
        self.tally.add(k.DEPOSIT, account, k.SENT_AMOUNT, amount)
        tries: list[str] = []
        for attempt in range(self.planned.retries + 1):
            if attempt:
                gevent.sleep(self.planned.retry_backoff * 2 ** (attempt - 1))
                self.tally.add(k.DEPOSIT, account, k.RETRIES)
                if key is None:
                    self.tally.add(k.DEPOSIT, account, k.KEYLESS_RETRIES)
                    self.tally.add(k.DEPOSIT, account, k.KEYLESS_RETRY_AMOUNT, amount)
            tries.append(self.try_deposit(account, amount, key, attempt, last=attempt == self.planned.retries))
            if tries[-1] != UNANSWERED:
                break
        outcome = settle(tries, keyed=key is not None)
        if outcome != MAYBE:
            self.tally.add(k.DEPOSIT, account, outcome)
            self.tally.add(k.DEPOSIT, account, k.AMOUNT_OF[outcome], amount)

    def try_deposit(self, account: str, amount: int, key: str | None, attempt: int, last: bool) -> str:
        """One try: `ok`, `refused` (nothing applied), or `unanswered` (maybe applied).

        A timeout that will be retried is filed under its own name and not as
        a failure: it is the scenario at work. One with no retry left fails.
        """
        headers = {"Idempotency-Key": key} if key else {}
        name = "deposit with retries: retry" if attempt else "deposit with retries"
        with self.client.post(
            f"/accounts/{account}/deposit", json={"amount": amount}, headers=headers, name=name, catch_response=True
        ) as response:
            if response.status_code == 200:
                if response.headers.get("Idempotent-Replayed") == "true":
                    self.tally.add(k.DEPOSIT, account, k.REPLAYED)
                    response.request_meta["name"] = "deposit with retries: replayed"
                return k.OK
            if timed_out(response):
                self.tally.add(k.DEPOSIT, account, k.TIMEOUTS)
                if not last:
                    response.request_meta["name"] = name + ": timed out, will retry"
                    response.success()
                    return UNANSWERED
            response.failure(describe(response))
            # a key still running on the server (409) is worth another try, not a refusal
            if definite_failure(response) and not problem_type(response).endswith("idempotency-key-in-flight"):
                return REFUSED
            return UNANSWERED


class BatchDepositUser(BankUser):
    """Batch deposits: `rlock` lets the holder re-enter, `lock` self-deadlocks (503)."""

    weight = 1

    @task
    def batch_deposit(self) -> None:
        account = self.pick_account()
        amounts = [self.pick_amount() for _ in range(self.planned.batch_size)]
        self.tally.add(k.BATCH, account, k.SENT)
        self.tally.add(k.DEPOSIT, account, k.SENT, len(amounts))
        self.tally.add(k.DEPOSIT, account, k.SENT_AMOUNT, sum(amounts))
        with self.client.post(
            f"/accounts/{account}/batch-deposit", json={"amounts": amounts}, name="batch deposit", catch_response=True
        ) as response:
            if response.status_code == 200:
                self.tally.add(k.BATCH, account, k.OK)
                self.tally.add(k.DEPOSIT, account, k.OK, len(amounts))
                self.tally.add(k.DEPOSIT, account, k.OK_AMOUNT, sum(amounts))
                return
            if definite_failure(response):
                self.tally.add(k.DEPOSIT, account, k.FAILED, len(amounts))
                self.tally.add(k.DEPOSIT, account, k.FAILED_AMOUNT, sum(amounts))
            if problem_type(response).endswith("self-deadlock"):
                self.tally.add(k.BATCH, account, k.SELF_DEADLOCK)
                response.request_meta["name"] = "batch deposit: self-deadlock"
            response.failure(describe(response))


class CheckoutUser(BankUser):
    """Checkouts of one unit: admission by a semaphore, and the flash sale that must not oversell."""

    weight = 3

    @task
    def checkout(self) -> None:
        sku, quantity = random.choice(self.planned.skus), 1
        self.tally.add(k.CHECKOUT, sku, k.SENT)
        with self.client.post(
            "/checkout", json={"sku": sku, "quantity": quantity}, name="checkout", catch_response=True
        ) as response:
            body = body_of(response)
            if response.status_code == 200:
                self.tally.add(k.CHECKOUT, sku, k.OK)
                self.tally.add(k.CHECKOUT, sku, k.OK_QUANTITY, quantity)
                remaining = body.get("remaining")
                if isinstance(remaining, int) and remaining < 0:
                    self.tally.add(k.CHECKOUT, sku, k.NEGATIVE_REMAINING, min(quantity, -remaining))
            elif response.status_code == 503 and ("capacity" in body or "admission" in str(body.get("type", ""))):
                self.tally.add(k.CHECKOUT, sku, k.REJECTED)
                response.request_meta["name"] = "checkout: rejected by admission"
                response.success()  # the semaphore doing its job, not an error
            elif response.status_code == 409 and "stock" in str(body.get("type", "")) + str(body.get("title", "")):
                self.tally.add(k.CHECKOUT, sku, k.OUT_OF_STOCK)
                response.request_meta["name"] = "checkout: out of stock"
                response.success()
            else:
                if response.status_code:
                    self.tally.add(k.CHECKOUT, sku, k.FAILED)
                response.failure(describe(response))


class TransferUser(BankUser):
    """Transfers between two of the plan's accounts, both directions: the deadlock lesson."""

    weight = 3

    @task
    def transfer(self) -> None:
        source, target = random.sample(self.planned.accounts, 2)
        amount = self.pick_amount()
        self.tally.add(k.TRANSFER, k.ALL, k.SENT)
        self.tally.add(k.LEG, source, k.OUT_SENT, amount)
        self.tally.add(k.LEG, target, k.IN_SENT, amount)
        with self.client.post(
            "/transfers", json={"from": source, "to": target, "amount": amount}, name="transfer", catch_response=True
        ) as response:
            kind = problem_type(response)
            if response.status_code == 200:
                self.tally.add(k.TRANSFER, k.ALL, k.COMMITTED)
                self.tally.add(k.LEG, source, k.OUT_OK, amount)
                self.tally.add(k.LEG, target, k.IN_OK, amount)
                return
            if definite_failure(response):  # rolled back: neither leg happened
                self.tally.add(k.LEG, source, k.OUT_FAILED, amount)
                self.tally.add(k.LEG, target, k.IN_FAILED, amount)
            if response.status_code == 409 and kind.endswith("insufficient-funds"):
                self.tally.add(k.TRANSFER, k.ALL, k.INSUFFICIENT)
                response.request_meta["name"] = "transfer: insufficient funds"
                response.success()  # a refusal the bank owes its customers, not an error
                return
            if response.status_code == 409 and kind.endswith(":deadlock"):
                self.tally.add(k.TRANSFER, k.ALL, k.DEADLOCKS)
                response.request_meta["name"] = "transfer: deadlock victim"
            elif response.status_code == 503:
                self.tally.add(k.TRANSFER, k.ALL, k.LOCK_TIMEOUTS)
                response.request_meta["name"] = "transfer: lock timeout"
            elif response.status_code:
                self.tally.add(k.TRANSFER, k.ALL, k.FAILED)
            response.failure(describe(response))


class AuditUser(BankUser):
    """Reads `/audit` now and then: a consistent read must always see the expected total."""

    weight = 1
    wait_time = between(0.02, 0.1)

    @task
    def audit(self) -> None:
        with self.client.get("/audit", name="audit", catch_response=True) as response:
            body = body_of(response)
            if response.status_code != 200 or "total" not in body:
                response.failure(describe(response))
                return
            self.tally.add(k.AUDIT, k.ALL, k.READS)
            if body.get("total") != body.get("expected_total"):
                self.tally.add(k.AUDIT, k.ALL, k.WRONG_TOTAL)
            if body.get("negative_accounts"):
                self.tally.add(k.AUDIT, k.ALL, k.NEGATIVE)
