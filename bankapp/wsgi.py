"""Where `gunicorn bankapp.wsgi:app` finds the app: it is built in `bankapp.server.wsgi`."""

from .server.wsgi import app

__all__ = ["app"]
