"""Which team a request is for, chosen once, before anything else reads it: a WSGI middleware.

`/teams/red/accounts/acc-00/deposit` is red's `/accounts/acc-00/deposit`
(the prefix is taken off `PATH_INFO`, so the app routes it as any other);
`X-Team: red` on a plain route says the same. A request that names no team
is the default team's. The environ then holds the name (`TEAM_NAME`), and,
for a team that exists, the team (`TEAM`), which the web service's views
read their lab from; a team that does not exist is left for the app to
answer (404, as a problem, before any view runs).

Around the request it holds a thread of its team's fair share
(`bankapp.rooms.share`); past the share it answers 503 `team-share` with
`Retry-After` itself, without Flask: a flood's refusals must cost the
threads and the CPU the other teams need as little as can be (the app's
own middleware, outside this one, still names and signs the answer). While the
default team is alone, a request that names no team passes straight
through: the server as it was before rooms.
"""

from __future__ import annotations

import json

from .room import DEFAULT_TEAM, Room
from .share import RETRY_AFTER_S, FairShare, counted

PREFIX = "/teams/"
#: The environ's keys: the name the request gave, and the team found.
TEAM_NAME, TEAM = "bankapp.team_name", "bankapp.team"


class TeamRouting:
    """WSGI middleware: the team of each request in the environ, its share held while the app answers."""

    def __init__(self, wsgi_app, room: Room):
        self.wsgi_app = wsgi_app
        self.room = room

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        name = None
        header = environ.get("HTTP_X_TEAM")
        if header is not None and "," in header:  # WSGI servers join repeated headers with a comma
            return bad_team(start_response, "X-Team: one header naming one team (two X-Team headers were sent)")
        if path.startswith(PREFIX):
            name, _, rest = path[len(PREFIX) :].partition("/")
            environ["PATH_INFO"] = "/" + rest
            if header is not None and header.strip() != name:  # which team would a state change be for?
                return bad_team(start_response, f"the path names team {name!r} but X-Team names {header.strip()!r}")
        elif header is not None:
            name = header.strip()
        elif self.room.alone:
            return self.wsgi_app(environ, start_response)
        name = DEFAULT_TEAM if name is None else name
        environ[TEAM_NAME] = name
        team = self.room.get(name)
        if team is None:
            return self.wsgi_app(environ, start_response)  # the app answers 404 unknown-team
        environ[TEAM] = team
        share = self.room.share
        if self.room.alone or not counted(environ["PATH_INFO"]):
            return self.wsgi_app(environ, start_response)
        if not share.enter(name):
            return refuse(name, share, start_response)
        try:
            return self.wsgi_app(environ, start_response)
        finally:
            share.leave(name)


def bad_team(start_response, detail: str):
    """400 `bad-team`: a request that names its team two ways, or twice; nothing is run."""
    body = json.dumps(
        {"type": "urn:bankapp:problem:bad-team", "title": "Bad team", "status": 400, "detail": detail}
    ).encode()
    headers = [("Content-Type", "application/problem+json"), ("Content-Length", str(len(body)))]
    start_response("400 BAD REQUEST", headers)
    return [body]


def refuse(name: str, share: FairShare, start_response):
    """503 `team-share` as `application/problem+json` (RFC 9457, as every problem of the service)."""
    body = json.dumps(
        {
            "type": "urn:bankapp:problem:team-share",
            "title": "Team past its share",
            "status": 503,
            "detail": f"team {name!r} holds its share of this worker's threads ({share.share} of {share.budget}) "
            f"and none is spare; retry after {RETRY_AFTER_S} s",
            "team": name,
        }
    ).encode()
    start_response(
        "503 SERVICE UNAVAILABLE",
        [
            ("Content-Type", "application/problem+json"),
            ("Content-Length", str(len(body))),
            ("Retry-After", str(RETRY_AFTER_S)),
        ],
    )
    return [body]
