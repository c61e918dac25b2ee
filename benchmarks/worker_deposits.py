"""Deposits served through a real gunicorn worker in one thread: the server layer's cost, countable by callgrind.

    python benchmarks/deposit_instructions.py --through-worker [--base COMMIT]

`deposit_profile.py` calls the WSGI app directly, so what gunicorn's gthread
worker does around it (parsing, the answer's writing, keep-alive) and what
bankapp's `HardenedWorker` adds (the read deadline, the in-flight count, the
drain) are not in its figures, and wrk's (`deposit_guards.py`) move with the
machine's load. Here each app's worker is built as gunicorn builds it (its
`init_process`, with `bankapp serve`'s `post_worker_init` hook for bankapp,
its loop left out) and each deposit goes the way wrk's does: its bytes on a
kept-alive loopback TCP connection, the worker's `handle()` (parse, the app,
the answer written) and `finish_request()` (back to the poller), the answer
read by the client. One thread serves them all, so the count has no thread
switches in it: what the worker's Python costs, not the GIL's handovers.

- `bankapp`: `bankapp serve --race-window-ms 0` under `lock`, through
  `bankapp.server.worker.HardenedWorker`;
- `minimal`: `minimal_deposit.py` through gunicorn's plain `ThreadWorker`.
"""

from __future__ import annotations

import os
import re
import socket
from concurrent.futures import Future

import deposit_profile
from gunicorn.config import Config
from gunicorn.glogging import Logger

REQUEST = (
    "POST /accounts/acc-{:02d}/deposit HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
    'Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{{"amount": 1}}'
)


class Loaded:
    """What gunicorn's worker asks for the app (`app.wsgi()`)."""

    def __init__(self, wsgi):
        self.app = wsgi

    def wsgi(self):
        return self.app


class Served:
    """One worker of `app` (a name of `deposit_profile.MEMORY_APPS`) and one kept-alive connection to it."""

    def __init__(self, app: str):
        config = Config()
        config.set("threads", 32)
        wsgi = deposit_profile.APPS[app]()
        if app == "minimal":
            from gunicorn.workers.gthread import TConn, ThreadWorker

            worker_class, self.connection = ThreadWorker, lambda sock, client, server: TConn(cfg, sock, client, server)
        else:
            from bankapp.server import shutdown
            from bankapp.server.worker import HardenedWorker, LingeringConn

            config.set("post_worker_init", shutdown.post_worker_init)
            worker_class = HardenedWorker
            self.connection = lambda sock, client, server: LingeringConn(self.worker, cfg, sock, client, server)
        worker_class.run = lambda worker: None  # init_process ends in the worker's loop: not here
        self.worker = worker_class(1, os.getppid(), [], Loaded(wsgi), 30, config, Logger(config))
        self.worker.init_process()
        cfg = self.worker.cfg  # what the worker reads its settings from (bankapp's keeps each once)
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as gunicorn's listener (Nagle off)
        self.client = socket.create_connection(listener.getsockname())
        sock, address = listener.accept()
        self.conn = self.connection(sock, address, listener.getsockname())
        listener.close()

    def deposit(self, i: int) -> None:
        """One deposit: sent, handled by the worker, its connection back in the poller, its answer read."""
        self.client.sendall(REQUEST.format(i % 16).encode())
        worker, conn = self.worker, self.conn
        if conn in worker.keepalived_conns:  # what the poller does when the socket turns readable
            worker.keepalived_conns.remove(conn)
            worker.poller.unregister(conn.sock)
        done: Future = Future()
        done.set_result(worker.handle(conn))
        worker.finish_request(conn, done)
        answer = self.client.recv(65536)
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(body) < length:  # the body is a write of its own
            body += self.client.recv(65536)
        if not answer.startswith(b"HTTP/1.1 200 ") or not re.search(rb'"balance": ?\d+', body):
            raise SystemExit(f"not a deposit's answer: {answer!r}")
        if conn not in worker.keepalived_conns:
            raise SystemExit("the worker did not keep the connection alive")


def serve(app: str, warm: int, requests: int) -> None:
    served = Served(app)
    for i in range(warm + requests):
        served.deposit(i)
