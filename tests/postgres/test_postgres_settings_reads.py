"""The settings on the postgres store: read once per request, and fresh for every request that starts later.

Two labs are two workers over one database. `calling` is what the web layer
does at the start of each request (a new `Caller`), so each block below is
one request.
"""

import pytest

from bankapp.lab.forensics import calling

pytestmark = pytest.mark.postgres


def test_a_request_keeps_the_settings_it_started_with_and_the_next_one_reads_the_patch(make_pg_lab):
    first = make_pg_lab(deposit_guard="unsafe")
    second = make_pg_lab(join=True)
    with calling("req-1", "deposit"):
        assert second.config().deposit_guard == "unsafe"
        first.settings.patch({"deposit_guard": "row-lock"})  # another worker answers a PATCH meanwhile
        assert second.config().deposit_guard == "unsafe"  # this request runs under one version, start to end
    with calling("req-2", "deposit"):  # started after the PATCH's answer: in force
        assert second.config().deposit_guard == "row-lock"
    assert second.config().deposit_guard == "row-lock"  # outside any request: read every time


def test_a_patch_in_a_request_is_in_force_for_the_rest_of_it(make_pg_lab):
    lab = make_pg_lab(deposit_guard="unsafe")
    with calling("req-1", "admin.patch_config"):
        assert lab.config().deposit_guard == "unsafe"
        lab.settings.patch({"deposit_guard": "row-lock"})
        assert lab.config().deposit_guard == "row-lock"
