"""Every error as `application/problem+json` (RFC 9457).

Domain exceptions map to a status here, in one table, so views stay thin and
never format an error themselves. `type` is a URN of ours: no problem page
lives on the internet.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from ..explore import InvalidExplore
from ..interleave import InvalidReplay, InvalidSchedule, ReplayBusy, ReplayError
from ..lab.admission import AdmissionRejected, ResetBlocked, ResetInProgress, ServerBusy
from ..lab.bank import InsufficientFunds
from ..lab.customers import CombinedFundsShort, NotTheCustomersAccount, UnknownCustomer
from ..lab.guards import GuardTimeout
from ..lab.locks import DeadlockVictim
from ..lab.plugged import TraineeCodeFailed
from ..lab.shop import OutOfStock, UnknownSku
from ..lab.store import StoreUnavailable, UnknownAccount
from ..lab.transfers import SameAccount
from ..settings import SettingsError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: PostgreSQL's refusals on purpose (SQLSTATE), answered 503 with Retry-After where no domain code answers them.
DATABASE_CONFLICTS = {"40P01": "deadlock detected", "40001": "serialization failure", "55P03": "lock not available"}


class Problem(Exception):
    """Raise to answer with a problem; extra keyword fields join the body."""

    def __init__(self, status: int, slug: str, title: str, detail: str, headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(problem: Problem):
    body = {
        "type": f"urn:bankapp:problem:{problem.slug}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **problem.extra,
    }
    response = jsonify(body)
    response.status_code = problem.status
    response.mimetype = PROBLEM_JSON
    response.headers.update(problem.headers)
    return response


def validation_problem(error: ValidationError, where: str = "body") -> Problem:
    """Name each bad field and the rule it broke."""
    errors = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or where
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] in {"model_type", "dict_type", "model_attributes_type"}:
            message = "expected a JSON object"
        errors.append({"field": field, "message": message, "type": item["type"]})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(422, "invalid-input", "Invalid input", detail, errors=errors)


def validation_error_response(error: ValidationError):
    """flask-openapi3's hook for a request that fails its model."""
    return problem_response(validation_problem(error))


