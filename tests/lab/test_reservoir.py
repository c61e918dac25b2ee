"""Percentiles by nearest rank: one function for the server's reservoirs and compare's histograms."""

from bankapp.lab.reservoir import Reservoir, percentile


def test_a_percentile_is_the_smallest_value_with_that_share_at_or_below_it():
    histogram = {10.0: 90, 500.0: 10}  # 90 of 100 samples at 10 ms
    assert [percentile(histogram, p) for p in (50, 90, 91, 95, 99, 100)] == [10.0, 10.0, 500.0, 500.0, 500.0, 500.0]
    assert percentile({}, 50) is None


def test_the_reservoir_reports_nearest_ranks_of_its_recent_samples():
    waits = Reservoir(size=100)
    for value in range(-49, 101):  # 150 samples; the first 50 fall out
        waits.add(float(value))
    assert len(waits) == 100
    assert waits.summary() == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}
    waits.clear()
    assert waits.summary() == {"p50": None, "p95": None, "p99": None, "max": None}
