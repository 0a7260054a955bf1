"""The dashboard in headless Chromium against `flowhost dev examples/orders`: log in with the
printed URL, start a run from its flow's page and watch its timeline reach `completed` live,
fire the manual trigger `refund.request` through the form generated from its JSON Schema,
resolve the refund's approval await with its button, and take screenshots of every page
(tests/artifacts/, git-ignored)."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Page, expect

from tests.support.browser import ARTIFACTS, chromium, dev_server

LIVE = 30_000  # ms: a run of the example takes about one second
RUN_URL = re.compile(r"/runs/[0-9a-f-]{36}$")
ORDER = {
    "id": "B-2002",
    "customer": "grace@example.com",
    "items": [{"sku": "LAMP-3", "price": 30.0, "quantity": 1}],
}


@contextlib.asynccontextmanager
async def dashboard(
    tmp_path: Path, orders_project: Path, database_url: str
) -> AsyncIterator[tuple[Page, str, str]]:
    """A page of headless Chromium, the base URL of `flowhost dev` on a copy of the orders
    example, and the login URL it printed."""
    project = tmp_path / "p"
    shutil.copytree(orders_project, project, ignore=shutil.ignore_patterns(".flowhost"))
    with dev_server(project, database_url) as (_server, url):
        base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
        async with chromium() as browser:
            yield await browser.new_page(viewport={"width": 1360, "height": 900}), base, url


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


async def status_badge(page: Page, status: str) -> None:
    """The run page's header shows `status`; the page was not reloaded to get there."""
    badge = page.locator(f'[data-part="header"] .badge[data-status="{status}"]')
    await expect(badge).to_be_visible(timeout=LIVE)
    assert await page.evaluate("window.__notReloaded") is True


async def test_the_dashboard_runs_a_flow_fires_a_trigger_and_resolves_an_await_live(
    tmp_path: Path, orders_project: Path, database_url: str
) -> None:
    async with dashboard(tmp_path, orders_project, database_url) as (page, base, url):
        errors: list[str] = []
        failed: list[tuple[int, str]] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "response",
            lambda r: failed.append((r.status, urlsplit(r.url).path)) if r.status >= 400 else None,
        )

        # The printed URL logs in and leaves the token out of the address.
        await page.goto(url)
        assert page.url == base + "/"
        await expect(page.locator("h1")).to_have_text("Overview")
        await shot(page, "overview")

        # Start a run from the flow's page, then follow it live to the end.
        await page.goto(base + "/flows/orders")
        await expect(page.locator("svg.graph .node")).to_have_count(5)
        await shot(page, "flow")
        await page.fill('textarea[name="input"]', json.dumps(ORDER))
        await page.click("text=Start run")
        await page.wait_for_url(RUN_URL)
        await page.evaluate("window.__notReloaded = true")
        await status_badge(page, "completed")
        timeline = page.locator("#timeline")
        await expect(timeline.locator("li", has_text="flow.completed")).to_have_count(1)
        await expect(timeline.locator("li", has_text="step.retry")).to_have_count(1)
        await expect(page.locator("svg.graph .node.s-completed")).to_have_count(5)
        await shot(page, "run-completed")

        # The manual trigger's form: generated from its schema, checked by the server.
        await page.goto(base + "/triggers/refund.request")
        form = page.locator("#fire-form")
        await form.locator('[data-pointer="/order_id"]').fill("B-2002")
        await form.locator('[data-pointer="/amount"]').fill("0")
        await form.locator('[data-pointer="/reason"]').select_option(label="damaged")
        await form.locator('[data-pointer="/note"]').fill("arrived broken")
        await form.locator("button[type=submit]").click()
        await expect(form.locator('[data-error-for="/amount"]')).to_contain_text("0.01")
        await form.locator('[data-pointer="/amount"]').fill("30")
        await form.locator("button[type=submit]").click()
        fired = page.locator("#flash a")
        await expect(fired).to_have_count(1, timeout=LIVE)
        await shot(page, "trigger-fired")
        await fired.click()
        await page.wait_for_url(RUN_URL)
        await page.evaluate("window.__notReloaded = true")

        # The refund waits for its approval; its button resolves it and the run goes on.
        await status_badge(page, "awaiting")
        resolve = page.locator('button[data-resolve="pay"]')
        await expect(resolve).to_be_visible(timeout=LIVE)
        await shot(page, "run-awaiting")
        await page.fill(
            '[data-part="awaits"] textarea[name="body"]', '{"approved": true, "by": "ops"}'
        )
        await resolve.click()
        await status_badge(page, "completed")
        await expect(timeline.locator("li", has_text="await.resolved")).to_have_count(1)
        await expect(timeline.locator("li", has_text="refund paid")).to_have_count(1)
        await shot(page, "run-resolved")

        for name, path in [
            ("runs", "/runs"),
            ("triggers", "/triggers"),
            ("schedules", "/schedules"),
            ("queues", "/queues"),
            ("workers", "/workers"),
            ("overview-after", "/?window=1h"),
        ]:
            await page.goto(base + path)
            await expect(page.locator("h1")).to_be_visible()
            await shot(page, name)
        await expect(page.locator("svg rect.bar.s-completed").first).to_be_visible()
        assert errors == [], errors
        # The one refusal: the fire with an amount below the schema's minimum.
        assert failed == [(422, "/api/triggers/refund.request/fire")], failed


