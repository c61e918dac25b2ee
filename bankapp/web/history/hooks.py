"""Where samples are taken: after the answer of a request has been sent, at most once a second per lab.

`every_request`'s WSGI middleware calls `after_answer` once per request
with the request's lab (its team's, in a room). That counts the request and, when a sample is due (or the request
was an admin one, which may have changed the settings), hands the WSGI
server an answer whose `close()` takes the sample: the server calls it once
the last byte went out, so the client never waits for the sample, and the
thread is busy with it only on its way to the next request.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable

from werkzeug.wsgi import ClosingIterator

from ...lab import LabLike
from .samples import History

log = logging.getLogger("bankapp.history")

#: Each lab's history by the lab's `id`, dropped when the lab is collected (so the id is free again only once its
#: entry is gone): a plain dict read is a tenth of a `WeakKeyDictionary`'s, and this one is read every request.
_histories: dict[int, History] = {}
_lock = threading.Lock()


def history_of(lab: LabLike) -> History:
    """The history of `lab`, made on first use; it goes when the lab does."""
    history = _histories.get(id(lab))
    if history is None:
        with _lock:
            history = _histories.get(id(lab))
            if history is None:
                history = _histories[id(lab)] = History()
                weakref.finalize(lab, _histories.pop, id(lab), None)
    return history


def take_sample(lab: LabLike, history: History, always: bool = False) -> None:
    """Read the lab's counters into `history` when a sample is due (or `always`: the settings may have moved)."""
    if not (always or history.due()):
        return
    try:
        history.record(lab.stats())
    except Exception as error:  # the store is down (postgres): the history misses this second, nothing else does
        log.debug("bankapp: no history sample: %s", error)


def after_answer(lab: LabLike, environ: dict, answer: Iterable[bytes]) -> Iterable[bytes]:
    """`answer`, with a sample taken when it is closed if one is due."""
    history = history_of(lab)
    due = history.requested()
    admin = environ.get("REQUEST_METHOD") != "GET" and "/admin/" in environ.get("PATH_INFO", "")
    if not (due or admin):
        return answer
    return ClosingIterator(answer, lambda: take_sample(lab, history, always=admin))
