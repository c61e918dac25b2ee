"""A thread runs once: start() it, join() it, and it is done for good.

    python examples/thread_runs_once.py

`Thread.start()` runs the target in a new thread, once; `join()` waits until
it has finished. A finished thread cannot be started again: a second
`start()` raises `RuntimeError` ("threads can only be started once"). To run
the work again, make a new `Thread`. The same holds for a thread that is
still running: `start()` is allowed exactly once per `Thread` object.

The main thread waits on an `Event` that the worker sets, so the output does
not depend on timing luck.
"""

from __future__ import annotations

import threading


def main() -> None:
    started = threading.Event()
    release = threading.Event()
    runs = []

    def work() -> None:
        runs.append(threading.current_thread().name)
        started.set()
        release.wait(timeout=5)

    worker = threading.Thread(target=work, name="worker-1")
    print(f"before start: alive={worker.is_alive()} ident={worker.ident}")
    worker.start()
    started.wait(timeout=5)
    print(f"running:      alive={worker.is_alive()} ident set={worker.ident is not None}")
    try:
        worker.start()
    except RuntimeError as error:
        print(f"start() while running -> RuntimeError: {error}")
    release.set()
    worker.join(timeout=5)
    print(f"after join:   alive={worker.is_alive()} runs={runs}")
    try:
        worker.start()
    except RuntimeError as error:
        print(f"start() after join    -> RuntimeError: {error}")

    again = threading.Thread(target=work, name="worker-2")  # a new Thread runs the work again
    again.start()
    again.join(timeout=5)
    print(f"a new Thread ran it again: runs={runs}")


if __name__ == "__main__":
    main()
