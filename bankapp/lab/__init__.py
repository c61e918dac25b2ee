"""The lab: the domain a trainee studies. Guards, instrumented locks, the
store, counters, the bank, transfers, the shop and its admission, and the
`Lab` that wires them. Nothing here knows of Flask, werkzeug or gunicorn,
nor of the postgres store: unit tests drive it with plain threads, and
which lab a server runs is chosen above it (`bankapp.boot`)."""

from .lab import Lab
from .protocol import LabLike

__all__ = ["Lab", "LabLike"]
