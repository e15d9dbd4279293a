"""The AMI link's state: the pure table (``cti.ami.link``), then the client keeping it over real
TCP: nothing listening, the simulator refusing the login, a peer that is not an AMI or says
nothing, a drop and an Asterisk restart.  Each change is logged once, however many retries."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

import pytest

from cti.ami import link as lk
from cti.ami.client import AmiClient
from simulator.core import AsteriskSim, SimConfig

LOGGER = "cti.ami.client"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lines(caplog: pytest.LogCaptureFixture, needle: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and needle in r.getMessage()]


async def _until(c: AmiClient, pred: Callable[[lk.LinkState], bool], timeout: float = 10.0) -> None:
    """Wait for an update of ``c``'s link state that satisfies ``pred``."""
    hit = asyncio.Event()

    def check(state: lk.LinkState) -> None:
        if pred(state):
            hit.set()

    c.on_link_state(check)
    if not pred(c.link):
        await asyncio.wait_for(hit.wait(), timeout)


# -- the pure table -------------------------------------------------------------------------------


def test_a_state_changes_once_per_kind_and_counts_the_retries() -> None:
    s0 = lk.initial("pbx", "10.0.0.5", 5038, "ctilp", 100.0)
    assert s0.state == lk.CONNECTING and not s0.up and s0.since == 100.0
    s1 = lk.failed(s0, lk.UNREACHABLE, "connection refused", 101.0)
    assert lk.changed(s0, s1) and s1.attempts == 1 and s1.since == 100.0 and s1.changed_at == 101.0
    s2 = lk.failed(s1, lk.UNREACHABLE, "connection refused", 102.0)
    assert not lk.changed(s1, s2) and s2.attempts == 2 and s2.changed_at == 101.0
    s3 = lk.failed(s2, lk.AUTH_FAILED, "Authentication failed", 103.0)
    assert lk.changed(s2, s3) and s3.attempts == 3 and s3.since == 100.0
    up = lk.logged_in(s3, 110.0)
    assert up.up and up.since == 110.0 and up.attempts == 0 and up.reason == ""
    assert lk.describe(s3, up, 30) == ("AMI 'pbx' at 10.0.0.5:5038 (user 'ctilp'): connected again after "
                                       "10.0 s down, 3 failed attempts")
    lost = lk.failed(up, lk.LOST, "EOF from Asterisk", 120.0)
    assert lost.since == 120.0 and lost.attempts == 0
    assert lk.describe(up, lost, 30).endswith("link lost (EOF from Asterisk); reconnecting")
    assert lk.describe(s0, lk.logged_in(s0, 100.5), 30) == "AMI 'pbx' at 10.0.0.5:5038 (user 'ctilp'): connected"
    assert "authentication failed (Authentication failed); check the username and secret" in lk.describe(s2, s3, 30)
    assert lk.describe(s0, s1, 30).endswith("unreachable (connection refused); retrying with backoff "
                                            "(at most 30 s apart)")
    with pytest.raises(ValueError, match="not a failure state"):
        lk.failed(s0, lk.UP, "", 1.0)


def test_the_agents_view_has_no_address_user_or_count() -> None:
    s = lk.failed(lk.initial("pbx", "10.0.0.5", 5038, "ctilp", 1.0), lk.AUTH_FAILED, "x\n  y" * 100, 2.0)
    assert set(s.public()) == {"server", "up", "state", "reason", "since"}
    assert {"host", "port", "username", "attempts"} <= set(s.to_json())
    assert "\n" not in s.reason and len(s.reason) == lk.MAX_REASON  # a peer's words, folded and cut


