"""The baseline: the deposit an engineer writes in ten minutes, with no lab around it.

    gunicorn -k gthread --threads 32 --bind 127.0.0.1:8001 --chdir benchmarks minimal_deposit:app

A dict of balances, a `Lock` per account, `request.get_json()`, a 400 on a
bad amount. No validation models, no OpenAPI document, no counters, no
idempotency, no problem details, no hardened worker. `deposit_guards.py`
serves it with the same gunicorn settings as `bankapp serve` and compares
bankapp's deposit under `lock` with it: what the whole lab costs on the hot
path.
"""

import threading

from flask import Flask, jsonify, request

app = Flask(__name__)
balances = {f"acc-{i:02d}": 100_000 for i in range(16)}
locks = {account: threading.Lock() for account in balances}


@app.post("/accounts/<account_id>/deposit")
def deposit(account_id):
    if account_id not in balances:
        return jsonify(error=f"unknown account {account_id}"), 404
    body = request.get_json()
    amount = body.get("amount") if isinstance(body, dict) else None
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return jsonify(error="amount must be a positive integer"), 400
    with locks[account_id]:
        balances[account_id] += amount
        balance = balances[account_id]
    return jsonify(id=account_id, balance=balance)
