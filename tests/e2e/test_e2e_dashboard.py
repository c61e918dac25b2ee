"""The dashboard in a real browser (Playwright driving Debian's Chromium) against a real gunicorn.

Every request the page makes outside 127.0.0.1 is blocked, and recorded: the
page must need none. Races are real: threads of HTTP clients burst at the
server while the page polls it. Without /usr/bin/chromium the tests skip,
except under CI=true (`.ci/run` installs it).

`BANKAPP_SCREENSHOT=docs/dashboard.png pytest tests/e2e/test_e2e_dashboard.py -k screenshot`
redraws the picture of the README and docs/dashboard.md from a demo run.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from ..live import burst, live_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
WAIT_MS = 15_000  # for what the page draws: several polls, on a loaded machine
#: read at import: an autouse fixture hides BANKAPP_* variables from the tests themselves
SCREENSHOT = os.environ.get("BANKAPP_SCREENSHOT")

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with live_server("--race-window-ms", "2") as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A fresh page that may reach 127.0.0.1 only, with what went wrong recorded."""

    def __init__(self, browser, viewport=None):
        self.context = browser.new_context(viewport=viewport or {"width": 1600, "height": 1000})
        self.page = self.context.new_page()
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.page.route("**/*", self._only_loopback)
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _only_loopback(self, route):
        url = urlsplit(route.request.url)
        if url.scheme == "data" or url.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def open(self, url: str):
        self.page.goto(url + "/")
        expect(self.page.locator("#status")).to_contain_text("updated", timeout=WAIT_MS)
        return self.page

    def js(self, expression: str):
        return self.page.evaluate(expression)

    def wait_for(self, thread: threading.Thread, timeout: float = 60) -> None:
        """Join `thread` while Playwright keeps serving the page: `route` handlers run in this
        process, so a page whose test thread just blocked would see its polls stall."""
        deadline = time.monotonic() + timeout
        while thread.is_alive() and time.monotonic() < deadline:
            self.page.wait_for_timeout(100)
        thread.join(1)
        assert not thread.is_alive()

    def under_load(self, url: str, seconds: float, jobs: list) -> None:
        """`burst(url, seconds, jobs)` in a thread, the page served meanwhile."""
        load = threading.Thread(target=burst, args=(url, seconds, jobs), daemon=True)
        load.start()
        self.wait_for(load)

    def close(self):
        self.context.close()


@pytest.fixture
def page(browser):
    opened = Page(browser)
    yield opened
    opened.close()


def number(text: str) -> int:
    return int(re.sub(r"[^\d-]", "", text))


def test_the_page_loads_offline_with_no_console_error(server, page):
    server.configure(guard="unsafe", transfer_policy="naive")
    p = page.open(server.url)
    expect(p.locator(".uplot")).to_have_count(5)
    expect(p.locator('fieldset[data-setting="deposit_guard"] button[aria-pressed="true"]')).to_have_text("unsafe")
    expect(p.locator('fieldset[data-setting="transfer_policy"] button[aria-pressed="true"]')).to_have_text("naive")
    expect(p.locator("#active-count")).to_have_text(re.compile(r"^\d+$"))
    expect(p.locator("#page-served-by")).to_contain_text("pid ")
    p.wait_for_timeout(2500)  # a few polls more
    assert page.blocked == []
    assert page.errors == []


