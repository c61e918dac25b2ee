"""gunicorn's gthread worker, hardened for a room full of curious people.

What a slow client does to a thread server: gthread hands a connection to a
thread as soon as its first bytes arrive, and the thread then blocks in
`recv()` until the request line, the headers and the body are all in. A
client that sends one header byte a second keeps its thread for as long as
it likes; 32 such clients hold all 32 threads, and `/healthz` waits behind
them (the "slowloris" attack). `HardenedWorker` changes four things:

1. A deadline. A request (line, headers, body) must have arrived
   `REQUEST_READ_TIMEOUT` seconds after its first byte; past that the client
   gets a 408 and the connection closes.
2. A reserve. At most `threads - RESERVED_THREADS` threads may wait for a
   client at once; a thread that would have to wait when they all do answers
   408 at once instead. Bytes a client has already sent never wait: a request
   that arrives whole (curl, requests, Locust, a proxy) needs no slot, so
   `/healthz`, `/stats`, `/debug/*` and `/admin/*` always find a thread,
   whatever slow clients do.
3. No idle wait. A new connection with nothing to read yet goes back to the
   poller at once, instead of holding a thread for up to 5 s (gthread's own
   `wait_for_data`).
4. Errors as problems. gunicorn answers a request it cannot parse (a bad
   request line, conflicting `Content-Length` and `Transfer-Encoding`, a
   request line over 4094 bytes) with an HTML page; here it is
   `application/problem+json`, like every other error of the service.

What it does not do is buffer whole requests. A reverse proxy in front (nginx
with `proxy_request_buffering on`, its default) reads each request at network
speed before it opens a connection to the app, so a slow client never reaches
a thread at all and a merely distant one is never cut off. Plain HTTP only:
TLS, like buffering, belongs to the proxy.

Use it with `gunicorn -k bankapp.worker.HardenedWorker` (a shim naming this one); `bankapp serve` does.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import math
import select
import selectors
import socket
import threading
import time

from gunicorn import util
from gunicorn.http import errors
from gunicorn.http.body import LengthReader
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import _DEFER, TConn, ThreadWorker

from ..settings import RESERVED_THREADS
from .chunks import BoundedRequest

#: Seconds a request may take to arrive, from its first byte to its last.
REQUEST_READ_TIMEOUT = 5.0
#: Seconds a request may wait for its next bytes when no slot is free: enough
#: for a body sent right after its head (Python's http.client does that).
SLOTLESS_WAIT = 0.05
#: Seconds a closed connection waits for the client to close its side.
LINGER = 2.0


class RequestTimeout(errors.ParseException):
    """The client did not send its request in time, or would have held the last free thread."""

    status = 408

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


#: gunicorn's own errors, by the status it gives them; any other parse error is a
#: 400, and anything else a 500.
STATUSES = (
    (RequestTimeout, 408, "Request Timeout"),
    (errors.InvalidResponseHeader, 500, "Internal Server Error"),  # the app's fault, not the client's
    (errors.InvalidResponseHeaderName, 500, "Internal Server Error"),
    (errors.ConfigurationProblem, 500, "Internal Server Error"),
    (errors.LimitRequestLine, 414, "URI Too Long"),
    (errors.LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    (errors.ExpectationFailed, 417, "Expectation Failed"),
    (errors.UnsupportedTransferCoding, 501, "Not Implemented"),
    (errors.ForbiddenProxyRequest, 403, "Forbidden"),
    (errors.ParseException, 400, "Bad Request"),
    (Exception, 500, "Internal Server Error"),
)


def readable(sock: socket.socket, timeout: float) -> bool:
    """Whether `sock` has bytes (or an end) to read within `timeout` seconds."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(max(0, math.ceil(timeout * 1000))))  # a negative timeout would wait forever


class DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader: takes what has arrived, and waits only with a slot and a deadline."""

    def __init__(self, sock: socket.socket, slots: threading.BoundedSemaphore, buffered):
        super().__init__(sock)
        self.buf = buffered
        self.slots = slots
        self.deadline: float | None = None  # None between requests
        self.grace = 0.0

    def start(self) -> None:
        """A new request: its deadline, and its moment of waiting without a slot."""
        self.deadline = time.monotonic() + REQUEST_READ_TIMEOUT
        self.grace = SLOTLESS_WAIT

    def chunk(self, size_hint=None):
        size = min(max(size_hint or 0, self.mxchunk), self.max_body_chunk)
        try:
            return self.sock.recv(size, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        if self.deadline is None:
            # gunicorn draining a body the app did not read: rather than wait, close the connection
            raise TimeoutError("the rest of the body has not arrived")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestTimeout(f"the request did not arrive within {REQUEST_READ_TIMEOUT:g} s of its first byte")
        if self.slots.acquire(blocking=False):
            try:
                arrived = readable(self.sock, remaining)
            finally:
                self.slots.release()
        else:  # every slot is taken: still a moment for a request written in two parts (head, then body)
            waited = time.monotonic()
            arrived = readable(self.sock, min(self.grace, remaining))
            self.grace -= time.monotonic() - waited
        if not arrived:
            raise RequestTimeout(
                f"the request did not arrive within {REQUEST_READ_TIMEOUT:g} s of its first byte"
                if self.deadline <= time.monotonic()
                else "the request is incomplete and every thread that may wait for a client already does"
            )
        return self.sock.recv(size)


class LingeringConn(TConn):
    """A connection whose graceful close waits for the client in the poller.

    gthread closes a connection after an error (or `Connection: close`) by
    half-closing it and reading until the client closes too, so that unread
    request bytes do not turn into a reset that destroys the answer. It does
    that in the main loop, for up to 2 s: a client that never closes stops
    the whole worker (no accept, no dispatch, `/healthz` waits) for 2 s a
    connection. Here the poller waits instead.
    """

    def __init__(self, worker: HardenedWorker, *args):
        super().__init__(*args)
        self.worker = worker
        self.linger_until = 0.0

    def close(self, graceful=False):
        if graceful:
            self.worker.linger(self)
        else:
            super().close()


class ReadOnce:
    """A worker's gunicorn settings, each read from its `Config` once and then kept as a plain attribute.

    gunicorn reads a setting through `Config.__getattr__` (a failed attribute
    lookup, then a Python call, a dict lookup and the setting's `get()`), about
    twenty times a request: the parser's limits, `keepalive`, the hooks, the
    forwarding rules. A worker's settings do not change once it runs (a reload
    starts new workers), so each is read once.
    """

    def __init__(self, cfg):
        self._cfg = cfg

    def __getattr__(self, name):
        value = getattr(self._cfg, name)
        setattr(self, name, value)
        return value

    def set(self, name, value) -> None:
        self._cfg.set(name, value)
        self.__dict__.pop(name, None)


class HardenedWorker(ThreadWorker):
    """gthread with a read deadline, a reserve of threads, and problem+json errors (see the module)."""

    #: Which thread serves which request (`shutdown.InFlight`), once `post_worker_init` has installed it.
    in_flight = None
    #: A quick stop is under way, or the loop is left: a later stop signal has nothing to add.
    quitting = False

    def init_process(self):
        # after the fork (the master keeps its own); gunicorn is untyped, so mypy knows no type for `cfg`
        self.cfg = ReadOnce(self.cfg)  # type: ignore[has-type]
        self.client_slots = threading.BoundedSemaphore(max(1, self.cfg.threads - RESERVED_THREADS))
        self.lingering: list[LingeringConn] = []
        self.tls = self.cfg.is_ssl  # read once: a gunicorn setting costs a lookup per access
        super().init_process()

    def run(self):
        try:
            super().run()
        finally:
            self.quitting = True  # `worker_exit` and the last line follow: no stop signal may cut them
            if self.tpool is not None:  # here, unwound, no lock of the pool is held (see `handle_quit`)
                self.tpool.shutdown(wait=False)

    def handle_quit(self, sig, frame):
        """gthread's quick stop (SIGINT, SIGQUIT), once, and taking no lock.

        Ctrl-C reaches a worker twice: SIGINT from the terminal, then the
        master's SIGQUIT. A signal handler runs between two bytecodes of the
        main thread, which may hold the thread pool's lock: inside the pool's
        `submit`, or inside the first handler's own shutdown of the pool.
        gthread's handler shuts the pool down, which takes that lock, so a
        handler running there (the second one, nested in the first) waited
        on its own thread until the master's SIGKILL, and the worker's last
        line was lost. Here the pool is shut down once the loop is left
        (`run`), on the main thread unwound and holding no lock; the exit
        then waits for the requests in flight, as before."""
        self.alive = False
        if self.quitting:
            return
        self.quitting = True
        Worker.handle_quit(self, sig, frame)  # `worker_int`, a tenth of a second, then `sys.exit(0)`

    def accept(self, listener):
        try:
            sock, client = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        sock.setblocking(True)
        self.enqueue_req(LingeringConn(self, self.cfg, sock, client, listener.getsockname()))

    def handle(self, conn):
        if self.tls:
            return super().handle(conn)
        if not conn.initialized and not conn.data_ready:
            if not readable(conn.sock, 0):
                return _DEFER  # the poller waits for its first byte, not a thread
            conn.data_ready = True
        conn.init()
        if conn.is_http2:
            return super().handle(conn)
        conn.parser.mesg_class = BoundedRequest  # chunk framing refused at its first bad edge (see `chunks`)
        unreader = conn.parser.unreader
        if not isinstance(unreader, DeadlineUnreader):
            unreader = conn.parser.unreader = DeadlineUnreader(conn.sock, self.client_slots, unreader.buf)
        unreader.start()
        try:
            return super().handle(conn)
        finally:
            unreader.deadline = None

    def handle_request(self, req, conn):
        """gthread's, with the request counted in flight from its parsed head to its answer's close.

        Here rather than in a WSGI middleware around the app, which would add
        a call and an answer wrapper (for the answer's `close()`) to every request."""
        in_flight = self.in_flight
        if in_flight is None:
            return super().handle_request(req, conn)
        running, ident = in_flight.running, threading.get_ident()
        running[ident] = req
        try:
            return super().handle_request(req, conn)
        finally:
            del running[ident]
            if not running:
                in_flight.on_idle()

    def _keepalive_after(self, conn, keepalive):
        """gthread's, with nothing to drain when the app read a body of known length to its end.

        gthread drains what is left of the body before the connection goes
        back to the poller (else leftover bytes would look like the next
        request), under a deadline set on the socket and put back after: three
        socket calls even when nothing is left, as after every deposit and
        every GET. A body whose `Content-Length` has been read in full has
        nothing left on the socket, so that keeps its connection at once."""
        parser = conn.parser
        parser.unreader.deadline = None  # answered: what is left of the body is drained, never waited for
        if keepalive:
            body = getattr(parser.mesg, "body", None)
            reader = getattr(body, "reader", None)
            if isinstance(reader, LengthReader) and reader.length == 0 and not getattr(body, "failed", False):
                return True
        return super()._keepalive_after(conn, keepalive)

    def linger(self, conn: LingeringConn) -> None:
        """Half-close `conn` and let the poller read until the client closes (main thread)."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, functools.partial(self._drain, conn))
        except (OSError, ValueError, KeyError):
            conn.sock.close()
            return
        conn.linger_until = time.monotonic() + LINGER
        self.lingering.append(conn)

    def _drain(self, conn: LingeringConn, sock) -> None:
        try:
            if sock.recv(65536):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self._close_lingering(conn)

    def _close_lingering(self, conn: LingeringConn) -> None:
        self.lingering.remove(conn)
        with contextlib.suppress(OSError, ValueError, KeyError):
            self.poller.unregister(conn.sock)
        conn.sock.close()

    def murder_pending(self):
        super().murder_pending()
        now = time.monotonic()
        for conn in [conn for conn in self.lingering if conn.linger_until <= now]:
            self._close_lingering(conn)

    def handle_error(self, req, client, addr, exc):
        """gunicorn's own error answers, as problem+json, with an `X-Request-Id` as every answer has."""
        from ..web.request_id import new_request_id  # here, not at import: the worker loads before the app

        status, reason = next((status, reason) for kind, status, reason in STATUSES if isinstance(exc, kind))
        if status >= 500:
            self.log.exception("Error handling request")
        else:
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        detail = str(exc) if status < 500 else "the server failed"
        body = json.dumps(
            {
                "type": "urn:bankapp:problem:" + reason.lower().replace(" ", "-"),
                "title": reason,
                "status": status,
                "detail": detail or reason,
            }
        ).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nX-Request-Id: {new_request_id()}\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except OSError:
            self.log.debug("Failed to send error message.")
