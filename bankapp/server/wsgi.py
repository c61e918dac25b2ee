"""Entry point for a plain gunicorn command line: `gunicorn bankapp.wsgi:app`.

Settings come from `BANKAPP_*` variables; `bankapp serve` is the usual way.
With `BANKAPP_STORE=postgres` each worker checks the database and settles
the settings as `bankapp serve` does before it forks (`bankapp.boot.settings`).
"""

from .. import boot
from ..web import create_app

app = create_app(boot.settings())