def _from_exception(error: Exception) -> Problem:
    if isinstance(error, Problem):
        return error
    if isinstance(error, UnknownAccount):
        return Problem(404, "unknown-account", "Unknown account", str(error), account=error.account_id)
    if isinstance(error, UnknownCustomer):
        return Problem(404, "unknown-customer", "Unknown customer", str(error), customer=error.customer_id)
    if isinstance(error, NotTheCustomersAccount):
        return Problem(
            422,
            "not-the-customers-account",
            "Not the customer's account",
            str(error),
            customer=error.customer_id,
            account=error.account_id,
            accounts=list(error.accounts),
        )
    if isinstance(error, CombinedFundsShort):
        return Problem(
            409,
            "insufficient-funds",
            "Insufficient funds",
            str(error),
            customer=error.customer_id,
            account=error.account_id,
            balances=error.balances,
            combined=error.balance,
            amount=error.amount,
        )
    if isinstance(error, InsufficientFunds):
        return Problem(
            409,
            "insufficient-funds",
            "Insufficient funds",
            str(error),
            account=error.account_id,
            balance=error.balance,
            amount=error.amount,
        )
    if isinstance(error, DeadlockVictim):
        return Problem(
            409,
            "deadlock",
            "Deadlock victim",
            str(error),
            rolled_back=True,
            accounts=error.deadlock["accounts"],
            cycle=error.deadlock["cycle"],
            deadlock_id=error.deadlock["id"],
        )
    if isinstance(error, SameAccount):
        return Problem(422, "same-account", "Same account", str(error), account=error.account_id)
    if isinstance(error, InvalidSchedule):
        return Problem(422, "invalid-schedule", "Invalid schedule", str(error), step=error.step)
    if isinstance(error, InvalidExplore):
        errors = [{"field": error.field, "message": str(error), "type": "value_error"}]
        return Problem(422, "invalid-input", "Invalid input", str(error), errors=errors)
    if isinstance(error, InvalidReplay):
        errors = [{"field": error.field, "message": str(error), "type": "value_error"}]
        return Problem(422, "invalid-input", "Invalid input", str(error), errors=errors)
    if isinstance(error, ReplayBusy):
        return Problem(503, "replay-busy", "Replay busy", str(error), headers={"Retry-After": "1"})
    if isinstance(error, ReplayError):
        return Problem(503, "replay-failed", "Replay failed", str(error), headers={"Retry-After": "1"})
    if isinstance(error, UnknownSku):
        return Problem(404, "unknown-sku", "Unknown SKU", str(error), sku=error.sku)
    if isinstance(error, OutOfStock):
        return Problem(
            409,
            "out-of-stock",
            "Out of stock",
            str(error),
            sku=error.sku,
            available=error.available,
            quantity=error.quantity,
        )
    if isinstance(error, AdmissionRejected):
        return Problem(
            503,
            "admission-rejected",
            "Checkout not admitted",
            str(error),
            headers={"Retry-After": str(error.retry_after)},
            reason=error.reason,
            guard=error.guard,
            capacity=error.capacity,
            in_flight=error.in_flight,
            waiting=error.waiting,
            max_waiting=error.max_waiting,
            waited_ms=error.waited_ms,
        )
    if isinstance(error, ServerBusy):
        return Problem(
            503,
            "server-busy",
            "Server busy",
            str(error),
            headers={"Retry-After": "1"},
            operation=error.operation,
            limit=error.limit,
            in_flight=error.inside,
            waiting_for_reset=error.at_door,
        )
    if isinstance(error, ResetInProgress):
        return Problem(
            503,
            "reset-in-progress",
            "Reset in progress",
            str(error),
            headers={"Retry-After": "1"},
            operation=error.operation,
            waited_s=error.waited_s,
        )
    if isinstance(error, ResetBlocked):
        return Problem(
            503,
            "reset-blocked",
            "Reset blocked",
            str(error),
            headers={"Retry-After": "1"},
            waited_s=error.waited_s,
            blocking=error.blocking,
        )
    if isinstance(error, GuardTimeout):
        slug = "self-deadlock" if error.self_deadlock else "lock-timeout"
        title = "Self-deadlock" if error.self_deadlock else "Lock timeout"
        return Problem(
            503,
            slug,
            title,
            str(error),
            headers={"Retry-After": "1"},
            guard=error.guard.name,
            resource=error.guard.label,
            timeout_ms=None if error.timeout is None else error.timeout * 1000,
        )
    if isinstance(error, TraineeCodeFailed):  # the trainee's file is to blame, not the server: no 500
        return Problem(
            503, "exercise-code-failed", "Exercise code failed", str(error), file=error.file, line=error.line
        )
    if isinstance(error, StoreUnavailable):
        return Problem(503, error.slug, error.title, str(error), headers={"Retry-After": "1"}, **error.fields)
    if isinstance(error, SettingsError):
        return Problem(422, "invalid-setting", "Invalid setting", str(error), errors=error.errors)
    if isinstance(error, ValidationError):
        return validation_problem(error)
    if isinstance(error, HTTPException):
        slug = (error.name or "error").lower().replace(" ", "-")
        # keep what the exception says besides its body, such as a 405's `Allow`
        headers = {key: value for key, value in error.get_headers() if key.lower() != "content-type"}
        return Problem(error.code or 500, slug, error.name, error.description or error.name, headers=headers)
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate in DATABASE_CONFLICTS:
        # a refusal the database makes on purpose that no domain code answered: the request changed
        # nothing (its transaction was rolled back), and trying again is the answer
        return Problem(
            503,
            "database-conflict",
            "Database conflict",
            f"the database refused this request to keep another one safe ({DATABASE_CONFLICTS[sqlstate]}); "
            "its transaction was rolled back and nothing changed: try again",
            headers={"Retry-After": "1"},
            sqlstate=sqlstate,
        )
    log.exception("unhandled error")
    return Problem(500, "internal-error", "Internal server error", f"{type(error).__name__}: the server failed")


def init_app(app: Flask) -> None:
    @app.errorhandler(Exception)
    def handle(error: Exception):
        return problem_response(_from_exception(error))