def test_reasons_read_like_the_os_says_them() -> None:
    assert lk.reason_of(ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")) == "connection refused"
    assert lk.reason_of(TimeoutError()) == "timed out"
    assert lk.reason_of(socket.gaierror(-2, "Name or service not known")) == "Name or service not known"
    assert lk.reason_of(RuntimeError()) == "RuntimeError"


# -- the client over real TCP ---------------------------------------------------------------------


@pytest.fixture
def updates() -> list[lk.LinkState]:
    return []


def _client(port: int, seen: list[lk.LinkState], secret: str = "secret", **kw: float) -> AmiClient:
    c = AmiClient("127.0.0.1", port, "ctilp", secret, backoff_initial=kw.pop("backoff_initial", 0.02),
                  backoff_max=kw.pop("backoff_max", 0.2), **kw)
    c.on_link_state(seen.append)
    return c


async def test_unreachable_is_said_once_then_the_recovery_once(caplog: pytest.LogCaptureFixture,
                                                               updates: list[lk.LinkState]) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    port = _free_port()  # nothing listens there yet
    c = _client(port, updates)
    await c.start(wait=False)
    try:
        assert await c.wait_attempted(5)
        await _until(c, lambda s: s.attempts >= 6)
        assert c.link.state == lk.UNREACHABLE and c.link.reason == "connection refused" and not c.connected
        assert len(_lines(caplog, "unreachable")) == 1
        (line,) = _lines(caplog, "unreachable")
        assert line.levelno == logging.WARNING
        assert line.getMessage() == (f"AMI 'default' at 127.0.0.1:{port} (user 'ctilp'): unreachable (connection "
                                     "refused); retrying with backoff (at most 0.2 s apart)")
        assert (line.server, line.port, line.user, line.link) == ("default", port, "ctilp", "unreachable")  # type: ignore[attr-defined]
        async with AsteriskSim(SimConfig(ami_port=port, agi_port=1)):
            await c.wait_connected(5)
            await asyncio.sleep(0.3)
            assert c.link.up and c.link.attempts == 0
            (back,) = _lines(caplog, "connected again")
            assert back.levelno == logging.INFO and "failed attempts" in back.getMessage()
            assert len(_lines(caplog, "unreachable")) == 1
            await c.stop()  # before the simulator stops (else: lost, unreachable)
    finally:
        await c.stop()
    refused = [u.attempts for u in updates if u.state == lk.UNREACHABLE]
    assert refused == list(range(1, len(refused) + 1))  # every retry reported to the listeners ...
    assert [u.state for u in updates[len(refused):]] == [lk.UP]  # ... and logged only at a change
    assert "secret" not in caplog.text


async def test_a_refused_login_is_said_once_and_retried(caplog: pytest.LogCaptureFixture,
                                                        updates: list[lk.LinkState]) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    async with AsteriskSim(SimConfig(agi_port=1, auth_fail_delay_s=0.01)) as sim:
        c = _client(sim.ami_port, updates, secret="not-the-secret")
        await c.start(wait=False)
        try:
            await _until(c, lambda s: s.attempts >= 4)
            assert c.link.state == lk.AUTH_FAILED and c.link.reason == "Authentication failed"
        finally:
            await c.stop()
    (line,) = _lines(caplog, "authentication failed")
    assert line.levelno == logging.ERROR
    assert f"at 127.0.0.1:{sim.ami_port} (user 'ctilp'): authentication failed (Authentication failed)" \
        in line.getMessage()
    assert "not-the-secret" not in caplog.text
    assert all(r.getMessage().count("authentication failed") <= 1 for r in caplog.records)


async def _serve(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]) -> asyncio.Server:
    async def accept(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await handler(r, w)  # type: ignore[misc]
        finally:
            w.close()
    return await asyncio.start_server(accept, "127.0.0.1", 0)


async def test_a_peer_that_is_not_an_ami_fails_the_login_at_once(caplog: pytest.LogCaptureFixture,
                                                                  updates: list[lk.LinkState]) -> None:
    caplog.set_level(logging.INFO, LOGGER)

    async def http(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await w.drain()
        await r.read(100)

    server = await _serve(http)
    port = server.sockets[0].getsockname()[1]
    c = _client(port, updates)
    try:
        await c.start(wait=False)
        await _until(c, lambda s: s.attempts >= 3, 2.0)  # no waiting out the login's 3 s
        assert c.link.state == lk.NO_LOGIN and "not an AMI banner" in c.link.reason
    finally:
        await c.stop()
        server.close()
    assert len(_lines(caplog, "connected but no login")) == 1


async def test_a_silent_peer_is_no_login_after_the_login_timeout(updates: list[lk.LinkState]) -> None:
    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()  # until the client gives up

    server = await _serve(silent)
    c = _client(server.sockets[0].getsockname()[1], updates)
    try:
        await c.start(wait=False)
        assert not await c.wait_attempted(1.0)  # still waiting for the login's answer
        assert c.link.state == lk.CONNECTING
        assert await c.wait_attempted(5.0)
        assert c.link.state == lk.NO_LOGIN and c.link.reason == "no answer to the login within 3 s"
    finally:
        await c.stop()
        server.close()


async def test_a_restarted_asterisk_is_lost_unreachable_then_up(caplog: pytest.LogCaptureFixture,
                                                                 updates: list[lk.LinkState]) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    async with AsteriskSim(SimConfig(agi_port=1)) as sim:
        port = sim.ami_port
        c = _client(port, updates)
        await c.start(timeout=5)
    try:  # the simulator has stopped: the link drops, and the port refuses
        await _until(c, lambda s: s.state == lk.UNREACHABLE and s.attempts >= 3)
        async with AsteriskSim(SimConfig(ami_port=port, agi_port=1)):
            await c.wait_connected(5)
            await c.stop()
    finally:
        await c.stop()
    said = [r.getMessage().split(": ", 1)[1] for r in caplog.records if r.name == LOGGER]
    assert [s.split(" (")[0].split(" after")[0] for s in said] == [
        "connected", "link lost", "unreachable", "connected again"], said
    assert [u.state for u in updates][:3] == [lk.UP, lk.LOST, lk.UNREACHABLE]
