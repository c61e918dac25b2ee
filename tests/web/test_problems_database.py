"""A refusal PostgreSQL makes on purpose is never a 500 (issue 19, item 3).

A deadlock victim (`40P01`), a serialization failure (`40001`) or a lock
timeout (`55P03`) that no domain code answers reaches the error handler as
psycopg's exception: its transaction was rolled back and nothing changed,
so the answer is a 503 problem with `Retry-After`, not an internal error.
"""

from __future__ import annotations

import pytest
from psycopg import errors


@pytest.mark.parametrize(
    "error", [errors.DeadlockDetected, errors.SerializationFailure, errors.LockNotAvailable], ids=lambda e: e.sqlstate
)
def test_a_database_refusal_no_view_answered_is_a_503_to_retry(app, error):
    app.add_url_rule("/refused", "refused", lambda: (_ for _ in ()).throw(error("refused on purpose")))
    response = app.test_client().get("/refused")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json["type"].endswith("database-conflict") and response.json["sqlstate"] == error.sqlstate


def test_any_other_error_is_still_a_500(app):
    app.add_url_rule("/broken", "broken", lambda: 1 / 0)
    response = app.test_client().get("/broken")
    assert response.status_code == 500 and response.json["type"].endswith("internal-error")