async def test_triggers_and_schedules_are_made_changed_and_switched_from_the_dashboard(
    tmp_path: Path, orders_project: Path, database_url: str
) -> None:
    async with dashboard(tmp_path, orders_project, database_url) as (page, base, url):
        page.on("dialog", lambda dialog: dialog.accept())
        await page.goto(url)

        # Create an event trigger subscribing refunds (manual mode), then change it.
        await page.goto(base + "/triggers/new")
        await page.fill('input[name="name"]', "ops.alert")
        await page.select_option('select[name="type"]', "event")
        config = page.locator('textarea[name="config"]')
        await expect(config).to_have_value(re.compile(r'"events"'))  # the type's example
        await config.fill('{"events": ["ops.alert"]}')
        await page.check('[data-subscribe="refunds"]')
        await page.select_option("[data-subscribe-mode]", "manual")
        await page.click("text=Create trigger")
        await page.wait_for_url(base + "/triggers/ops.alert")
        subscriptions = page.locator('[data-part="figures"] table')
        await expect(subscriptions).to_contain_text("refunds")
        await expect(subscriptions).to_contain_text("manual")
        await page.click("text=Edit")
        await page.fill('textarea[name="description"]', "pages the people on call")
        await page.click("text=Save")
        await page.wait_for_url(base + "/triggers/ops.alert")
        await expect(page.locator("main")).to_contain_text("pages the people on call")
        await expect(page.locator("p.meta")).to_contain_text("version 2")
        await shot(page, "trigger-edited")
        await page.click("button:has-text('Retire')")
        await expect(page.locator("p.meta .badge")).to_have_text("retired", timeout=LIVE)

        # Fire the manual trigger, then replay that fire.
        await page.goto(base + "/triggers/refund.request")
        form = page.locator("#fire-form")
        await form.locator('[data-pointer="/order_id"]').fill("C-3")
        await form.locator('[data-pointer="/amount"]').fill("5")
        await form.locator('[data-pointer="/reason"]').select_option(label="late")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#flash a")).to_have_count(1, timeout=LIVE)
        await page.fill('input[name="last"]', "1")
        await page.click("button:has-text('Replay')")
        await expect(page.locator("#flash")).to_contain_text("1 run started", timeout=LIVE)
        await expect(page.locator('[data-part="history"]')).to_contain_text("replay of")

        # A schedule made as a trigger, switched off and on from its pages.
        await page.goto(base + "/triggers/new")
        await page.fill('input[name="name"]', "nightly")
        await page.select_option('select[name="type"]', "schedule")
        await page.fill('textarea[name="config"]', '{"cron": "0 3 * * *"}')
        await page.click("text=Create trigger")
        await page.wait_for_url(base + "/triggers/nightly")
        await page.goto(base + "/schedules")
        row = page.locator("tr", has_text="nightly")
        await row.locator("button:has-text('Disable')").click()
        await expect(row.locator("button:has-text('Enable')")).to_be_visible(timeout=LIVE)
        await page.goto(base + "/schedules/nightly")
        await expect(page.locator("main")).to_contain_text("None planned")
        await page.click("button:has-text('Enable')")
        await expect(page.locator("main ol li")).to_have_count(10, timeout=LIVE)
        await page.fill('input[name="cron"]', "30 4 * * *")
        await page.click("text=Save")
        await expect(page.locator("p.meta")).to_contain_text("30 4 * * *", timeout=LIVE)
        await shot(page, "schedule")
