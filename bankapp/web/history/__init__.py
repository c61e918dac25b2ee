"""The dashboard's history on the server: a tab opened at any time draws the run from its start.

Each lab has its own `History` (`history_of`), kept beside it and forgotten
with it, so a room's teams each have theirs. `samples` holds the bounded
series and where the bank's money went; `hooks` takes a sample after an
answer has been sent; `views` serves `GET /dashboard/history`.
"""

from .hooks import after_answer, history_of
from .samples import CAPACITY, COLUMNS, INTERVAL_S, History, money

__all__ = ["CAPACITY", "COLUMNS", "INTERVAL_S", "History", "after_answer", "history_of", "money"]
