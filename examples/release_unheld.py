"""Releasing a lock that is not held is an error; who may release it differs.

    python examples/release_unheld.py

- `Lock.release()` on an unlocked `Lock` raises `RuntimeError`.
- `RLock.release()` by a thread that does not own it raises `RuntimeError`:
  an `RLock` has an owner.
- A plain `Lock` has no owner: any thread may release a `Lock` that another
  thread acquired, and Python does not complain. That is legal and almost
  always a bug (the holder thinks it is still protected).
- bankapp's guards (`bankapp/guards.py`, `Guard.release`) remember which
  threads hold them, so a release by a thread that does not hold the guard
  raises `RuntimeError` for every guard, `Lock` included.

Threads hand over with `Event`s, so nothing depends on timing luck.
"""

from __future__ import annotations

import threading


def in_thread(action) -> str:
    """Run `action` in another thread and say what happened."""
    outcome = []

    def run() -> None:
        try:
            action()
            outcome.append("no error")
        except RuntimeError as error:
            outcome.append(f"RuntimeError: {error}")

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=5)
    return outcome[0]


def main() -> None:
    lock = threading.Lock()
    try:
        lock.release()
    except RuntimeError as error:
        print(f"Lock.release() when unlocked -> RuntimeError: {error}")

    rlock = threading.RLock()
    rlock.acquire()
    print(f"RLock.release() by another thread -> {in_thread(rlock.release)}")
    rlock.release()

    lock.acquire()
    print(f"Lock.release() by another thread -> {in_thread(lock.release)}")
    print(f"  the main thread took it, yet now locked={lock.locked()}: a plain Lock has no owner")

    try:
        from bankapp.lab.guards import make_guard
    except ImportError:
        print("bankapp not installed: skipping the guard part (pip install -e .)")
        return
    guard = make_guard("lock", "acc-00")
    guard.acquire(timeout=1)
    print(f"bankapp lock guard released by another thread -> {in_thread(guard.release)}")
    guard.release()
    try:
        guard.release()
    except RuntimeError as error:
        print(f"bankapp lock guard released twice -> RuntimeError: {error}")


if __name__ == "__main__":
    main()
