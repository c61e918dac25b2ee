"""bankapp: a concurrency lab served over HTTP."""

from .app import create_app

__all__ = ["create_app"]
