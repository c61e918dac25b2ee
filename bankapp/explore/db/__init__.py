"""The postgres store explored and replayed statement by statement (see `bankapp/explore/database.py`).

- `rules`: which scenarios and guards run on the database, and why the others cannot (no psycopg);
- `session`: one schedule on the database: sessions paused at their statements, a block seen in pg_locks;
- `replay`: one schedule named in `bankapp interleave`'s notation, replayed on the server's database.
"""
