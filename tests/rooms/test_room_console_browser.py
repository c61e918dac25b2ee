"""The instructor's console in a real browser (Playwright driving Debian's Chromium) against a real gunicorn:
every team in one table, the room moved to a lesson with one click, and a team's own dashboard."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from ..live import live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WAIT_MS = 15_000
TOKEN = "room-console"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with live_server("--admin-token", TOKEN, "--race-window-ms", "1") as running:
        yield running


@pytest.fixture
def page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1600, "height": 1200})
        opened = context.new_page()
        opened.sent = []  # (path, X-Team) of every request the page made

        def only_loopback(route):
            request = route.request
            if urlsplit(request.url).hostname != "127.0.0.1":
                return route.abort()
            opened.sent.append((urlsplit(request.url).path, request.headers.get("x-team")))
            return route.continue_()

        opened.route("**/*", only_loopback)
        yield opened
        browser.close()


def test_the_console_moves_the_room_to_a_lesson(server, page):
    made = server.post("/admin/rooms", json={"teams": ["red", "blue"]}, headers=ADMIN)
    assert made.status_code == 201
    page.goto(server.url + "/")
    token = page.locator("#room-token")
    expect(token).to_be_visible(timeout=WAIT_MS)  # the room asks for the admin token
    page.fill("#room-token-input", TOKEN)
    token.locator("button").click()
    rows = page.locator("#room-table tbody tr")
    expect(rows).to_have_count(3, timeout=WAIT_MS)  # default, red, blue
    expect(page.locator('#room-table tr[data-team="red"]')).to_be_visible()

    page.select_option("#room-lesson", "3")
    page.click("#room-lesson-move")
    expect(page.locator("#room-status")).to_contain_text("moved to lesson 3", timeout=WAIT_MS)
    for path in ("/stats", "/teams/red/stats", "/teams/blue/stats"):
        settings = server.get(path).json()["settings"]
        assert (settings["deposit_guard"], settings["race_window_ms"]) == ("unsafe", 500), path
    expect(page.locator('#room-table tr[data-team="blue"] td.guard')).to_have_text("unsafe", timeout=WAIT_MS)

    page.click("#room-freeze")
    expect(page.locator("#room-status")).to_contain_text("3 teams frozen", timeout=WAIT_MS)
    assert server.post("/teams/red/accounts/acc-00/deposit", json={"amount": 1}).status_code == 423
    page.click("#room-thaw")
    expect(page.locator("#room-status")).to_contain_text("3 teams thawed", timeout=WAIT_MS)


def test_teams_made_in_the_console_get_a_card_each_with_a_token_that_works(server, page):
    page.goto(server.url + "/?console")
    page.evaluate(f"sessionStorage.setItem('bankapp-admin-token', '{TOKEN}')")
    page.fill("#room-names", "cyan magenta")
    page.click("#room-make button")
    cards = page.locator("#room-cards .card")
    expect(cards).to_have_count(2, timeout=WAIT_MS)
    token = cards.nth(1).locator("code").inner_text()
    assert "magenta" in cards.nth(1).inner_text()
    opened = server.get("/teams/magenta/admin/config", headers={"Authorization": f"Bearer {token}"})
    assert opened.status_code == 200
    assert server.get("/teams/cyan/admin/config", headers={"Authorization": f"Bearer {token}"}).status_code == 403


def test_a_teams_own_dashboard_asks_for_that_team_only(server, page):
    server.post("/admin/rooms", json={"teams": ["green"]}, headers=ADMIN)
    page.goto(server.url + "/?team=green")
    expect(page.locator("#status")).to_contain_text("updated", timeout=WAIT_MS)
    expect(page.locator("#room-team")).to_have_text("team green")
    expect(page.locator("#room")).to_be_hidden()
    polls = [(path, team) for path, team in page.sent if path.endswith(("/stats", "/dashboard/history"))]
    # each poll names the team: by its path (dashboard.js's own prefix) or by X-Team (console.js)
    assert polls and all(path.startswith("/teams/green/") or team == "green" for path, team in polls)
    page.goto(server.url + "/teams/green/")  # the same page under the team's prefix
    expect(page.locator("#room-team")).to_have_text("team green", timeout=WAIT_MS)
