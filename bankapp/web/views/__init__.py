"""One blueprint per concern; views parse, call the domain, shape the answer."""

from ...lab import LabLike
from .dispatch import current_app_object


def lab() -> LabLike:
    """The lab of the app serving this request (read without `current_app`'s proxy: every view asks)."""
    return current_app_object().extensions["bankapp"]
