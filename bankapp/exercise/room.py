"""A grade posted to the room's scoreboard: what `bankapp exercise check ... --room URL --name TEAM` sends.

Only the grade travels (exercise, passed, schedules tried, speed ratio), never
the trainee's code: a grade holding any other field is refused here, before
anything is sent (and the server refuses it too). Plain `urllib`: posting a
grade needs nothing of the web service.

Example::

    post_grade("http://10.0.0.5:8000", "red",
               {"exercise": "deposit-guard", "passed": True, "schedules": 42, "speed_ratio": 1.3},
               token="...")   # the team's token, once the server has rooms
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

#: What a grade may hold besides the team: nothing else, and never code.
GRADE_FIELDS = frozenset({"exercise", "passed", "schedules", "speed_ratio"})


class RoomError(Exception):
    """The grade was not kept: refused by the room's server (`status`, `problem`: its problem body) or not sent."""

    def __init__(self, message: str, status: int | None = None, problem: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


def scoreboard_url(url: str) -> str:
    """Where grades go: the server's `/scoreboard` (the room's address, as `http://HOST:PORT`)."""
    if not url.startswith(("http://", "https://")):
        raise RoomError(f"the room's URL must start with http:// or https://, got {url!r}")
    return url.rstrip("/") + "/scoreboard"


def post_grade(url: str, team: str, grade: dict[str, Any], token: str | None = None, timeout: float = 10) -> dict:
    """POST `grade` for `team` to the room at `url`; the team's row on the scoreboard as the server answers it.

    Raises `RoomError` saying why when the server refuses it (4xx, 5xx: its
    problem's detail, and when to try again after a 429), when it cannot be
    reached, or when `grade` holds a field that is not a grade's.
    """
    extra = sorted(set(grade) - GRADE_FIELDS)
    if extra:
        raise RoomError(f"a grade holds only {', '.join(sorted(GRADE_FIELDS))}; not sent: it also has {extra}")
    target = scoreboard_url(url)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps({"team": team, **grade}).encode()
    request = urllib.request.Request(target, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as refused:
        raise refusal(target, refused) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise RoomError(f"cannot reach the room at {target}: {reason}") from None
    except ValueError as error:  # a 2xx answer that is not JSON: not a bankapp server
        raise RoomError(f"the room at {target} did not answer JSON ({error}); is it a bankapp server?") from None


def refusal(target: str, refused: urllib.error.HTTPError) -> RoomError:
    """The server's refusal in one sentence: its status, the problem's detail, and Retry-After if it said one."""
    try:
        problem = json.loads(refused.read() or b"{}")
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = problem.get("detail") or problem.get("title") or refused.reason
    message = f"the room at {target} refused the grade ({refused.code}): {detail}"
    retry_after = refused.headers.get("Retry-After") if refused.headers else None
    if refused.code == 429 and retry_after:
        message += f" (Retry-After: {retry_after} s)"
    return RoomError(message, status=refused.code, problem=problem)
