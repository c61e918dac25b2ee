"""The Locust scenarios for real: gunicorn on a free port, `locust` as a subprocess, a verdict.

Each run lasts a few seconds and is bounded by a timeout; a run that hangs is
killed by its process group (the one `locust` and its `--processes`
children share): compare's `run_locust` starts it so.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bankapp.compare.locust_runs import LocustJob, LocustRun
from bankapp.compare.locust_runs import run_locust as run_headless
from bankapp.server.processes import ProcessError

from ..live import live_server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
RUN_SECONDS = 3
RUN_TIMEOUT = 90


@pytest.fixture(scope="module")
def server():
    with live_server("--guard", "unsafe", "--race-window-ms", "1") as running:
        yield running


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_locust(server, tmp_path: Path, *users: str, users_count: int = 16, extra: tuple[str, ...] = ()) -> LocustRun:
    """A headless run of the named user classes against `server`; its exit code, output, verdict and stats."""
    try:
        job = LocustJob(
            LOCUSTFILE,
            users,
            server.url,
            users=users_count,
            duration=RUN_SECONDS,
            prefix=tmp_path / "locust",
            extra=("--fail-on-anomaly", *extra),
        )
        return run_headless(
            job,
            timeout=RUN_TIMEOUT,
            cwd=tmp_path,  # not the repository root: the locustfile must find its modules on its own
        )
    except ProcessError as error:  # it did not finish in time, and was killed
        pytest.fail(str(error))


def processes(count: int) -> tuple[str, ...]:
    port = str(free_port())  # not Locust's default 5557: other runs may share this machine
    return ("--processes", str(count), "--master-bind-port", port, "--master-port", port)


def server_deposits(server) -> dict:
    return server.get("/stats").json()["deposits"]


def check_deposit_counts_agree_with_server(run: LocustRun, server) -> dict:
    """Both workers' counts reached the verdict: the server acknowledged what the clients saw (plus unanswered)."""
    section = run.verdict["deposits"]
    stats = server_deposits(server)
    unanswered = section["attempted_amount"] - section["acknowledged_amount"]
    assert 0 <= stats["acknowledged_amount"] - section["acknowledged_amount"] <= unanswered, run
    assert section["acknowledged"] == run.entry("deposit")["num_requests"] - run.entry("deposit")["num_failures"]
    return section


@pytest.mark.parametrize(
    "extra", [pytest.param((), id="one-process"), pytest.param(processes(2), id="processes-2", marks=pytest.mark.slow)]
)
def test_deposits_under_unsafe_lose_updates_and_fail_the_run(server, tmp_path, extra):
    server.configure(guard="unsafe")
    run = run_locust(server, tmp_path, "DepositUser", extra=extra)
    assert run.returncode == 1, run
    assert run.verdict["ok"] is False
    section = check_deposit_counts_agree_with_server(run, server)
    assert section["lost_updates"] > 0
    # Jepsen's bound against the server's own count: the server knows every acknowledged deposit, the
    # clients miss at most those still unanswered when the run stopped.
    server_lost = server_deposits(server)["lost_updates"]
    unanswered = section["attempted_amount"] - section["acknowledged_amount"]
    assert 0 <= server_lost - section["lost_updates"] <= unanswered, run
    assert section["lost_percent"] == round(100 * section["lost_updates"] / section["acknowledged_amount"], 1)
    sentence = f"lost {section['lost_updates']:,} of {section['acknowledged_amount']:,} acknowledged deposits"
    assert any(sentence in anomaly for anomaly in run.verdict["anomalies"]), run.verdict["anomalies"]
    assert sentence in run.output
    if extra:
        assert run.verdict["workers"] == 2
    # who erased whom: every lost cent is named by the server, and the verdict quotes one erasure
    races = server.get("/debug/races").json()
    assert races["lost_updates"] == server_lost == run.verdict["races"]["lost_updates"] and races["erasures"] > 0
    assert run.verdict["races"]["example"] in {event["sentence"] for event in races["races"]}
    assert "races      the server named" in run.output and "for example:" in run.output


@pytest.mark.parametrize(
    "extra", [pytest.param((), id="one-process"), pytest.param(processes(2), id="processes-2", marks=pytest.mark.slow)]
)
def test_deposits_under_lock_lose_nothing_and_pass(server, tmp_path, extra):
    server.configure(guard="lock")
    run = run_locust(server, tmp_path, "DepositUser", extra=extra)
    assert run.returncode == 0, run
    assert run.verdict["ok"] is True, run.verdict["anomalies"]
    section = check_deposit_counts_agree_with_server(run, server)
    assert section["lost_updates"] == 0
    assert section["acknowledged"] > 100  # the run really ran
    assert server_deposits(server)["lost_updates"] == 0
    assert "every acknowledged deposit is in the balance" in run.output
    assert server.get("/debug/races").json()["erasures"] == 0 and run.verdict["races"]["erasures"] == 0
    assert "races      no write erased another" in run.output


