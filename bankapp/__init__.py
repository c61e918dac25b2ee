"""bankapp: a concurrency lab served over HTTP.

The package root imports nothing: `import bankapp.lab.guards` loads
neither Flask nor psycopg. `from bankapp import create_app` still works,
the app factory imported on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .web import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .web import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
