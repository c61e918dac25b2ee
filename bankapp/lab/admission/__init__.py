"""Admission: who may start an operation now, and what happens to the rest.

- `checkouts`: `Admission`, how many checkouts run at once under a guard
  (a semaphore's places), with exact counters and the reasons for refusal
- `gate`: `Gate`, the lab's door for every operation that can wait on a
  lock (the reserve of server threads, and a reset's barrier)
- `adaptive`: `AdaptiveGuard`, an admission limit found at run time from
  latency (Vegas, after Netflix's concurrency-limits)
"""

from .checkouts import REASONS, Admission, AdmissionRejected
from .gate import RESET_BREAK_EVERY_S, RESET_WAIT_S, Gate, Operation, ResetBlocked, ResetInProgress, ServerBusy

__all__ = [
    "REASONS",
    "RESET_BREAK_EVERY_S",
    "RESET_WAIT_S",
    "Admission",
    "AdmissionRejected",
    "Gate",
    "Operation",
    "ResetBlocked",
    "ResetInProgress",
    "ServerBusy",
]
