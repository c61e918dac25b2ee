"""The lab: the domain a trainee studies. Guards, instrumented locks, the
store, counters, the bank, transfers, the shop and its admission, and the
`Lab` that wires them. Nothing here knows of Flask, werkzeug or gunicorn:
unit tests drive it with plain threads."""

from .lab import Lab, make_lab

__all__ = ["Lab", "make_lab"]
