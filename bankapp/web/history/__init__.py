"""The dashboard's history on the server: a tab opened at any time draws the run from its start.

Each lab has its own `History` (`history_of`), kept beside it and forgotten
with it, so a room's teams each have theirs. `samples` holds the bounded
series and where the bank's money went; `hooks` takes a sample after an
answer has been sent (`after_answer`, called by `every_request`'s middleware); `views` serves
`GET /dashboard/history`, which `init_app` installs.
"""

from flask import Flask

from .hooks import after_answer, history_of
from .samples import CAPACITY, COLUMNS, INTERVAL_S, History, money
from .views import bp

__all__ = [
    "CAPACITY",
    "COLUMNS",
    "INTERVAL_S",
    "History",
    "after_answer",
    "history_of",
    "init_app",
    "money",
]


def init_app(app: Flask) -> None:
    """`GET /dashboard/history` (the samples are taken by `every_request`'s middleware, `after_answer`)."""
    app.register_api(bp)  # type: ignore[attr-defined]  # flask-openapi3's app
