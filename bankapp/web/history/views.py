"""`GET /dashboard/history`: the run so far, as the dashboard charts it, for a tab opened late."""

from __future__ import annotations

from typing import Any

from flask_openapi3 import Tag
from pydantic import BaseModel, ConfigDict, Field

from ..schemas import Problem
from ..views import lab
from ..views.dispatch import Blueprint as APIBlueprint
from .hooks import history_of, take_sample
from .samples import CAPACITY, COLUMNS

bp = APIBlueprint("history", __name__, abp_tags=[Tag(name="dashboard", description="the live dashboard")])


class HistoryQuery(BaseModel):
    since: float | None = Field(
        None, ge=0, description="epoch seconds: only the samples and settings changes after it (a tab's next poll)"
    )


class MoneyOut(BaseModel):
    """Where the bank's total went since the opening, and who is to blame for what is missing (cents)."""

    model_config = ConfigDict(extra="allow")
    total_change: int = Field(description="what the balances moved since the opening")
    deposits: int = Field(description="what deposits acknowledged added, net of withdrawals")
    off: int = Field(description="the total less what it should be: in_flight minus lost_updates")
    in_flight: int = Field(description="money inside transfers not yet done (back at rest)")
    lost_updates: int
    lost_by: dict[str, int] = Field(description="-lost_updates put on deposits, transfers, either or unexplained")
    deposits_could_lose: str | None = Field(description="the setting that let deposits lose money, if any was seen")
    transfers_could_lose: str | None = Field(description="the setting that let transfers lose money, if any was seen")


class HistoryOut(BaseModel):
    """Samples as columns (`series[name][i]` is sample i), oldest first, at most one a second, bounded."""

    model_config = ConfigDict(extra="allow")
    now: float = Field(description="the server's clock, epoch seconds: a page puts its live points on it")
    interval_s: float
    capacity: int = Field(description=f"the most samples kept ({CAPACITY}: the last hour)")
    started_at: float | None = Field(description="epoch seconds of the first sample since the last reset")
    first: float | None = Field(description="epoch seconds of the oldest sample kept")
    resets: int = Field(description="resets this history has seen (it starts again at each)")
    columns: list[str] = Field(description=", ".join(COLUMNS))
    samples: int
    series: dict[str, list[Any]]
    settings: list[dict[str, Any]] = Field(description="each change of a charted setting, with its time `t`")
    money: MoneyOut | None


@bp.get("/dashboard/history", responses={200: HistoryOut, 422: Problem})
def dashboard_history(query: HistoryQuery):
    """The dashboard's history: what it charts, one sample a second at most since the last reset (the last hour),
    kept by this worker (with the postgres store: of the fleet's totals, read from the database)."""
    the_lab = lab()
    history = history_of(the_lab)
    take_sample(the_lab, history)
    return history.report(query.since)
