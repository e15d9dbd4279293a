"""POST /api/ivr/reload on the real aiohttp app and the real store: the role matrix (admin only),
the Origin rule of the websockets, a refused reload's 422, and ``cti ivr reload`` against it."""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from callcenter.ivr_reload import add_reload_command, cmd_reload
from callcenter.settings import Settings
from crm_core.store import Store
from cti.bus import Bus
from ivr.registry import FlowRegistry
from screen_pop.deps import WebDeps
from screen_pop.web import build_app
from tests.test_ivr_reload import BROKEN, flow, flows_dir
from tests.web_support import FakeAcd

Api = tuple[str, FlowRegistry, Path]


class Reloader:
    def __init__(self, registry: FlowRegistry) -> None:
        self.registry = registry

    def reload_ivr(self, by: str) -> dict[str, object]:
        return self.registry.reload(by).to_json()


@pytest.fixture
async def api(store: Store, tmp_path: Path) -> AsyncIterator[Api]:
    for user, role, agent in [("ann", "agent", "1001"), ("sue", "supervisor", None), ("root", "admin", None)]:
        await store.set_user(user, f"pw-{user}", role, agent_id=agent)
    d = flows_dir(tmp_path, "old")
    registry = FlowRegistry.load(d, default_flow="main")
    bus = Bus()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = build_app(WebDeps(bus=bus, auth=store, customers=store, acd=FakeAcd(bus, ["1001"]),
                            ivr=Reloader(registry)), allowed_origins=[base])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield base, registry, d
    finally:
        await runner.cleanup()


async def _login(base: str, user: str) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with http.post(f"{base}/api/login", json={"username": user, "password": f"pw-{user}"}) as r:
        assert r.status == 200
    return http


async def _reload(http: aiohttp.ClientSession, base: str, origin: str | None = "same",
                  bearer: str | None = None) -> int:
    headers = {}
    if origin is not None:
        headers["Origin"] = base if origin == "same" else origin
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    async with http.post(f"{base}/api/ivr/reload", headers=headers) as r:
        return r.status


async def test_role_matrix_and_origin(api: Api) -> None:
    base, registry, _d = api
    async with aiohttp.ClientSession() as anon:
        assert await _reload(anon, base) == 401
    for user in ("ann", "sue"):
        async with await _login(base, user) as http:
            assert await _reload(http, base) == 403
    assert registry.version == 1
    async with await _login(base, "root") as http:
        assert await _reload(http, base, origin="http://evil.example") == 403  # foreign Origin
        assert await _reload(http, base, origin=None) == 403  # a cookie (a browser) must send one
        assert registry.version == 1
        assert await _reload(http, base) == 200
        assert registry.version == 2
        token = next(c.value for c in http.cookie_jar)
    async with aiohttp.ClientSession() as bearer:  # no browser: no Origin needed, a foreign one refused
        assert await _reload(bearer, base, origin=None, bearer=token) == 200
        assert await _reload(bearer, base, origin="http://evil.example", bearer=token) == 403
    assert registry.version == 3


async def test_refused_reload_is_422_with_the_lines(api: Api) -> None:
    base, registry, d = api
    (d / "bad.toml").write_text(BROKEN)
    async with await _login(base, "root") as http, http.post(f"{base}/api/ivr/reload",
                                                              headers={"Origin": base}) as r:
        assert r.status == 422
        body = await r.json()
    assert body["error"] == "invalid-flows" and body["ok"] is False and body["version"] == 1
    assert body["errors"] == [f"{d / 'bad.toml'}: node menu: fallback: missing"]
    assert registry.version == 1


def _args(base: str, user: str = "root") -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_reload_command(p.add_subparsers(), _no_settings)
    return p.parse_args(["reload", "--url", base, "--user", user])


def _no_settings(_path: str | None) -> Settings:
    raise AssertionError("--url given: no settings needed")


async def test_cli_reload(api: Api) -> None:
    base, registry, d = api
    (d / "main.toml").write_text(flow("new"))
    out = io.StringIO()
    code = await asyncio.to_thread(cmd_reload, _args(base), _no_settings, out, "pw-root")
    assert (code, out.getvalue()) == (0, "IVR flows version 1 -> 2: added [], removed [], changed ['main']\n")
    (d / "bad.toml").write_text(BROKEN)
    out = io.StringIO()
    code = await asyncio.to_thread(cmd_reload, _args(base), _no_settings, out, "pw-root")
    assert (code, out.getvalue()) == (2, f"{d / 'bad.toml'}: node menu: fallback: missing\n")
    code = await asyncio.to_thread(cmd_reload, _args(base, "sue"), _no_settings, io.StringIO(), "pw-sue")
    assert code == 1 and registry.version == 2
