"""The tables, their version, the seed, and what `bankapp serve --store postgres` checks before it starts.

`prepare(config, explicit)` runs once, in gunicorn's master before any
worker is forked (or in each worker of a plain `gunicorn bankapp.wsgi:app`):

1. connect, or refuse to start with a message naming `database_url`
   (unreachable, wrong database, wrong credentials: never a traceback);
2. create the tables if they are missing and record the schema version
   (a database written by a newer bankapp is refused, not misread);
3. settle the settings: those the operator chose at start (flags and
   `BANKAPP_*` variables) are written into the database; every other one
   is read from it, so a worker or a machine joining a running fleet takes
   the fleet's settings rather than resetting them to the defaults;
4. seed the accounts and the stock on first start, and the accounts again
   if the bank's shape (`accounts`, `initial_balance`) was chosen anew.

All of it is one transaction under an advisory lock, so servers started
at once do not race each other's DDL.

A team (`team="red"`, rooms) gets the same tables in a schema of its own
(`bankapp_team_red`), made the first time it is prepared, and a number
from `bankapp_teams` (beside the default team's tables), which gives it
its own advisory-lock keys (`Database.key`). Preparing a team again, from
any worker at once, changes nothing but the settings chosen anew: the
same lock, `IF NOT EXISTS`, and a number only for a name that has none.
The default team is prepared exactly as before teams existed.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql as query
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from ..lab.shop import CATALOGUE
from ..settings import Config, SettingsError, describe
from ..settings.values import hide_password
from .database import DEFAULT_TEAM, database_url, team_schema

SCHEMA_VERSION = 3  # 2: the writes log and the races (forensics); 3: Idempotency-Key answers
#: Key of the advisory lock that serializes `prepare` across servers starting at once.
PREPARE_LOCK = (0, 0)
CONNECT_TIMEOUT = 5

TABLES = (
    """CREATE TABLE IF NOT EXISTS bankapp_schema (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        version integer NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS bankapp_settings (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        version bigint NOT NULL,
        body jsonb NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT now(),
        changed_by text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS bankapp_accounts (
        id text PRIMARY KEY,
        balance bigint NOT NULL,
        opening bigint NOT NULL,
        version bigint NOT NULL DEFAULT 0,
        deposits bigint NOT NULL DEFAULT 0,
        deposit_amount bigint NOT NULL DEFAULT 0,
        withdrawals bigint NOT NULL DEFAULT 0,
        withdrawal_amount bigint NOT NULL DEFAULT 0,
        net bigint NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS bankapp_stock (
        sku text PRIMARY KEY,
        units bigint NOT NULL,
        initial bigint NOT NULL,
        sold bigint NOT NULL DEFAULT 0)""",
    "CREATE TABLE IF NOT EXISTS bankapp_counters (name text PRIMARY KEY, n bigint NOT NULL DEFAULT 0)",
    """CREATE TABLE IF NOT EXISTS bankapp_gauges (
        name text PRIMARY KEY, now bigint NOT NULL DEFAULT 0, peak bigint NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS bankapp_workers (
        host text NOT NULL, pid integer NOT NULL, started_at timestamptz NOT NULL,
        last_seen timestamptz NOT NULL, served bigint NOT NULL DEFAULT 0, PRIMARY KEY (host, pid))""",
    """CREATE TABLE IF NOT EXISTS bankapp_deadlocks (
        id bigserial PRIMARY KEY, detected_at timestamptz NOT NULL DEFAULT now(), detected_by text NOT NULL,
        accounts text[] NOT NULL, detail text NOT NULL, cycle jsonb NOT NULL, context text NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS bankapp_writes (
        account text NOT NULL, version bigint NOT NULL, parent bigint NOT NULL, delta bigint NOT NULL,
        balance bigint NOT NULL, request_id text, operation text, thread text NOT NULL, pid integer NOT NULL,
        read_at float8 NOT NULL, at float8 NOT NULL DEFAULT extract(epoch FROM clock_timestamp())::float8,
        PRIMARY KEY (account, version))""",
    "CREATE TABLE IF NOT EXISTS bankapp_races (id bigserial PRIMARY KEY, body jsonb NOT NULL)",
    """CREATE TABLE IF NOT EXISTS bankapp_resets (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        resets bigint NOT NULL DEFAULT 0,
        since timestamptz NOT NULL DEFAULT now())""",
    "INSERT INTO bankapp_resets (one) VALUES (true) ON CONFLICT (one) DO NOTHING",
    "CREATE SEQUENCE IF NOT EXISTS bankapp_order_ids",
    """CREATE TABLE IF NOT EXISTS bankapp_idempotency (
        key text PRIMARY KEY, fingerprint text NOT NULL, claimed_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(), status integer, body bytea, headers jsonb)""",
    "CREATE INDEX IF NOT EXISTS bankapp_idempotency_created ON bankapp_idempotency (created_at)",
)

TEAMS = (
    """CREATE TABLE IF NOT EXISTS bankapp_teams (
        name text PRIMARY KEY, number integer NOT NULL UNIQUE CHECK (number > 0), schema text NOT NULL UNIQUE,
        token_digest bytea, created_at timestamptz NOT NULL DEFAULT now())""",
    """INSERT INTO bankapp_teams (name, number, schema, token_digest)
        SELECT %(name)s, coalesce(max(number), 0) + 1, %(schema)s, %(token_digest)s FROM bankapp_teams
        ON CONFLICT (name) DO NOTHING
        RETURNING number""",
)
"""The room's register, beside the default team's tables: each team's number (so its advisory-lock keys) and
its token's digest, which every worker of the room reads (`PostgresLab.teams`)."""

REGISTERED = """
SELECT name, token_digest FROM bankapp_teams ORDER BY number"""

TEAM = """CREATE TABLE IF NOT EXISTS bankapp_team (
    one boolean PRIMARY KEY DEFAULT true CHECK (one), name text NOT NULL, number integer NOT NULL)"""
"""A team's own copy of its name and number, which its workers read on their first connection."""

GAUGE_NAMES = ("checkout.in_flight", "checkout.waiting", "checkout.gateway", "transfers.in_flight")


def connect(url: str, **kwargs: Any) -> psycopg.Connection:
    """A connection, or `SettingsError` naming `database_url` and what libpq said."""
    try:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True, **kwargs)
    except (psycopg.Error, ValueError) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise SettingsError(
            f"database_url: cannot use the database at {hide_password(url)}: {reason}",
            [{"setting": "database_url", "message": reason, "type": "database_unreachable"}],
        ) from None


class TeamExists(ValueError):
    """`prepare` was asked to make a team (with a token's digest) that another call made first."""

    def __init__(self, team: str):
        super().__init__(f"team {team!r} already exists")
        self.team = team


def prepare(
    config: Config,
    explicit: set[str] | frozenset[str] = frozenset(),
    team: str = DEFAULT_TEAM,
    token_digest: bytes | None = None,
) -> Config:
    """Make the database ready for `config` (for `team`'s tables) and return the settings in force there (see
    the module docstring); `ValueError` for a name that is no team's.

    With `token_digest`, this call makes the team, or raises `TeamExists`
    having changed nothing: of two workers making one team at once, one
    wins. Without it, a team is made if missing and else found (a worker
    building its lab of a team another made)."""
    url = database_url(config)
    schema = team_schema(team)
    with connect(url, application_name="bankapp prepare") as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", PREPARE_LOCK)
        if schema is not None:
            register_team(conn, team, schema, token_digest)
        for statement in TABLES:
            conn.execute(statement)
        check_version(conn, url)
        settled = settle_settings(conn, config, explicit)
        seed(conn, settled)
    return settled


class RoomFull(OverflowError):
    """`prepare` was asked to make a team past `MAX_TEAMS` (other workers made the rest meanwhile)."""


#: Teams a room's register holds, the default team included (as `bankapp.rooms.MAX_TEAMS`): checked here, under
#: `prepare`'s lock, so workers making teams at once cannot pass it between them.
MAX_TEAMS = 64


def register_team(conn: psycopg.Connection, team: str, schema: str, token_digest: bytes | None = None) -> None:
    """The team's number and schema, made if missing; the rest of the transaction then works in its schema."""
    conn.execute(TEAMS[0])
    count = conn.execute("SELECT count(*) FROM bankapp_teams WHERE name <> %s", (team,)).fetchone()
    if token_digest is not None and count is not None and count[0] + 1 >= MAX_TEAMS:
        raise RoomFull(f"the room holds its {MAX_TEAMS} teams already")
    made = conn.execute(TEAMS[1], {"name": team, "schema": schema, "token_digest": token_digest}).fetchone()
    if made is None and token_digest is not None:
        raise TeamExists(team)
    number = conn.execute("SELECT number FROM bankapp_teams WHERE name = %s", (team,)).fetchone()
    conn.execute(query.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(query.Identifier(schema)))
    conn.execute(query.SQL("SET LOCAL search_path TO {}").format(query.Identifier(schema)))
    conn.execute(TEAM)
    conn.execute(
        "INSERT INTO bankapp_team (name, number) VALUES (%s, %s) ON CONFLICT (one) DO NOTHING",
        (team, number[0] if number else None),
    )


def registered_teams(conn: psycopg.Connection) -> dict[str, bytes | None]:
    """Every team of the room in the order they were made, with its token's digest (None: made without one);
    empty while the database has no room. Run it on a connection of the default team's."""
    if conn.execute("SELECT to_regclass('bankapp_teams')").fetchone() == (None,):
        return {}
    return {name: None if digest is None else bytes(digest) for name, digest in conn.execute(REGISTERED)}


def check_version(conn: psycopg.Connection, url: str) -> None:
    row = conn.execute("SELECT version FROM bankapp_schema").fetchone()
    if row is None:
        conn.execute("INSERT INTO bankapp_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
    elif row[0] < SCHEMA_VERSION:  # the tables it lacked were created just now
        conn.execute("UPDATE bankapp_schema SET version = %s", (SCHEMA_VERSION,))
    elif row[0] > SCHEMA_VERSION:
        raise SettingsError(
            f"database_url: the database at {hide_password(url)} holds bankapp schema version {row[0]}, newer than "
            f"this bankapp's {SCHEMA_VERSION}; upgrade bankapp or use another database"
        )


def settle_settings(conn: psycopg.Connection, config: Config, explicit: set[str] | frozenset[str]) -> Config:
    """The settings in force: the database's, overridden by what was chosen at this start."""
    row = conn.execute("SELECT body FROM bankapp_settings FOR UPDATE").fetchone()
    chosen = config.shared()
    if row is not None:
        chosen = {**row[0], **{name: value for name, value in chosen.items() if name in explicit}}
    try:
        settled = Config.model_validate({**chosen, **config.process()})
    except ValidationError as error:  # the database's settings do not fit this process (its threads, say)
        raise describe(error) from None
    body = Jsonb(settled.shared())
    if row is None:
        conn.execute(
            "INSERT INTO bankapp_settings (version, body, changed_by) VALUES (1, %s, 'bankapp serve')", (body,)
        )
    elif row[0] != settled.shared():
        conn.execute(
            "UPDATE bankapp_settings SET version = version + 1, body = %s, changed_at = now(), "
            "changed_by = 'bankapp serve' ",
            (body,),
        )
    return settled


def seed(conn: psycopg.Connection, config: Config) -> None:
    """Accounts and stock, on first start; the accounts again if their number or opening balance changed."""
    rows = conn.execute("SELECT id, opening FROM bankapp_accounts ORDER BY id").fetchall()
    if rows != [(account, config.initial_balance) for account in config.account_ids]:
        conn.execute("DELETE FROM bankapp_accounts")
        # new accounts start again at version 0, and their races with them
        conn.execute("DELETE FROM bankapp_writes")
        conn.execute("DELETE FROM bankapp_races")
        conn.execute("UPDATE bankapp_counters SET n = 0 WHERE name LIKE 'races.%'")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bankapp_accounts (id, balance, opening) VALUES (%s, %s, %s)",
                [(account, config.initial_balance, config.initial_balance) for account in config.account_ids],
            )
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO bankapp_stock (sku, units, initial) VALUES (%s, %s, %s) ON CONFLICT (sku) DO NOTHING",
            [(sku, units, units) for sku, units in CATALOGUE.items()],
        )
        cursor.executemany(
            "INSERT INTO bankapp_gauges (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
            [(name,) for name in GAUGE_NAMES],
        )
