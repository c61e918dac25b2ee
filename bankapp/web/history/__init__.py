"""The dashboard's history on the server: a tab opened at any time draws the run from its start.

Each lab has its own `History` (`history_of`), kept beside it and forgotten
with it, so a room's teams each have theirs. `samples` holds the bounded
series and where the bank's money went; `hooks` takes a sample after an
answer has been sent (`Sampling`, a WSGI middleware); `views` serves
`GET /dashboard/history`. `init_app` installs both.
"""

from flask import Flask

from ...lab import LabLike
from .hooks import Sampling, after_answer, history_of
from .samples import CAPACITY, COLUMNS, INTERVAL_S, History, money
from .views import bp

__all__ = [
    "CAPACITY",
    "COLUMNS",
    "INTERVAL_S",
    "History",
    "Sampling",
    "after_answer",
    "history_of",
    "init_app",
    "money",
]


def init_app(app: Flask, lab: LabLike) -> None:
    """`GET /dashboard/history`, and a sample after each answer (outside `every_request`'s middleware)."""
    app.register_api(bp)  # type: ignore[attr-defined]  # flask-openapi3's app
    app.wsgi_app = Sampling(app.wsgi_app, lab)  # type: ignore[method-assign]
