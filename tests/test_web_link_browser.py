"""The AMI link banner in a real Chromium, on the whole app: the wallboard shows which Asterisk
is down, why (a refusal in the peer's own words, shown as text) and since when, then clears when
it is back; the agent page shows its own banner.  Screenshots go to ``$CTI_SCREENSHOTS`` (else
the test's temporary directory)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from simulator import AsteriskSim, SimConfig
from tests.link_support import AGENT, AGENT_PW, PBX2, RefusingAmi, free_port, running_app
from tests.test_web_browser import CHROMIUM, chromium_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]

EVIL = '<img src=x onerror="document.title=1">no such user'


def _shots(tmp_path: Path) -> Path:
    d = Path(os.environ.get("CTI_SCREENSHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


def _csp_errors(page: Any) -> list[str]:
    """The page's Content-Security-Policy violations, as Chromium reports them on the console."""
    seen: list[str] = []

    def check(m: Any) -> None:
        if "Content Security Policy" in m.text or m.text.startswith("Refused to"):
            seen.append(m.text)

    page.on("console", check)
    return seen


async def _log_in(page: Any, base: str, user: str, password: str) -> None:
    await page.goto(f"{base}/agent")
    await page.fill("#username", user)
    await page.fill("#password", password)
    await page.click("#login")


async def test_wallboard_banner_down_with_the_peers_words_then_up(tmp_path: Path) -> None:
    shots = _shots(tmp_path)
    async with AsteriskSim(SimConfig(agi_port=1)) as sim, RefusingAmi(EVIL, host=PBX2) as pbx2, running_app(
            tmp_path, {"default": ("127.0.0.1", sim.ami_port), "pbx2": (PBX2, pbx2.port)}, two=True) as cti, \
            chromium_page() as (page, errors):
        console = _csp_errors(page)
        await page.set_viewport_size({"width": 1100, "height": 760})
        await _log_in(page, cti.base, "sue", "pw-sue")
        await page.wait_for_selector("#login-error:has-text('not an agent')")  # logged in all the same
        await page.goto(f"{cti.base}/wallboard")
        await page.wait_for_selector("#link-banner:not([hidden]) p[data-server='pbx2'][data-state='auth_failed']")
        banner = await page.text_content("#link-banner") or ""
        assert "Asterisk link down: pbx2" in banner and f"({PBX2}:{pbx2.port}, user ctilp)" in banner
        assert f"authentication failed: {EVIL}" in banner  # the peer's words, as text
        assert await page.locator("#link-banner img").count() == 0 and await page.title() == "Wallboard"
        assert "default" not in (await page.get_attribute("#link-banner", "data-down") or "")
        assert await page.get_attribute("#links tr[data-server='default']", "data-up") == "1"
        assert await page.get_attribute("#links tr[data-server='pbx2']", "data-up") == "0"
        await page.screenshot(path=str(shots / "wallboard-link-down.png"), full_page=True)

        port = pbx2.port
        await pbx2.__aexit__()  # pbx2's manager.conf is put right: an Asterisk that logs us in
        async with AsteriskSim(SimConfig(ami_host=PBX2, ami_port=port, agi_port=1)):
            await page.wait_for_selector("#links tr[data-server='pbx2'][data-up='1']", timeout=30_000)
            await page.wait_for_selector("#link-banner[hidden]", state="attached")
            await page.screenshot(path=str(shots / "wallboard-link-up.png"), full_page=True)
            assert errors == [] and console == []
            await cti.app.stop()


async def test_agent_page_banner_while_asterisk_is_unreachable(tmp_path: Path) -> None:
    shots = _shots(tmp_path)
    port = free_port()
    async with running_app(tmp_path, {"default": ("127.0.0.1", port)}) as cti, chromium_page() as (page, errors):
        console = _csp_errors(page)
        await page.set_viewport_size({"width": 1000, "height": 640})
        await _log_in(page, cti.base, AGENT, AGENT_PW)
        await page.wait_for_selector("#conn[data-connected='1']")
        await page.wait_for_selector("#link-banner:not([hidden]) p[data-server='default'][data-state='unreachable']")
        banner = await page.text_content("#link-banner") or ""
        assert "Asterisk link down: default" in banner and "unreachable: connection refused" in banner
        assert "No calls can be offered to you until it is back." in banner
        assert "127.0.0.1" not in banner and "ctilp" not in banner  # no address or user for agents
        await page.screenshot(path=str(shots / "agent-link-down.png"), full_page=True)
        async with AsteriskSim(SimConfig(ami_port=port, agi_port=1)):
            await page.wait_for_selector("#link-banner[hidden]", state="attached", timeout=30_000)
            await page.screenshot(path=str(shots / "agent-link-up.png"), full_page=True)
            assert errors == [] and console == []
            await cti.app.stop()
