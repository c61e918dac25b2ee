"""The ten-minute deposit on PostgreSQL: `minimal_deposit.py` with its dict swapped for one UPDATE.

    MINIMAL_DATABASE_URL=postgresql://... gunicorn -k gthread --threads 18 --chdir benchmarks \
        minimal_postgres_deposit:app

psycopg's connection pool (as bankapp's: one connection at first, at most one
per thread; autocommit), one
statement per deposit (`UPDATE ... SET balance = balance + %s ... RETURNING
balance` on bankapp's own `bankapp_accounts`, counting the deposit as
bankapp does), `request.get_json()`, a 400 on a bad amount, a 404 for an
unknown account. No settings, no log of writes, no lock timeout, no
validation models, no problem details. `postgres_deposits.py` serves it
beside `minimal_deposit.py` with the same gunicorn settings: the ratio of the
two is what one round trip to the database costs a deposit with no lab
around it, the anchor for bankapp's `atomic-update` against its memory store.
"""

import os

from flask import Flask, jsonify, request
from psycopg_pool import ConnectionPool

DEPOSIT = """
UPDATE bankapp_accounts SET balance = balance + %(amount)s, version = version + 1, deposits = deposits + 1,
       deposit_amount = deposit_amount + %(amount)s, net = net + %(amount)s
WHERE id = %(id)s RETURNING balance"""

app = Flask(__name__)
threads = int(os.environ.get("MINIMAL_THREADS", "18"))
# gunicorn imports the app in its worker (no --preload): the connections are the worker's own
# (as bankapp's pool: one connection at first, one per thread at most, grown as requests wait for one)
pool = ConnectionPool(
    os.environ["MINIMAL_DATABASE_URL"], min_size=1, max_size=threads, kwargs={"autocommit": True}, open=True
)
pool.wait()


@app.post("/accounts/<account_id>/deposit")
def deposit(account_id):
    body = request.get_json()
    amount = body.get("amount") if isinstance(body, dict) else None
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return jsonify(error="amount must be a positive integer"), 400
    with pool.connection() as conn:
        row = conn.execute(DEPOSIT, {"amount": amount, "id": account_id}).fetchone()
    if row is None:
        return jsonify(error=f"unknown account {account_id}"), 404
    return jsonify(id=account_id, balance=row[0])
