"""The scoreboard panel in a real browser (Playwright driving Debian's Chromium) against a real gunicorn: grades
posted over HTTP, by `requests` and by `post_grade`, show up in the panel without a reload, each team's best per
exercise, with the note that grades are self-reported. The page reaches nothing but 127.0.0.1. Without
/usr/bin/chromium the test skips, except under CI=true."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
import requests

from bankapp.exercise.room import post_grade

from ..live import live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WAIT_MS = 15_000  # several polls, on a loaded machine

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with live_server() as running:
        yield running


@pytest.fixture
def page():
    """A page that may reach 127.0.0.1 only; what it tried elsewhere, and its errors, recorded."""
    blocked: list[str] = []
    errors: list[str] = []

    def only_loopback(route):
        url = urlsplit(route.request.url)
        if url.scheme == "data" or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            opened = browser.new_context(viewport={"width": 1600, "height": 1400}).new_page()
            opened.route("**/*", only_loopback)
            opened.on("console", lambda message: message.type == "error" and errors.append(message.text))
            opened.on("pageerror", lambda error: errors.append(str(error)))
            yield opened
        finally:
            browser.close()
    assert blocked == []
    assert errors == []


def grade(team: str, exercise: str, passed: bool, schedules: int, speed_ratio: float | None) -> dict:
    return {"team": team, "exercise": exercise, "passed": passed, "schedules": schedules, "speed_ratio": speed_ratio}


@pytest.mark.slow  # about 6 s: the slow step runs it
def test_grades_posted_over_http_show_on_the_panel(server, page):
    page.goto(server.url + "/")
    expect(page.locator("#status")).to_contain_text("updated", timeout=WAIT_MS)
    expect(page.locator("#scoreboard-note")).to_have_text("self-reported: judged on the trainees' machines")
    expect(page.locator("#scoreboard-caption")).to_contain_text("no grade yet")
    expect(page.locator("#scoreboard-table")).to_be_hidden()

    assert server.post("/scoreboard", json=grade("red", "deposit-guard", True, 42, 1.25)).status_code == 200
    assert server.post("/scoreboard", json=grade("blue", "transfer-order", False, 7, None)).status_code == 200
    post_grade(server.url, "blue", {"exercise": "deposit-guard", "passed": True, "schedules": 12, "speed_ratio": 2.0})

    red = page.locator('#scoreboard td[data-team="red"][data-exercise="deposit-guard"]')
    expect(red).to_contain_text("✓ pass", timeout=WAIT_MS)
    expect(red).to_contain_text("42 schedules")
    expect(red).to_contain_text("1.25\u00d7 the model's speed")
    failed = page.locator('#scoreboard td[data-team="blue"][data-exercise="transfer-order"]')
    expect(failed).to_contain_text("✗ fail")
    expect(failed).to_have_attribute("data-passed", "false")
    # columns in the course's order, a row per team with how many exercises it passed
    header = page.locator("#scoreboard-table thead th")
    expect(header).to_have_text(["team", "deposit-guard", "transfer-order"])
    expect(page.locator("#scoreboard-table tbody th")).to_have_text(["blue (1/2)", "red (1/2)"])
    expect(page.locator('#scoreboard tbody tr:has(th:text("red")) td.none')).to_have_text("\u2013")  # a dash: no grade
    expect(page.locator("#scoreboard-caption")).to_be_hidden()

    # a later fail is the latest, not the best: the cell keeps the pass, its title says both
    assert server.post("/scoreboard", json=grade("red", "deposit-guard", False, 50, None)).status_code == 200
    expect(red).to_have_attribute("data-attempts", "2", timeout=WAIT_MS)
    expect(red).to_contain_text("✓ pass")
    title = red.get_attribute("title") or ""
    assert "best: pass" in title and "latest: fail, 50 schedules" in title

    # a grade carrying code is refused and never reaches the page
    refused = server.post("/scoreboard", json=grade("green", "admission", True, 1, None) | {"code": "x = 1"})
    assert refused.status_code == 422
    page.wait_for_timeout(2500)  # a few polls more
    expect(page.locator('#scoreboard td[data-team="green"]')).to_have_count(0)

    # emptied by an admin, the panel says so again
    assert requests.delete(server.url + "/admin/scoreboard", timeout=10).json() == {"cleared": 3}
    expect(page.locator("#scoreboard-caption")).to_contain_text("no grade yet", timeout=WAIT_MS)
    expect(page.locator("#scoreboard-table")).to_be_hidden()
