"""The agent page in a real Chromium: log in, Ready, a CallOffered pops the customer's card."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cti.domain import CallAnswered, CallEnded
from tests.web_support import Env

CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[tuple[Any, list[str]]]:
    """A page in a fresh headless Chromium, and the page errors it reports."""
    playwright = pytest.importorskip("playwright.async_api")
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
        finally:
            await browser.close()


async def test_agent_page_login_ready_pop_disposition(env: Env) -> None:
    async with chromium_page() as (page, errors):
        await page.goto(f"{env.base_url}/")
        assert page.url.endswith("/agent")
        await page.fill("#username", "alice")
        await page.fill("#password", "wrong")
        await page.click("#login")
        await page.wait_for_selector("#login-error:has-text('wrong username')")
        await page.fill("#password", "pw-alice")
        await page.click("#login")
        await page.wait_for_selector("#conn[data-connected='1']")
        await page.click("#ready")
        await page.wait_for_selector("#state[data-state='ready']")
        assert env.acd.states["a1"] == "ready"

        env.offer("a1", "c42", customer_id=7)
        await page.wait_for_selector("#pop-card:not([hidden])")
        # (no wait_for_function: the page's CSP forbids the eval Playwright uses for it)
        await page.wait_for_selector("#pop-customer-name:text-is('Ada Lovelace')")
        assert await page.text_content("#pop-caller-num") == "+15550001"
        assert await page.text_content("#pop-account") == "ACC-0007"
        assert await page.text_content("#pop-tier") == "gold"
        assert await page.text_content("#pop-manager") == "Grace Hopper"
        assert await page.text_content("#pop-churn") == "high"
        assert "3 complaints" in (await page.text_content("#pop-churn-reasons") or "")
        assert "complaint" in (await page.text_content("#pop-contacts") or "")
        assert await page.is_disabled("#dispo-submit")

        env.acd.force("a1", "on_call", "c42")
        env.bus.publish(CallAnswered("c42", "a1", 2.0, time.time()))
        env.acd.force("a1", "wrap_up", "c42")
        env.bus.publish(CallEnded("c42", 16, "Normal Clearing", "caller", "hangup", time.time()))
        await page.wait_for_selector("#dispo-submit:not([disabled])")
        await page.select_option("#dispo-code", "sale")
        await page.fill("#dispo-notes", "bought the plan")
        await page.click("#dispo-submit")
        await page.wait_for_selector("#dispo-submit[disabled]")
        for _ in range(50):
            if env.acd.dispositions:
                break
            await page.wait_for_timeout(20)
        assert env.acd.dispositions == [("a1", "c42", "sale", "bought the plan")]
        assert errors == []


async def test_agent_page_pops_the_real_customer_360(tmp_path: Path) -> None:
    """The card in Chromium, fed by the real store's 360 view (not a hand-made record)."""
    from crm_core.store import Store
    from tests.web_support import start_env

    day, now = 86400.0, time.time()
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}") as store:
        await store.seed_demo(0)  # dispositions (complaint is one)
        c = await store.upsert_customer("ACC-0042", "Grace Hopper", ["+1 555 010 4242"], value_tier="key",
                                        account_manager="Alice Martin", monthly_revenue=480.0)
        await store.log_contact(c.id, "email", "inbound", now - 3 * day, disposition="complaint",
                                notes="double charge")
        env = await start_env(store=store)
        try:
            async with chromium_page() as (page, errors):
                await page.goto(f"{env.base_url}/agent")
                await page.fill("#username", "alice")
                await page.fill("#password", "pw-alice")
                await page.click("#login")
                await page.wait_for_selector("#conn[data-connected='1']")
                env.offer("a1", "c77", customer_id=c.id, caller_num="+15550104242")
                await page.wait_for_selector("#pop-customer-name:text-is('Grace Hopper')")
                assert await page.text_content("#pop-account") == "ACC-0042"
                assert await page.text_content("#pop-tier") == "key"
                assert await page.text_content("#pop-manager") == "Alice Martin"
                view = await store.customer_360(c.id)
                assert view.churn_reasons and await page.text_content("#pop-churn") == str(view.churn_risk)
                assert view.churn_reasons[0] in (await page.text_content("#pop-churn-reasons") or "")
                contacts = await page.text_content("#pop-contacts") or ""
                assert "email" in contacts and "complaint" in contacts
                assert errors == []
        finally:
            await env.runner.cleanup()
