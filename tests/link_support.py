"""The whole app (``callcenter.app.CtiApp``) in this process on real sockets, for the tests of the
AMI links' state on the web edge; and a tiny AMI peer that refuses every login with the words it
is given (no tests here)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import aiohttp

from callcenter.app import CtiApp
from callcenter.settings import load_settings

CONFIG = Path(__file__).resolve().parent.parent / "config" / "cti.toml"
PBX2 = "127.0.0.2"  # the second server's address (Linux answers on all of 127/8)
AGENT, AGENT_PW = "agent1001", "pw-1001"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    app: CtiApp
    base: str

    @property
    def ws_base(self) -> str:
        return "ws" + self.base.removeprefix("http")

    async def token(self, username: str, password: str) -> str:
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.base}/api/login", json={"username": username, "password": password}) as r:
            assert r.status == 200, await r.text()
            cookie = r.cookies.get("cti_session")
            assert cookie is not None
            return cookie.value

    async def get(self, path: str, token: str | None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession() as http, http.get(f"{self.base}{path}", headers=headers) as r:
            return r.status, await r.json(content_type=None)


@contextlib.asynccontextmanager
async def running_app(tmp_path: Path, where: dict[str, tuple[str, int]], *, two: bool = False,
                      ami_timeout: float = 5.0) -> AsyncIterator[Running]:
    """The app, on a free port of 127.0.0.1, its AMI links started at ``where`` (server name -> address);
    ``two``: a second server, ``pbx2`` on 127.0.0.2.  Users: ``sue`` (supervisor), ``root``
    (admin), ``agent1001`` (agent)."""
    cfg = tmp_path / "cti.toml"
    http = free_port()  # the pages' origin (http.allowed_origins) names it
    text = CONFIG.read_text().replace('flows_dir = "ivr"', f'flows_dir = "{CONFIG.parent / "ivr"}"')
    text = text.replace("127.0.0.1:8080", f"127.0.0.1:{http}")
    if two:
        text += f'\n[[ami_servers]]\nname = "pbx2"\nhost = "{PBX2}"\nport = {where["pbx2"][1]}\nsecret = "secret"\n'
    cfg.write_text(text)
    settings = load_settings(cfg, env={})
    app = CtiApp(settings, db_url=f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}", agent_passwords={"1001": AGENT_PW})
    try:
        await app.start(http_port=http, agi_port=0)
        assert app.store is not None
        await app.store.set_user("sue", "pw-sue", "supervisor")
        await app.store.set_user("root", "pw-root", "admin")
        await app.connect_ami(where=where, timeout=ami_timeout)
        yield Running(app, f"http://127.0.0.1:{app.http_port}")
    finally:
        await app.stop()


class RefusingAmi:
    """An AMI peer on ``host`` that answers every Login with ``Response: Error`` and
    ``message``, like an Asterisk whose manager.conf does not know our secret."""

    def __init__(self, message: str = "Authentication failed", host: str = "127.0.0.1") -> None:
        self.message, self.host = message, host
        self.logins = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _accept(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            w.write(b"Asterisk Call Manager/11.0.0\r\n")
            action = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            self.logins += 1
            m = re.search(rb"ActionID: ([^\r\n]*)", action)
            aid = m.group(1) if m else b""
            w.write(b"Response: Error\r\nActionID: " + aid + b"\r\nMessage: " + self.message.encode() + b"\r\n\r\n")
            await w.drain()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            w.close()
