"""The hardened worker's socket reader, on a real socket pair: what has
arrived is taken at once, a wait needs a slot and ends at the deadline, and
a reader with no slot gets only its short grace (see `bankapp.server.worker`)."""

import io
import socket
import threading
import time

import pytest

from bankapp.server.worker import SLOTLESS_WAIT, DeadlineUnreader, RequestTimeout


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    with server, client:
        yield server, client


def reader(sock, slots: int = 1) -> DeadlineUnreader:
    unreader = DeadlineUnreader(sock, threading.BoundedSemaphore(slots), io.BytesIO())
    unreader.start()
    return unreader


def test_bytes_already_sent_are_taken_without_a_slot(pair):
    server, client = pair
    unreader = reader(server)
    unreader.slots.acquire()  # every slot taken
    client.sendall(b"GET / HTTP/1.1\r\n")
    time.sleep(0.05)
    assert unreader.chunk() == b"GET / HTTP/1.1\r\n"


def test_a_wait_with_a_slot_returns_what_arrives(pair):
    server, client = pair
    unreader = reader(server)
    threading.Timer(0.2, client.sendall, args=(b"late",)).start()
    assert unreader.chunk() == b"late"
    assert unreader.slots.acquire(blocking=False)  # the slot was given back


def test_the_deadline_ends_the_wait_with_a_408(pair):
    server, _ = pair
    unreader = reader(server)
    unreader.deadline = time.monotonic() + 0.2
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="did not arrive") as raised:
        unreader.chunk()
    assert raised.value.status == 408
    assert 0.1 < time.monotonic() - started < 5


def test_without_a_slot_only_the_grace_is_waited_and_only_once(pair):
    server, _ = pair
    unreader = reader(server)
    unreader.slots.acquire()
    started = time.monotonic()
    with pytest.raises(RequestTimeout, match="every thread that may wait"):
        unreader.chunk()
    assert time.monotonic() - started < SLOTLESS_WAIT + 1
    assert unreader.grace < SLOTLESS_WAIT / 2
    unreader.grace = -0.5  # overspent (a late wake-up on a busy machine): no wait at all, never one without end
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        unreader.chunk()
    assert time.monotonic() - started < 1


def test_between_requests_nothing_is_waited_for(pair):
    server, _ = pair
    unreader = reader(server)
    unreader.deadline = None  # gunicorn draining a body the app did not read
    with pytest.raises(TimeoutError):
        unreader.chunk()


def test_read_once_settings_are_gunicorns_and_a_set_is_seen():
    """The worker's settings, read once (`ReadOnce`), are the `Config`'s; a `set` after a read is not hidden."""
    from gunicorn.config import Config

    from bankapp.server.worker import ReadOnce

    config = Config()
    config.set("keepalive", 7)
    settings = ReadOnce(config)
    assert (settings.keepalive, settings.threads, settings.is_ssl) == (7, config.threads, config.is_ssl)
    assert "keepalive" in vars(settings)  # kept: the next read is a plain attribute
    settings.set("keepalive", 3)
    assert settings.keepalive == config.keepalive == 3
    with pytest.raises(AttributeError):
        settings.no_such_setting  # noqa: B018
