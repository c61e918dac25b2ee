"""The composition root: settings read, the store prepared and the lab chosen, here and nowhere else.

Every way of starting bankapp passes through these two functions:

- `settings(chosen)`: flags (`chosen`), then `BANKAPP_*` variables, then
  defaults, validated; with the postgres store, the database is checked,
  its tables made and the settings settled (`bankapp.postgres.prepare`)
  before any worker starts. `bankapp serve` calls it in gunicorn's master,
  a plain `gunicorn bankapp.wsgi:app` in each worker.
- `build_lab(config)`: the lab `config.store` asks for, `Lab` in memory
  or `PostgresLab`; `create_app` calls it, so every app starts fresh.
- `make_team_lab(config, team)`: a room's team's own lab (bank, shop,
  settings, counters, forensics); the default team's is `build_lab`'s.

`settings` and `build_lab` take `team` (rooms): with the postgres store, `settings(chosen,
team="red")` prepares that team's tables (its own schema: idempotent, safe
from several workers at once) and `build_lab(config, team="red")` builds
its lab (`team` by keyword); the default team is today's bank.

The domain (`bankapp.lab`) never picks its own store, and psycopg is
imported only here, and only for the postgres store.

Example::

    config = settings({"guard": "lock"})  # SettingsError names a bad value
    lab = build_lab(config)
    lab.bank.deposit("acc-00", 5)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .lab import Lab, LabLike
from .lab.plugged import Plugged
from .settings import Config, expand_guard, from_environment, load


def settings(chosen: Mapping[str, Any] | None = None, team: str = "default") -> Config:
    """The settings to start with, the store made ready for them; raises `SettingsError` naming what is wrong."""
    config = load(dict(chosen or {}))
    if config.store == "postgres":  # reachable, tables made, settings settled, before any worker starts
        from .postgres import prepare  # psycopg only for the postgres store

        config = prepare(config, explicit_settings(chosen), team=team)
    return config


def explicit_settings(chosen: Mapping[str, Any] | None = None) -> set[str]:
    """The settings chosen at this start, by flag or `BANKAPP_*` variable: with the postgres store they are
    written to the database; the rest are read from it."""
    return set(expand_guard(from_environment())) | set(expand_guard(dict(chosen or {})))


def build_lab(config: Config, plugged: Plugged | None = None, *, team: str = "default") -> LabLike:
    """The lab `config.store` asks for: `Lab` in memory, or `PostgresLab` over the shared database (`team`'s
    tables there; a memory lab is its team's by being its own object).

    `plugged`: a trainee's code in the memory lab's place (`bankapp serve --exercise`), never the postgres one's.
    """
    if config.store == "postgres":
        from .postgres import PostgresLab  # psycopg only for the postgres store

        return PostgresLab(config, team=team)
    return Lab(config, plugged=plugged)


#: The team every request belongs to when it names none: today's lab, today's routes.
DEFAULT_TEAM = "default"


def make_team_lab(config: Config, team: str = DEFAULT_TEAM, token_digest: bytes | None = None) -> LabLike:
    """Team `team`'s own lab, and the one way a room makes one (see `bankapp.rooms`).

    In memory a team's lab is a `Lab` of its own: nothing is shared with
    another team's but the process. On postgres its tables are in its own
    schema: with `token_digest` the team is made in the database's register
    (a `ValueError`, `TeamExists`, when another worker made it first), without
    it found there (a team another worker made; `LookupError` if none did).
    The default team's is `build_lab`'s.
    """
    if team == DEFAULT_TEAM:
        return build_lab(config)
    if config.store == "postgres":
        from .postgres import prepare  # psycopg only for the postgres store

        return build_lab(prepare(config, set(), team=team, token_digest=token_digest), team=team)
    return Lab(config)
