"""One blueprint per concern; views parse, call the domain, shape the answer."""

from ...lab import LabLike
from ...rooms import TEAM
from .dispatch import current_app_object, current_request


def lab() -> LabLike:
    """The lab of the request's team (`bankapp.rooms.routing`), else the app's own: the default team's. Read
    without Flask's proxies: every view asks."""
    team = current_request().environ.get(TEAM)
    return current_app_object().extensions["bankapp"] if team is None else team.lab
