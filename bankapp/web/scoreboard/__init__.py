"""The room's scoreboard: grades the trainees' `bankapp exercise check --room` posts, kept in memory, bounded and
rate-limited (`board`, `buckets`); served by `bankapp.web.views.scoreboard` (docs/scoreboard.md)."""

from .board import SELF_REPORTED, RoomTokens, Row, Scoreboard, ScoreboardFull, TokenCheck, install_token_check
from .buckets import RateLimited, TokenBuckets

__all__ = [
    "SELF_REPORTED",
    "RateLimited",
    "RoomTokens",
    "Row",
    "Scoreboard",
    "ScoreboardFull",
    "TokenBuckets",
    "TokenCheck",
    "install_token_check",
]
