"""Transfers, the bank audit, and the live wait-for graph."""

from flask_openapi3 import Tag

from ..idempotency import idempotent
from ..schemas import AuditOut, DebugLocksOut, Problem, TransferIn, TransferOut
from . import lab
from .dispatch import Blueprint as APIBlueprint

bp = APIBlueprint("transfers", __name__, abp_tags=[Tag(name="transfers", description="transfers and deadlocks")])


@bp.post("/transfers", responses={200: TransferOut, 404: Problem, 409: Problem, 422: Problem, 503: Problem})
@idempotent
def transfer(body: TransferIn):
    """Move `amount` from one account to another under `transfer_policy`.

    409 for insufficient funds or a deadlock victim (the body has the cycle),
    503 when `lock_timeout_ms` runs out; a refused transfer changes nothing.
    """
    return lab().transfers.transfer(body.source, body.target, body.amount)


@bp.get("/audit", responses={200: AuditOut, 409: Problem, 503: Problem})
def audit():
    """Read every balance under every account's lock (id order); total against expected total."""
    return lab().transfers.audit()


@bp.get("/debug/locks", responses={200: DebugLocksOut})
def debug_locks():
    """Holders, waiters, wait-for edges, live cycles and the recent deadlocks."""
    return lab().transfers.debug_locks()
