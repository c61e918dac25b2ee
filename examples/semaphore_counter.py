"""A `Semaphore` is a counter of permits: acquire takes one, release gives one back.

    python examples/semaphore_counter.py

`Semaphore(3)` starts at 3. Each `acquire()` lowers the counter; at 0 the
next `acquire()` waits (or, with a timeout, returns False). Each `release()`
raises it. A semaphore has no owner: any thread may release, and a plain
`Semaphore` lets the counter climb above where it started, which hides a
double release. `BoundedSemaphore` refuses that with `ValueError`.

With 1 permit a semaphore excludes like a lock; with N > 1 it only bounds
how many are inside at once (bankapp's `deposit_permits` 1 vs 4, and
checkout admission's `capacity`; `available_permits` in `/stats` is this
counter). CPython keeps the counter in the private `_value`; it is read here
for teaching only, as `SemaphoreGuard.available_permits` does.
"""

from __future__ import annotations

import threading


def main() -> None:
    permits = threading.BoundedSemaphore(3)
    print(f"BoundedSemaphore(3): value {permits._value}")
    for n in range(1, 4):
        permits.acquire()
        print(f"acquire #{n}: value {permits._value}")
    print(f"acquire(timeout=0.1) at 0 -> {permits.acquire(timeout=0.1)}")

    # three threads inside at once: a semaphore of 3 lets them all in
    inside = threading.Barrier(3, timeout=5)
    permits.release()
    permits.release()
    permits.release()
    print(f"3 releases: value {permits._value}")

    together = []

    def enter() -> None:
        with permits:
            inside.wait()  # passes only when all three are in together
            together.append(True)

    threads = [threading.Thread(target=enter) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    print(f"{len(together)} threads were inside together; value back to {permits._value}")

    try:
        permits.release()
    except ValueError as error:
        print(f"BoundedSemaphore over-release -> ValueError: {error}")

    loose = threading.Semaphore(3)
    loose.release()
    print(f"Semaphore(3) over-release -> no error, value {loose._value}")


if __name__ == "__main__":
    main()
