"""bankapp under load: pick scenarios by naming their user classes.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000          # web UI: tick classes, START
    locust -f loadtests/locustfile.py DepositUser --host http://127.0.0.1:8000 \\
        --headless -u 16 -r 16 -t 10s --fail-on-anomaly --verdict-json verdict.json

Scenarios: DepositUser, BatchDepositUser, RetryingDepositUser, CheckoutUser,
TransferUser, AuditUser, in any mix. At the end the master prints a verdict
(see `loadtests.verdict`); the web UI shows it in its "bankapp verdict" tab
(see `loadtests.webui`).
Run it from the repository root or with bankapp installed (`pip install -e
'.[load]'`), so that `loadtests` imports. It imports nothing from `bankapp`:
Locust patches this process with gevent, and the load generator knows the
server only through HTTP.
"""

from locust import events

from loadtests import pacing
from loadtests.options import add_options
from loadtests.referee import Referee
from loadtests.users import (
    AuditUser,
    BatchDepositUser,
    CheckoutUser,
    DepositUser,
    RetryingDepositUser,
    TransferUser,
)
from loadtests.webui import VerdictTab

__all__ = [
    "AuditUser",
    "BatchDepositUser",
    "CheckoutUser",
    "DepositUser",
    "RetryingDepositUser",
    "TransferUser",
]

events.init_command_line_parser.add_listener(add_options)
pacing.attach(events)
referee = Referee()
referee.attach(events)
VerdictTab(referee).attach(events)
