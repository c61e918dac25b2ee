"""One blueprint per concern; views parse, call the domain, shape the answer."""

from flask import current_app

from ...lab import LabLike


def lab() -> LabLike:
    """The lab of the app serving this request."""
    return current_app.extensions["bankapp"]
