"""The postgres store's tests: labs that are workers of one fleet, on a database of the test's own."""

import pytest


@pytest.fixture
def make_pg_lab(database_url):
    """Build postgres labs on this test's database: `make_pg_lab(deposit_guard="row-lock")`.

    Two labs in one process are two workers as far as the lesson goes: each
    has its own Python guards and its own pool, and they share the database.
    """
    from bankapp.postgres import PostgresLab, prepare
    from bankapp.settings import load

    from ..harness import FAST

    labs = []

    def build(join: bool = False, **settings):
        """`join`: a worker joining a running fleet, which takes the settings already in the database."""
        chosen = {**FAST, "threads": 8, **settings}
        config = load({**chosen, "store": "postgres", "database_url": database_url}, environ={})
        lab = PostgresLab(prepare(config, set() if join else set(chosen)))
        labs.append(lab)
        return lab

    yield build
    for lab in labs:
        lab.close()
