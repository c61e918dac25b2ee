"""`acquire(timeout=...)` returns False when the time runs out; it does not raise.

    python examples/acquire_timeout.py

`Lock.acquire()` with no argument waits forever. With `timeout=seconds` it
waits at most that long and returns True if it got the lock, False if not;
`blocking=False` (or `timeout=0`) only tries. Code must check the result:
carrying on after a False is working without the lock.

bankapp bounds every guard acquire this way by `lock_timeout_ms` and turns a
False into a 503 (`bankapp/guards.py`, `hold`). A holder thread keeps the
lock until an `Event` tells it to let go, so the outcome never depends on
timing luck.
"""

from __future__ import annotations

import threading
import time


def main() -> None:
    lock = threading.Lock()
    taken = threading.Event()
    let_go = threading.Event()

    def holder() -> None:
        with lock:
            taken.set()
            let_go.wait(timeout=5)

    thread = threading.Thread(target=holder, name="holder")
    thread.start()
    taken.wait(timeout=5)

    print(f"acquire(blocking=False) while held -> {lock.acquire(blocking=False)}")
    began = time.monotonic()
    got = lock.acquire(timeout=0.2)
    print(
        f"acquire(timeout=0.2) while held    -> {got}, having waited at least 0.2 s: {time.monotonic() - began >= 0.2}"
    )

    let_go.set()
    thread.join(timeout=5)
    got = lock.acquire(timeout=0.2)
    print(f"acquire(timeout=0.2) once released -> {got}")
    lock.release()


if __name__ == "__main__":
    main()
