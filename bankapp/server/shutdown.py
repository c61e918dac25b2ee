"""How a `bankapp serve` worker stops: what it waits for, what it cuts, and its last line.

On SIGTERM gunicorn's gthread worker stops accepting and lets the requests
in flight finish (their clients get their answers); on SIGINT (Ctrl-C) or
SIGQUIT it exits at once, and Python still waits for the request threads to
end. Either way the master gives the worker `graceful_timeout` seconds, then
kills it with SIGKILL and logs "Perhaps out of memory?", which is the wrong
story when the worker was only waiting for requests stuck on locks, say two
transfers in a deadlock under `lock_timeout_ms` `none`: they will never end.

So the worker watches its own stop (`Stopping`, installed by gunicorn's
`post_worker_init` hook around the worker's signal handlers):

- requests that finish in time finish, and the worker exits the usual way;
- requests that can never finish (every one left waits in a deadlock that
  nobody may break) are stopped at once, and
- whatever is still running `MARGIN_S` before the graceful timeout ends is
  stopped then, before gunicorn's SIGKILL. A quick stop (SIGINT, SIGQUIT)
  after a SIGTERM leaves less: the master then gives the worker
  `QUICK_AFTER_TERM_S` more seconds, no longer its graceful timeout, so the
  deadline moves to `QUICK_MARGIN_S` after that signal.

Stopping them says why, in one line ("2 requests still waiting on acc-00
and acc-01 in a deadlock: stopping them"). The worker's last line, however it
stops, is a short summary: what it acknowledged, what it lost, and any guard
or lock still held (a request that never finished). The memory store dies
with the worker, so a client that counted its 200s can hold the server to
them after it is gone. The full counters follow at gunicorn's debug level
(`--log-level debug`).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from typing import Any

from ..lab.store import StoreUnavailable

#: How long before the graceful timeout ends the worker stops what is left.
MARGIN_S = 2.0
#: A quick stop after a SIGTERM: gunicorn's master gives the worker this long from then (its `Arbiter.stop`), and
#: the worker stops what is left this long after the quick stop's signal, before that ends.
QUICK_AFTER_TERM_S = 2.0
QUICK_MARGIN_S = 1.5
#: Requests still running this long after the signal are announced.
ANNOUNCE_AFTER_S = 0.5
SUMMARY_PREFIX = "bankapp: worker "


class InFlight:
    """Which thread serves which request right now.

    Every request passes here, so it takes no lock: each thread writes and
    removes only its own entry (one dict operation each, atomic in CPython),
    and whoever reads copies the dict first. The hardened worker keeps the
    entries itself (`HardenedWorker.handle_request`: gunicorn's parsed
    request, from its head to its answer's close); any other worker serves
    through this object as a WSGI middleware, which keeps the environ. The
    request's name is made only when someone asks (`requests()`).
    """

    def __init__(self, app, on_idle):
        self.app = app
        self.on_idle = on_idle  # called when the last request ends
        self.running: dict[int, Any] = {}  # thread ident -> gunicorn's request, or the WSGI environ

    def __call__(self, environ, start_response):
        ident = threading.get_ident()
        self.running[ident] = environ
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._done(ident)
            raise
        return Closing(body, self, ident)

    def _done(self, ident: int) -> None:
        self.running.pop(ident, None)
        if not self.running:
            self.on_idle()  # two requests ending together may both call it: it says the last line once

    def requests(self) -> dict[int, str]:
        """Thread ident -> "METHOD /path" of every request being served."""
        return {ident: name(request) for ident, request in self.running.copy().items()}


def name(request) -> str:
    """`METHOD /path` of gunicorn's request (its path as sent) or of a WSGI environ."""
    if isinstance(request, dict):
        return f"{request.get('REQUEST_METHOD', '?')} {request.get('PATH_INFO', '?')}"
    return f"{request.method} {request.path}"


class Closing:
    """A WSGI response body that tells `in_flight` its request is done once the server has closed it."""

    __slots__ = ("_body", "_ident", "_in_flight")

    def __init__(self, body, in_flight: InFlight, ident: int):
        self._body = body
        self._in_flight = in_flight
        self._ident = ident

    def __iter__(self):
        return iter(self._body)

    def close(self):
        try:
            if hasattr(self._body, "close"):
                self._body.close()
        finally:
            self._in_flight._done(self._ident)


class Stopping:
    """One worker's stop: started by the first stop signal, watched by a daemon thread."""

    def __init__(self, worker, app):
        self.worker = worker
        self.lab = app.extensions["bankapp"]
        self.room = app.extensions.get("bankapp.room")  # a room's teams: their labs close with the default's
        self.in_flight = InFlight(app, self._maybe_final)
        self.graceful_timeout = float(worker.cfg.graceful_timeout)
        self._lock = threading.Lock()
        self._began: float | None = None
        self._deadline = 0.0  # when whatever still runs is stopped (`begin`)
        self._graceful = False  # the stop began with SIGTERM: a quick stop may follow, and shorten it
        self._exiting = False  # the worker has left its loop (gunicorn's worker_exit)
        self._said_last = False

    def install(self) -> None:
        """Count requests in flight, and start watching on SIGTERM, SIGINT and SIGQUIT."""
        if hasattr(self.worker, "in_flight"):  # the hardened worker counts them itself
            self.worker.in_flight = self.in_flight
        else:
            self.worker.wsgi = self.in_flight
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(signum, self._wrap(signal.getsignal(signum)))
        signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn has it: SIGTERM must not cut a request's I/O

    def _wrap(self, handler):
        def on_signal(signum, frame):
            self.begin(quick=signum != signal.SIGTERM)
            if callable(handler):
                handler(signum, frame)

        return on_signal

    def begin(self, quick: bool = False) -> None:
        """Start watching, once; a quick stop (SIGINT, SIGQUIT) after a SIGTERM brings the deadline forward.

        Only signal handlers call it, on the main thread, so it takes no lock:
        a second signal's handler runs nested in the first's, and would wait
        forever on a lock the first holds. A nested call between the check
        and the store may start a second watcher; the one that finds it is
        not the first leaves (`_watch`)."""
        now = time.monotonic()
        if self._began is not None:
            if quick and self._graceful:  # the master now waits QUICK_AFTER_TERM_S, not its graceful timeout
                self._deadline = min(self._deadline, now + QUICK_MARGIN_S)
            return
        self._graceful = not quick
        self._deadline = now + max(self.graceful_timeout - MARGIN_S, 0.5)
        self._began = now
        threading.Thread(target=self._watch, args=(now,), name="bankapp-stopping", daemon=True).start()

    def _watch(self, began: float) -> None:
        announced = False
        while self._began == began:
            time.sleep(0.1)
            running = self.in_flight.requests()
            if not running:
                continue  # the worker exits the usual way and says its last line (unless a late request sticks)
            now, deadline = time.monotonic(), self._deadline
            if not announced and now - began >= ANNOUNCE_AFTER_S:
                announced = True
                say(
                    f"bankapp: stopping; waiting up to {deadline - began:g} s for "
                    f"{plural(len(running), 'request')} in flight"
                )
            if now >= deadline or self._stuck_for_good(running):
                self._cut(running)

    def _stuck_for_good(self, running: dict[int, str]) -> bool:
        """Every request left waits in a deadlock that nobody may break (lock_timeout_ms none)."""
        if self.lab.config().lock_timeout_ms is not None:
            return False
        deadlocked = {step["ident"] for cycle in self.lab.locks.snapshot()["live_deadlocks"] for step in cycle["cycle"]}
        return set(running) <= deadlocked

    def _cut(self, running: dict[int, str]) -> None:
        """Say what is stuck and the last line, then end the process: the stuck threads never will."""
        self._last_line(
            f"bankapp: {stuck_sentence(running, self.lab, self.team_labs())}: "
            f"stopping {'them' if len(running) > 1 else 'it'}"
        )
        os._exit(0)

    def team_labs(self) -> list:
        """A room's other teams' labs (this worker's): their guards are held by requests of this worker too."""
        return self.room.labs()[1:] if self.room is not None else []

    def worker_exited(self) -> None:
        """gunicorn's `worker_exit`: the worker left its loop; say the last line now, or once the last request ends."""
        with self._lock:
            self._exiting = True
        if not self.in_flight.requests():
            self._last_line()

    def _maybe_final(self) -> None:
        with self._lock:
            exiting = self._exiting
        if exiting:  # Ctrl-C: the worker left while requests ran; the last one to end speaks
            self._last_line()

    def _last_line(self, before: str = "") -> None:
        """The summary, once; `before` (what was stopped) goes with it in one write, so no log line parts them."""
        with self._lock:
            if self._said_last:
                return
            self._said_last = True
        report = final_report(self.lab, self.team_labs())
        say(f"{before}\n{summary(report)}" if before else summary(report))
        self.worker.log.debug("bankapp: worker %s final report %s", report["pid"], json.dumps(report))


def say(line: str) -> None:
    """One write for the whole line: several workers share the terminal, and a line written in two
    pieces (text, then newline, as `print` does unbuffered) can run into another worker's."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def names(items: list[str]) -> str:
    """'acc-00', 'acc-00 and acc-01', 'acc-00, acc-01 and acc-02'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def stuck_sentence(running: dict[int, str], lab, others: list | tuple = ()) -> str:
    """What the requests still running wait on: a deadlock, an account lock, or (else) what they are."""
    graph = lab.locks.snapshot()
    parts, left = [], dict(running)
    for cycle in graph["live_deadlocks"]:
        members = [step["ident"] for step in cycle["cycle"] if step["ident"] in left]
        if members:
            parts.append(f"{plural(len(members), 'request')} still waiting on {names(cycle['accounts'])} in a deadlock")
            for ident in members:
                del left[ident]
    waiting: dict[str, int] = {}
    for edge in graph["wait_for"]:
        if edge["waiter"]["ident"] in left:
            waiting[edge["account"]] = waiting.get(edge["account"], 0) + 1
            del left[edge["waiter"]["ident"]]
    for account, count in sorted(waiting.items()):
        parts.append(f"{plural(count, 'request')} still waiting on {account}")
    if left:
        held = [guard.describe() for guard in held_guards(lab, others) if set(guard.holders()) & set(left)]
        what = names(sorted(set(left.values())))
        parts.append(
            f"{plural(len(left), 'request')} still running ({what})" + (f", holding the {names(held)}" if held else "")
        )
    return "; ".join(parts)


def held_guards(lab, others: list | tuple = ()) -> list:
    """The guards some thread holds, in `lab` and in a room's `others` (each team's lab)."""
    return [guard for one in (lab, *others) for guard in [*one.guards.all(), *one.locks.all()] if guard.holders()]


def final_report(lab, others: list | tuple = ()) -> dict:
    """The worker's counters and the guards some thread still holds."""
    try:
        stats = lab.stats()
    except StoreUnavailable as error:  # the database is away: say so, and still say what is held
        stats = {"store_unavailable": str(error)}
    return {"pid": os.getpid(), "stats": stats, "held_guards": [g.describe() for g in held_guards(lab, others)]}


def summary(report: dict) -> str:
    """The worker's last line: `final_report` in a sentence."""
    stats = report["stats"]
    held = report["held_guards"]
    tail = f"still held: {', '.join(held)}" if held else "no guard or lock held"
    if "store_unavailable" in stats:
        unread = f"its counters could not be read ({stats['store_unavailable']})"
        return f"{SUMMARY_PREFIX}{report['pid']} stopped: {unread}; {tail}"
    deposits, transfers, checkout = stats["deposits"], stats["transfers"], stats["checkout"]
    parts = [
        f"{plural(deposits['acknowledged'], 'deposit')} acknowledged "
        f"({deposits['acknowledged_amount']:,} cents, {deposits['lost_updates']:,} lost)"
        if deposits["acknowledged"]
        else "no deposit acknowledged",
        f"{plural(transfers.get('committed', 0), 'transfer')} committed"
        + (f" ({plural(transfers['deadlocks'], 'deadlock')})" if transfers.get("deadlocks") else ""),
        f"{plural(checkout.get('completed', 0), 'checkout')} completed",
    ]
    return f"{SUMMARY_PREFIX}{report['pid']} stopped: {', '.join(parts)}; {tail}"


def post_worker_init(worker) -> None:
    """gunicorn's `post_worker_init` hook, in each worker after the fork: the lab opens what is its own
    (the postgres store's connection pool; nothing for the memory store), and this worker's stop is watched."""
    app = worker.wsgi
    if "bankapp" not in getattr(app, "extensions", {}):
        return
    app.extensions["bankapp"].start()
    worker.bankapp_stopping = Stopping(worker, app)
    worker.bankapp_stopping.install()


def worker_exit(server, worker) -> None:
    """gunicorn's `worker_exit` hook: the last line, then the lab closes what it opened. gunicorn also
    calls it in the master for a worker that is already gone; that copy has nothing to say."""
    stopping = getattr(worker, "bankapp_stopping", None)
    if stopping is not None:
        stopping.worker_exited()
        if not stopping.in_flight.requests():  # else the last request still needs the store for the last line
            for lab in stopping.room.labs()[1:] if stopping.room is not None else []:
                lab.close()
            stopping.lab.close()
