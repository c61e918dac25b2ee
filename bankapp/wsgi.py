"""Entry point for a plain gunicorn command line: `gunicorn bankapp.wsgi:app`.

Settings come from `BANKAPP_*` variables; `bankapp serve` is the usual way.
"""

from .web import create_app

app = create_app()