def test_clicking_the_controls_changes_admin_config(server, page):
    server.configure(guard="unsafe", transfer_policy="naive", race_window_ms=2)
    p = page.open(server.url)
    p.click('fieldset[data-setting="deposit_guard"] button[data-value="lock"]')
    p.click('fieldset[data-setting="checkout_guard"] button[data-value="semaphore"]')
    p.click('fieldset[data-setting="transfer_policy"] button[data-value="ordered"]')
    p.fill("#race-window-ms", "3.5")
    p.click("#race-window button")
    wanted = {
        "deposit_guard": "lock",
        "checkout_guard": "semaphore",
        "transfer_policy": "ordered",
        "race_window_ms": 3.5,
    }
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        config = server.get("/admin/config").json()
        if {name: config[name] for name in wanted} == wanted:
            break
        p.wait_for_timeout(100)  # not time.sleep: the page's requests pass through this process (route)
    assert {name: config[name] for name in wanted} == wanted
    expect(p.locator('fieldset[data-setting="deposit_guard"] button[aria-pressed="true"]')).to_have_text("lock")

    # a refusal is shown as the problem's detail, and changes nothing
    p.fill("#race-window-ms", "20000")
    p.click("#race-window button")
    expect(p.locator("#problem")).to_contain_text("race_window_ms", timeout=WAIT_MS)
    assert server.get("/admin/config").json()["race_window_ms"] == 3.5

    p.click("#reset")
    expect(p.locator("#problem")).to_be_hidden()
    assert page.blocked == []
    assert len(page.errors) == 1 and "status of 422" in page.errors[0]  # Chromium logs the refused PATCH


def test_the_token_is_asked_for_when_the_server_requires_one(browser):
    with live_server("--admin-token", "s3cret") as server:
        opened = Page(browser)
        try:
            p = opened.open(server.url)
            p.click('fieldset[data-setting="deposit_guard"] button[data-value="rlock"]')
            expect(p.locator("#token")).to_be_visible(timeout=WAIT_MS)
            expect(p.locator("#problem")).to_contain_text("Authorization: Bearer")
            p.fill("#token-input", "wrong")
            p.click("#token button")
            expect(p.locator("#problem")).to_contain_text("not the admin_token", timeout=WAIT_MS)
            p.fill("#token-input", "s3cret")
            p.click("#token button")
            expect(p.locator("#token")).to_be_hidden(timeout=WAIT_MS)
            headers = {"Authorization": "Bearer s3cret"}
            expect(p.locator('fieldset[data-setting="deposit_guard"] button[aria-pressed="true"]')).to_have_text(
                "rlock", timeout=WAIT_MS
            )
            assert server.get("/admin/config", headers=headers).json()["deposit_guard"] == "rlock"
            assert p.evaluate("sessionStorage.getItem('bankapp-admin-token')") == "s3cret"
            assert opened.blocked == []
        finally:
            opened.close()


@pytest.mark.slow  # about 6 s: the slow step runs it
def test_lost_updates_on_the_page_rise_to_what_stats_reports(server, page):
    server.configure(deposit_guard="unsafe", race_window_ms=5)
    p = page.open(server.url)
    jobs = [(f"/accounts/acc-0{i % 4}/deposit", {"amount": 1}) for i in range(16)]
    load = threading.Thread(target=burst, args=(server.url, 4, jobs), daemon=True)
    load.start()
    on_page = []
    while load.is_alive():
        on_page.append(number(p.locator("#lost").inner_text()))
        p.wait_for_timeout(250)
    load.join()
    lost = server.get("/stats").json()["deposits"]["lost_updates"]
    assert lost > 0
    assert max(on_page) > 0, "the figure rose during the burst"
    expect(p.locator("#lost")).to_have_text(f"{lost:,}", timeout=WAIT_MS)
    expect(p.locator("#lost")).to_have_class(re.compile(r"\bbad\b"))
    # the chart's gap is the same number: acknowledged minus balance change
    gap = page.js("(() => { const s = window.dashboard.series; return s.ack.at(-1) - s.change.at(-1); })()")
    assert gap == lost
    assert page.blocked == [] and page.errors == []


