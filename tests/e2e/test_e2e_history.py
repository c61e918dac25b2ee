"""The dashboard's history in a real browser against a real gunicorn: a tab opened after the traffic draws the run
from its start, and the Transfers panel says whose doing the missing money is (docs/dashboard.md)."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest

from ..live import burst, live_server
from .test_e2e_dashboard import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, Page, number

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

from playwright.sync_api import expect, sync_playwright  # noqa: E402  (test_e2e_dashboard skips without Chromium)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    opened = Page(browser)
    yield opened
    opened.close()


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_a_tab_opened_after_the_traffic_draws_the_run_from_its_start(browser, page):
    with live_server("--race-window-ms", "2") as server:
        server.configure(deposit_guard="lock")
        started = time.time()
        burst(server.url, 2, [(f"/accounts/acc-0{i}/deposit", {"amount": 1}) for i in range(4)])
        assert server.patch("/admin/config", json={"deposit_guard": "unsafe"}).status_code == 200  # no reset
        burst(server.url, 2, [(f"/accounts/acc-0{i}/deposit", {"amount": 1}) for i in range(4)])
        acknowledged = server.get("/stats").json()["deposits"]["acknowledged"]
        time.sleep(1.1)  # a second with no dashboard open, nor any request
        opened = time.time()
        page.open(server.url)
        drawn = page.js("window.dashboard.loaded")
        t = page.js("window.dashboard.series.t")
        before = sum(1 for at in t[:drawn] if at < opened)
        assert before >= 3, "the page drew the server's samples of the run from before it opened"
        assert t[0] < started + 1.5, "the first point is from the traffic's start"
        # the deposits chart: what the balances moved, before the tab opened, up to everything acknowledged
        change = page.js("window.dashboard.series.change")
        assert change[0] < change[before - 1] <= acknowledged
        markers = page.js("window.dashboard.markers.map((m) => m.label)")
        assert "deposit_guard unsafe" in markers, "the flip before the tab opened is marked"
        # then it goes on live
        expect(page.page.locator("#status")).to_contain_text("updated", timeout=WAIT_MS)
        page.page.wait_for_function(f"window.dashboard.series.t.length > {drawn + 1}", timeout=WAIT_MS)
        assert page.blocked == [] and page.errors == []


@pytest.mark.slow  # over 6 s: the slow step runs it
def test_the_transfers_panel_puts_the_deposits_lost_updates_on_the_deposits(browser, page):
    with live_server("--race-window-ms", "2") as server:
        server.configure(deposit_guard="unsafe", transfer_policy="naive")
        deposits = [("/accounts/acc-01/deposit", {"amount": 1}) for _ in range(6)]
        transfers = [("/transfers", {"from": "acc-01", "to": "acc-02", "amount": 1}) for _ in range(2)]
        burst(server.url, 3, deposits + transfers, most=80)
        now = server.get("/stats").json()
        lost = now["deposits"]["lost_updates"]
        assert lost > 0 and now["transfers"]["committed"] > 0
        assert now["transfers"]["total"] - now["transfers"]["expected_total"] == -lost
        p = page.open(server.url)
        expect(p.locator("#off-deposits")).to_have_text(f"{-lost:,}", timeout=WAIT_MS)
        expect(p.locator("#conserved")).to_have_text(f"{-lost:,}")
        assert number(p.locator("#off-transfers").inner_text()) == 0
        for figure in ("#conserved", "#off-transfers"):
            expect(p.locator(figure)).not_to_have_class(re.compile(r"\bbad\b"))
        caption = p.locator("#money-caption").inner_text()
        assert "lost by deposits' races (deposit_guard unsafe" in caption and "transfers conserved money" in caption
        assert page.blocked == [] and page.errors == []


@pytest.mark.parametrize("opened", ["/teams/red/", "/?team=red"])
def test_a_teams_dashboard_reads_only_that_teams_routes(browser, opened):
    """A room's team dashboard is `/teams/NAME/` (or `/?team=NAME`): the page's reads and its controls go to
    `/teams/NAME/...`, on a real room whose team red the server made."""
    with live_server("--race-window-ms", "0") as server:
        assert server.post("/admin/rooms", json={"teams": ["red"]}).status_code == 201  # loopback, no admin token
        context = browser.new_context()
        tab = context.new_page()
        asked: list[str] = []

        def as_a_team(route):
            url = urlsplit(route.request.url)
            if url.hostname != "127.0.0.1":
                return route.abort()
            asked.append(url.path)
            route.continue_()

        tab.route("**/*", as_a_team)
        tab.goto(server.url + opened)
        expect(tab.locator("#status")).to_contain_text("updated", timeout=WAIT_MS)
        tab.locator('fieldset[data-setting="deposit_guard"] button[data-value="lock"]').click()
        expect(tab.locator('fieldset[data-setting="deposit_guard"] button[data-value="lock"]')).to_have_attribute(
            "aria-pressed", "true", timeout=WAIT_MS
        )
        context.close()
        assert server.get("/teams/red/admin/config").json()["deposit_guard"] == "lock"  # the team's setting moved
        assert server.get("/admin/config").json()["deposit_guard"] != "lock"  # the default team's did not
    room_wide = {"/scoreboard"}  # the room's board: every team's grades, the same page for all
    api = [path for path in asked if not path.startswith("/static/") and path not in {"/teams/red/", "/", *room_wide}]
    assert {"/teams/red/stats", "/teams/red/dashboard/history", "/teams/red/admin/config"} <= set(api)
    assert all(path.startswith("/teams/red/") for path in api), api


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
def test_a_browser_whose_clock_is_an_hour_off_draws_its_live_points_after_the_history(browser, page):
    """The projector's laptop keeps its own time: the page puts its live points on the server's clock."""
    with live_server("--race-window-ms", "0") as server:
        burst(server.url, 1, [("/accounts/acc-00/deposit", {"amount": 1})] * 2)
        page.page.clock.install(time=time.time() + 3600)
        page.open(server.url)
        drawn = page.js("window.dashboard.loaded")
        page.page.wait_for_function(f"window.dashboard.series.t.length > {drawn + 2}", timeout=WAIT_MS)
        t = page.js("window.dashboard.series.t")
        assert t == sorted(t), "one time axis: the history's points, then the live ones"
        assert abs(t[-1] - time.time()) < 10, "the live points are on the server's clock, not the browser's"
        assert page.errors == []
