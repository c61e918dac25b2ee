"""Transfers: the desk that runs them and audits the bank (`desk`), and the policies that take their locks
(`policies`), each breaking one condition of deadlock."""

from .desk import SameAccount, TransferCounters, TransferDesk, audit_answer
from .policies import BACKOFF_MAX_MS, BACKOFF_TRY_MS, POLICIES, Move

__all__ = [
    "BACKOFF_MAX_MS",
    "BACKOFF_TRY_MS",
    "POLICIES",
    "Move",
    "SameAccount",
    "TransferCounters",
    "TransferDesk",
    "audit_answer",
]
