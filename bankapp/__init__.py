"""bankapp: a concurrency lab served over HTTP."""

from .web import create_app

__all__ = ["create_app"]