@pytest.mark.slow  # about 6 s: the slow step runs it
def test_the_latest_erasure_is_drawn_as_two_lanes_and_told_in_words(server, page):
    server.configure(deposit_guard="unsafe", race_window_ms=5)
    p = page.open(server.url)
    expect(p.locator("#race-caption")).to_have_text("no write has erased another yet")
    page.under_load(server.url, 3, [("/accounts/acc-00/deposit", {"amount": 1})] * 8)
    latest = server.get("/debug/races?limit=1").json()["races"][0]
    erased, eraser = latest["erased"][0], latest["eraser"]
    expect(p.locator("#race-caption")).to_have_text(latest["sentence"], timeout=WAIT_MS)
    assert page.js("window.dashboard.race.id") == latest["id"]
    for mark in ("circle.read", "circle.write", "rect.window"):  # one of each per lane
        assert p.locator(f"#race {mark}").count() == 2, mark
    texts = p.locator("#race text").all_text_contents()
    assert {eraser["thread"], erased["thread"]} <= set(texts)
    assert f"wrote {eraser['balance']:,} over v{latest['overwrote']['version']}" in texts
    assert f"read {erased['read_balance']:,} (v{erased['read_version']})" in texts
    # the eraser's window opens before the erased write lands: that is the race
    reads = [float(x) for x in p.locator("#race circle.read").evaluate_all("cs => cs.map(c => c.getAttribute('cx'))")]
    writes = [float(x) for x in p.locator("#race circle.write").evaluate_all("cs => cs.map(c => c.getAttribute('cx'))")]
    assert reads[1] <= writes[0] <= writes[1]
    assert page.blocked == [] and page.errors == []


@pytest.mark.slow  # about 6 s: the slow step runs it
def test_a_checkout_burst_draws_in_flight_against_capacity(server, page):
    server.configure(checkout_guard="semaphore", capacity=4, max_waiting=4, service_time_ms=400, race_window_ms=0)
    p = page.open(server.url)
    page.under_load(server.url, 5, [("/checkout", {"sku": "widget", "quantity": 1})] * 12)
    checkout = server.get("/stats").json()["checkout"]
    assert checkout["peak_in_flight"] == 4 and checkout["rejected"] > 0
    drawn = page.js("window.dashboard.charts.flight.data")
    in_flight, capacity = drawn[1], drawn[3]
    assert max(in_flight) >= 1, "in flight was drawn while checkouts ran"
    assert max(in_flight) <= 4
    assert all(value == 4 for value in capacity[-3:]), "the capacity line where the semaphore holds"
    admission = page.js("window.dashboard.charts.admission.data")
    assert max(admission[1]) > 0 and max(admission[2]) > 0, "admitted and rejected per second"
    expect(p.locator("#peak-in-flight")).to_have_text("4", timeout=WAIT_MS)
    expect(p.locator("#in-flight")).to_contain_text("/ 4")
    assert page.blocked == [] and page.errors == []


def test_a_naive_deadlock_draws_its_cycle(server, page):
    server.configure(transfer_policy="naive", race_window_ms=50, lock_timeout_ms=10_000)
    p = page.open(server.url)
    expect(p.locator("#cycle-caption")).to_have_text("no deadlock yet")
    for _ in range(10):  # opposing transfers released together until one round deadlocks
        barrier = threading.Barrier(2)

        def transfer(source, target, barrier=barrier):
            barrier.wait()
            requests.post(server.url + "/transfers", json={"from": source, "to": target, "amount": 1}, timeout=30)

        pair = [threading.Thread(target=transfer, args=args) for args in (("acc-05", "acc-06"), ("acc-06", "acc-05"))]
        for thread in pair:
            thread.start()
        for thread in pair:
            page.wait_for(thread)
        if server.get("/stats").json()["transfers"]["deadlocks"]:
            break
    deadlock = server.get("/debug/locks").json()["recent_deadlocks"][-1]
    expect(p.locator("#cycle-caption")).to_contain_text(f"deadlock #{deadlock['id']}", timeout=WAIT_MS)
    labels = p.locator("#cycle g.node text").all_text_contents()
    assert sorted(labels) == sorted([step["thread"] for step in deadlock["cycle"]] + ["acc-05", "acc-06"])
    assert p.locator("#cycle line").count() == 2 * len(deadlock["cycle"])  # waits-for and held-by edges
    expect(p.locator("#deadlocks")).to_have_text(str(server.get("/stats").json()["transfers"]["deadlocks"]))
    assert page.blocked == [] and page.errors == []


