"""The thread harness itself: a failure inside a worker thread fails the test, whatever the test does with the
results; only the exceptions a test names come back as results."""

import threading

import pytest

from .harness import Background, run_together


def deposit_that_raises():
    raise RuntimeError("the deposit failed")


def test_a_job_that_raises_fails_run_together_even_if_the_results_are_ignored():
    with pytest.raises(AssertionError, match="1 of 2 jobs raised: client-1: RuntimeError") as caught:
        run_together([lambda: 5, deposit_that_raises])
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_an_assertion_inside_a_worker_thread_fails_the_test():
    def worker():
        assert 1 + 1 == 3, "checked inside the thread"

    with pytest.raises(AssertionError, match="checked inside the thread"):
        run_together([worker, worker])


def test_an_expected_exception_stands_in_the_jobs_place():
    results = run_together([lambda: 5, deposit_that_raises], expect=(RuntimeError,))
    assert results[0] == 5 and isinstance(results[1], RuntimeError)


def test_the_jobs_are_released_together_and_named():
    inside, names = threading.Barrier(3, timeout=5), []

    def job():
        names.append(threading.current_thread().name)
        return inside.wait()  # only returns once all three are in at once

    assert sorted(run_together([job] * 3, names=["a", "b", "c"])) == [0, 1, 2]
    assert sorted(names) == ["a", "b", "c"]


def test_a_thread_still_running_fails_the_join():
    release = threading.Event()
    jobs = Background()
    jobs.start("stuck", lambda: release.wait(10))
    try:
        with pytest.raises(AssertionError, match=r"still running after 0.1 s: \['stuck'\]"):
            jobs.join(timeout=0.1)
    finally:
        release.set()
    assert jobs.join() == {"stuck": True}