def test_checkout_under_semaphore_rejects_the_excess_within_capacity(server, tmp_path):
    server.configure(guard="semaphore", capacity=4, max_waiting=0, admission_timeout_ms=0)
    run = run_locust(server, tmp_path, "CheckoutUser", users_count=24, extra=("--skus", "widget"))
    assert run.returncode == 0, run
    section = run.verdict["checkout"]
    assert section["capacity"] == 4
    assert 1 <= section["peak_in_flight"] <= 4
    assert section["rejected"] > 0 and section["admitted"] > 0
    assert section["oversold"] == 0
    rejected = run.entry("checkout: rejected by admission")
    assert rejected["num_requests"] > 0 and rejected["num_failures"] == 0


@pytest.mark.parametrize(("policy", "conserved"), [("ordered", True), ("unsafe", False)])
def test_transfers_with_audits_conserve_money_only_under_a_safe_policy(server, tmp_path, policy, conserved):
    # Mixed amounts, and up to three runs under unsafe: money lost on one account can cancel
    # money created on another by chance (found in review); it cannot keep doing so.
    for attempt in range(1 if conserved else 3):
        server.configure(transfer_policy=policy)
        folder = tmp_path / str(attempt)
        folder.mkdir()
        run = run_locust(server, folder, "TransferUser", "AuditUser", extra=("--amounts", "7,11,13"))
        if run.verdict["transfers"]["total_conserved"] is conserved:
            break
    section = run.verdict["transfers"]
    assert section["committed"] > 0
    assert section["total_conserved"] is conserved, run.verdict
    if conserved:
        assert run.returncode == 0, run
        assert section["deadlocks"] == 0 and section["wrong_total_reads"] == 0
        assert section["negative_balances"] == 0
    else:
        assert run.returncode == 1, run
        assert any("not conserved" in anomaly for anomaly in run.verdict["anomalies"])


# Retries after a timeout. Every deposit sleeps RACE_WINDOW_MS on the server, so a client that waits
# REQUEST_TIMEOUT (six times less) always times out, however slow this machine: the test depends on the
# window being longer than the timeout, not on speed. The backoff outlasts the window, so most retries
# find the first try finished; with RUN_SECONDS of 3, no deposit can use up its retries (0.5+1+2+4 s).
RACE_WINDOW_MS = 300
RETRYING = ("--request-timeout", "0.05", "--retries", "4", "--retry-backoff", "0.5", "--accounts", "all")


@pytest.fixture
def slow_server():
    """A fresh server per run: requests the clients gave up on must not land in the next run."""
    with live_server("--guard", "lock", "--race-window-ms", str(RACE_WINDOW_MS), "--accounts", "8") as running:
        yield running


def test_retries_with_idempotency_keys_apply_each_deposit_once(slow_server, tmp_path):
    run = run_locust(slow_server, tmp_path, "RetryingDepositUser", users_count=8, extra=RETRYING)
    assert run.returncode == 0, run
    assert run.verdict["ok"] is True, run.verdict["anomalies"]
    section = run.verdict["deposits"]
    assert section["timeouts"] > 0 and section["retries"] > 0 and section["keyless_retries"] == 0
    assert section["replayed"] > 0  # retries answered with the first answer, applied nothing
    assert section["applied_twice"] == 0
    assert section["acknowledged_amount"] <= section["balance_change"] <= section["attempted_amount"]
    # the server applied no deposit more often than the clients attempted it
    assert server_deposits(slow_server)["acknowledged_amount"] <= section["attempted_amount"]
    assert run.entry("deposit with retries: replayed")["num_failures"] == 0
    assert "(all keyed)" in run.output


def test_retries_without_idempotency_keys_apply_deposits_twice_and_fail_the_run(slow_server, tmp_path):
    run = run_locust(
        slow_server, tmp_path, "RetryingDepositUser", users_count=8, extra=(*RETRYING, "--no-idempotency-keys")
    )
    assert run.returncode == 1, run
    assert run.verdict["ok"] is False
    section = run.verdict["deposits"]
    assert section["retries"] == section["keyless_retries"] > 0
    assert section["replayed"] == 0
    assert section["applied_twice"] == section["balance_change"] - section["attempted_amount"] > 0
    doubled = [anomaly for anomaly in run.verdict["anomalies"] if "applied twice" in anomaly]
    assert doubled and "retries without an Idempotency-Key" in doubled[0], run.verdict["anomalies"]
    assert run.verdict["disagreements"] == []  # the keyless retries explain the server's extra deposits
    assert "applied twice" in run.output


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
def test_the_master_sends_the_admin_token_a_server_wants(tmp_path):
    """A server with an admin_token (bound beyond loopback, as in docker-compose.yml) answers the reset and the
    settings read only with the token: Locust given it judges the run; without it, it says what is missing."""
    with live_server("--guard", "lock", "--admin-token", "t0ken") as guarded:
        with_token = run_locust(guarded, tmp_path, "DepositUser", users_count=4, extra=("--admin-token", "t0ken"))
        assert with_token.returncode == 0, with_token
        assert with_token.verdict["ok"] is True and "could not read the server" not in with_token.output
        without = run_locust(guarded, tmp_path, "DepositUser", users_count=4)
    assert "POST /admin/reset answered 401: the server's admin_token is needed" in without.output
    assert "give Locust --admin-token (or LOCUST_ADMIN_TOKEN)" in without.output