def test_the_last_exploration_is_drawn_as_a_lane_per_thread(server, page):
    p = page.open(server.url)
    explored = requests.post(server.url + "/admin/explore", json={"scenario": "transfer", "guard": "naive"}, timeout=60)
    example = explored.json()["counterexample"]
    expect(p.locator("#explored-caption")).to_contain_text(f"the shortest: {example['schedule']}", timeout=WAIT_MS)
    assert p.locator("#explored g.step").count() == len(example["steps"])
    kinds = p.locator("#explored g.step text").all_text_contents()
    assert kinds == [step["step"].split(".")[1] for step in example["steps"]]
    lanes = {text for text in p.locator("#explored > text").all_text_contents()}
    assert {"a", "b"} <= lanes
    assert any(text.startswith("waits for the account lock of") for text in lanes)
    assert page.blocked == [] and page.errors == []


@pytest.mark.skipif(not SCREENSHOT, reason="set BANKAPP_SCREENSHOT=docs/dashboard.png")
def test_screenshot_of_a_demo_run(server, browser):
    """The picture of the README and docs/dashboard.md: unsafe deposits, then the flip to lock; a semaphore at
    capacity; naive transfers."""
    server.configure(
        deposit_guard="unsafe", checkout_guard="semaphore", capacity=4, max_waiting=4, transfer_policy="naive"
    )
    server.patch("/admin/config", json={"race_window_ms": 5, "service_time_ms": 300, "lock_timeout_ms": 10_000})
    opened = Page(browser, viewport={"width": 1600, "height": 1000})
    try:
        p = opened.open(server.url)
        p.wait_for_timeout(2000)
        deposits = [(f"/accounts/acc-0{i % 4}/deposit", {"amount": 1}) for i in range(12)]
        checkouts = [("/checkout", {"sku": "widget", "quantity": 1})] * 8
        transfers = [("/transfers", {"from": "acc-08", "to": "acc-09", "amount": 1})] * 2
        transfers += [("/transfers", {"from": "acc-09", "to": "acc-08", "amount": 1})] * 2
        jobs = deposits + checkouts + transfers
        load = threading.Thread(target=burst, args=(server.url, 20, jobs, 100_000), daemon=True)
        load.start()
        p.wait_for_timeout(9000)
        p.click('fieldset[data-setting="deposit_guard"] button[data-value="lock"]')  # the flip the room watches
        p.wait_for_timeout(8000)
        target = Path(SCREENSHOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        p.screenshot(path=str(target), full_page=True)  # while the load still runs
        opened.wait_for(load)
        assert opened.blocked == [] and opened.errors == []
    finally:
        opened.close()


def test_the_isolation_panel_names_the_store_it_needs(server, page):
    opened = page.open(server.url)
    opened.click("#isolation-run")
    expect(opened.locator("#problem")).to_contain_text("store:", timeout=WAIT_MS)
    expect(opened.locator("#isolation-caption")).to_have_text("not run")
    assert opened.locator("#isolation-table").is_hidden()


@pytest.mark.slow  # over 6 s of servers, load or a fault: the slow step runs it (the suite stays under 5 min)
@pytest.mark.postgres
def test_the_isolation_panel_draws_the_matrix_on_the_postgres_store(databases, browser):
    url = databases.create()
    with live_server("--store", "postgres", "--database-url", url) as running:
        opened = Page(browser)
        try:
            page = opened.open(running.url)
            page.click("#isolation-run")
            expect(page.locator("#isolation-caption")).to_have_text("every cell agrees with Hermitage", timeout=WAIT_MS)
            rows = page.locator("#isolation-table tbody tr")
            expect(rows).to_have_count(10)
            lost = rows.filter(has_text="P4").locator("td")
            expect(lost.nth(0)).to_have_text("anomaly")
            expect(lost.nth(1)).to_have_text("prevented (40001)")
            assert "<waiting on T1>" in lost.nth(1).get_attribute("title")
            assert opened.errors == [] and opened.blocked == []
        finally:
            opened.close()
