"""What the threaded unit tests share: a lab built for a test, threads started
together, a lock held by another thread, and stores where threads meet.

A race is forced here, not hoped for: threads start behind one barrier, and a
store (or the shop's inventory) can make them meet at a barrier on their way
through a read or a write, so that two of them are inside one
read-modify-write together whenever the guard lets them be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bankapp.lab import Lab
from bankapp.lab.shop import CATALOGUE, Inventory
from bankapp.lab.store import MemoryStore
from bankapp.settings import load

#: Settings under which a unit test runs unless it asks otherwise: no race window, no gateway time, quick checks.
FAST = {"race_window_ms": 0, "service_time_ms": 0, "deadlock_check_ms": 20}


def make_lab(store: Callable = MemoryStore, inventory: Callable = Inventory, **settings) -> Lab:
    """A `Lab` as the app builds it, under `settings` over `FAST`, and no `BANKAPP_*` variable.

    `store` and `inventory` are called as `MemoryStore(account_ids,
    initial_balance)` and `Inventory(catalogue)` are, so a test can hand in
    a class (or a `functools.partial`) that makes threads meet.
    """
    config = load({**FAST, **settings}, environ={})
    return Lab(config, store=store(config.account_ids, config.initial_balance), inventory=inventory(CATALOGUE))


class Background:
    """Jobs in threads of their own, each by name, started at the moments the test chooses.

    `join()` waits for them all (at most `timeout` seconds in all: a thread
    still running then fails the test) and returns what each returned, by
    name. A job that raised fails the test there, unless its exception is
    one of `expect`: then it is handed back in its place, for the test to
    look at. A failure inside a thread is never lost.
    """

    def __init__(self) -> None:
        self.threads: dict[str, threading.Thread] = {}
        self.results: dict[str, object] = {}

    def start(self, name: str, job: Callable, before: Callable[[], object] | None = None) -> threading.Thread:
        """Run `job` in a new thread named `name` (after `before`, say a barrier's `wait`)."""
        assert name not in self.threads, f"two jobs named {name}"

        def run() -> None:
            try:
                if before is not None:
                    before()
                self.results[name] = job()
            except BaseException as error:  # kept, and raised in the test's thread by join() unless expected
                self.results[name] = error

        self.threads[name] = thread = threading.Thread(target=run, name=name)
        thread.start()
        return thread

    def join(self, timeout: float = 10, expect: tuple[type[BaseException], ...] = ()) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        for thread in self.threads.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        running = [name for name, thread in self.threads.items() if thread.is_alive()]
        assert not running, f"still running after {timeout:g} s: {running}"
        failed = {
            name: result
            for name, result in self.results.items()
            if isinstance(result, BaseException) and not isinstance(result, expect)
        }
        if failed:
            first = next(iter(failed.values()))
            listed = "; ".join(f"{name}: {error!r}" for name, error in failed.items())
            raise AssertionError(f"{len(failed)} of {len(self.threads)} jobs raised: {listed}") from first
        return dict(self.results)


def run_together(
    jobs: list[Callable],
    names: list[str] | None = None,
    timeout: float = 60,
    expect: tuple[type[BaseException], ...] = (),
) -> list:
    """Run each job in a thread of its own, all released at once by one barrier; what each returned, in order.

    Threads are named `names[i]` (default `client-i`). A job that raises
    fails the test, unless the exception is one of `expect` (a deadlock
    victim, a refusal the test is about): then it stands in the job's
    place in the list. A thread still running after `timeout` seconds
    fails the test.
    """
    names = names or [f"client-{i}" for i in range(len(jobs))]
    start = threading.Barrier(len(jobs), timeout=10)
    background = Background()
    for name, job in zip(names, jobs, strict=True):
        background.start(name, job, before=start.wait)
    results = background.join(timeout, expect)
    return [results[name] for name in names]


def in_another_thread(job: Callable, timeout: float = 5, expect: tuple[type[BaseException], ...] = ()) -> object:
    """Run `job` in one other thread (named `other`) and wait for it: what it returned, or the expected exception
    it raised. Another exception, or a thread still running after `timeout` seconds, fails the test."""
    jobs = Background()
    jobs.start("other", job)
    return jobs.join(timeout, expect)["other"]


def wait_until(condition: Callable[[], object], timeout: float = 10, every: float = 0.005) -> None:
    """Look at `condition` every `every` seconds until it holds; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never came true"
        time.sleep(every)


@contextmanager
def held_by_another_thread(lock, timeout: float = 10) -> Iterator[None]:
    """Inside the block, another thread holds `lock` (a guard or an account lock).

    Not this thread: a thread that waits for a lock it holds itself is a
    cycle of one, and the deadlock detector would (rightly) call it one.
    """
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        if lock.acquire(5):
            taken.set()
            done.wait(timeout)
            lock.release()

    thread = threading.Thread(target=hold, name="holder")
    thread.start()
    try:
        assert taken.wait(5), f"the other thread never got {lock.describe()}"
        yield
    finally:
        done.set()
        thread.join(5)


class Meeting:
    """A barrier where `parties` threads meet; `met` counts the threads that met someone.

    A thread that waits `timeout` seconds in vain goes on alone, and the
    barrier is made whole again for the next ones: under a guard that
    excludes, the others never come.
    """

    def __init__(self, parties: int = 2, timeout: float = 1.0):
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.met = 0
        self._count = threading.Lock()

    def __call__(self) -> bool:
        """Wait for the others; True if they came."""
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            self.barrier.reset()
            return False
        with self._count:
            self.met += 1
        return True


class MeetingStore(MemoryStore):
    """Balances where threads meet on their way through a read or a write (`on`).

    `accounts` limits the meetings to those accounts; `threads` to threads
    whose name starts with it; `once` to each thread's first such call (a
    transfer's first write is its debit).
    """

    def __init__(
        self,
        account_ids: list[str],
        initial_balance: int,
        *,
        on: str = "read",
        accounts: set[str] | None = None,
        threads: str = "",
        once: bool = False,
        parties: int = 2,
        timeout: float = 1.0,
    ):
        super().__init__(account_ids, initial_balance)
        self.meeting = Meeting(parties, timeout)
        self.on, self.accounts, self.threads, self.once = on, accounts, threads, once
        self._local = threading.local()

    def read(self, account_id: str) -> int:
        balance = super().read(account_id)
        self._meet("read", account_id)
        return balance

    def write(self, account_id: str, balance: int) -> None:
        super().write(account_id, balance)
        self._meet("write", account_id)

    def _meet(self, call: str, account_id: str) -> None:
        if call != self.on or (self.accounts is not None and account_id not in self.accounts):
            return
        if not threading.current_thread().name.startswith(self.threads):
            return
        if self.once:
            if getattr(self._local, "met", False):
                return
            self._local.met = True
        self.meeting()


class MeetingInventory(Inventory):
    """Stock where every read meets another reader: two checkouts inside one reservation together."""

    def __init__(self, catalogue: dict[str, int], *, parties: int = 2, timeout: float = 1.0):
        super().__init__(catalogue)
        self.meeting = Meeting(parties, timeout)

    def read(self, sku: str) -> int:
        units = super().read(sku)
        self.meeting()
        return units


class Actor:
    """A thread of its own that runs what the test hands it, one step at a time, in the test's order.

    `actor.do(fn)` runs `fn` in the actor's thread and returns its result:
    a test interleaves reads and writes of several actors exactly as it
    spells them, each actor keeping its own thread (and so what it read).
    """

    def __init__(self, name: str):
        from concurrent.futures import ThreadPoolExecutor

        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def do(self, fn: Callable, timeout: float = 10):
        return self._executor.submit(fn).result(timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
