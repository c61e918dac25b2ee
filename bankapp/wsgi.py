"""Entry point for a plain gunicorn command line: `gunicorn bankapp.wsgi:app`.

Settings come from `BANKAPP_*` variables; `bankapp serve` is the usual way.
With `BANKAPP_STORE=postgres` each worker checks the database and settles
the settings as `bankapp serve` does before it forks (see
`bankapp.postgres.schema.prepare`).
"""

from .settings import expand_guard, from_environment, load
from .web import create_app

config = load()
if config.store == "postgres":
    from .postgres import prepare

    config = prepare(config, set(expand_guard(from_environment())))
app = create_app(config)
