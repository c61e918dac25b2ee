"""A property-based fuzz of the API from its own OpenAPI document (schemathesis).

Schemathesis reads `/openapi.json`, generates requests for every operation,
valid and invalid, sends them to the WSGI app in process, and checks every
answer: no 5xx, a status, content type, headers and body the document
declares, invalid input refused with a 4xx. Bounded in examples per
operation and by pytest-timeout, so it runs in CI every time.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from bankapp import create_app
from bankapp.settings import STARTUP_ONLY, Config

pytestmark = pytest.mark.fuzz

#: A short lock timeout, so that the batch deposit self-deadlocks (503) fast.
#: A `Config`, not overrides: built at import, before the fixture that hides
#: a developer's BANKAPP_* variables runs.
app = create_app(Config(race_window_ms=0, lock_timeout_ms=20))
lab = app.extensions["bankapp"]
RUNTIME_SETTINGS = {
    name: value for name, value in lab.config().model_dump().items() if name not in STARTUP_ONLY | {"admin_token"}
}

schema = schemathesis.openapi.from_wsgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_keeps_the_document(case):
    try:
        case.call_and_validate()
    finally:
        # PATCH /admin/config may have set a 10 s race window or a guard that
        # self-deadlocks: each example starts from the same settings
        lab.settings.patch(RUNTIME_SETTINGS)
