"""Rooms: one server for a whole workshop, a lab per team (docs/rooms.md).

`room` (the teams, their tokens, what the instructor does to them all),
`share` (the fair share of a worker's threads) and `routing` (the team of a
request, a WSGI middleware). No Flask here: the web service asks.
"""

from .room import DEFAULT_TEAM, MAX_TEAMS, NAME, Room, RoomRefused, Team
from .routing import TEAM, TEAM_NAME, TeamRouting
from .share import RETRY_AFTER_S, FairShare

__all__ = [
    "DEFAULT_TEAM",
    "MAX_TEAMS",
    "NAME",
    "RETRY_AFTER_S",
    "TEAM",
    "TEAM_NAME",
    "FairShare",
    "Room",
    "RoomRefused",
    "Team",
    "TeamRouting",
]
