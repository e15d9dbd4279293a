"""AMI server of the simulator: banner, login, challenge, errors, privileges, Originate, 3rd-party clients."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest

from cti.ami.protocol import AmiParser, Banner, Message, format_message
from simulator import AgentPhone, AsteriskSim, Caller, SimConfig

ALL = frozenset({"system", "call", "dialplan", "user", "agent", "reporting", "command", "originate", "security"})


def cfg(**kw: object) -> SimConfig:
    users = {"ctilp": ("secret", frozenset({"call", "dialplan", "user", "agent", "reporting"}),
                       frozenset({"call", "originate", "reporting"})),
             "admin": ("secret", ALL, ALL)}
    return SimConfig(users=users, time_factor=0.05, auth_fail_delay_s=0.1, agi_port=1, **kw)  # type: ignore[arg-type]


class Client:
    async def open(self, port: int) -> Client:
        self.r, self.w = await asyncio.open_connection("127.0.0.1", port)
        self.p = AmiParser()
        self.items: list[Banner | Message] = []
        return self

    async def next(self, timeout: float = 5.0) -> Banner | Message:
        while not self.items:
            data = await asyncio.wait_for(self.r.read(65536), timeout)
            if not data:
                raise EOFError
            self.items += self.p.feed(data)
        return self.items.pop(0)

    async def until(self, pred, timeout: float = 5.0) -> Message:  # type: ignore[no-untyped-def]
        while True:
            m = await self.next(timeout)
            if isinstance(m, Message) and pred(m):
                return m

    async def act(self, *h: tuple[str, str]) -> Message:
        self.w.write(format_message(h))
        return await self.until(lambda m: m.get("Response") is not None)

    async def login(self, user: str = "ctilp") -> Message:
        return await self.act(("Action", "Login"), ("Username", user), ("Secret", "secret"))


async def test_banner_login_ping_actionid() -> None:
    async with AsteriskSim(cfg()) as sim:
        r, w = await asyncio.open_connection("127.0.0.1", sim.ami_port)
        assert await asyncio.wait_for(r.readuntil(b"\r\n"), 2) == b"Asterisk Call Manager/11.0.0\r\n"
        w.close()
        c = await Client().open(sim.ami_port)
        assert isinstance(await c.next(), Banner)
        m = await c.act(("Action", "Login"), ("ActionID", "a1"), ("Username", "ctilp"), ("Secret", "secret"))
        assert m.headers == (("Response", "Success"), ("ActionID", "a1"), ("Message", "Authentication accepted"))
        m = await c.act(("Action", "Ping"))
        assert m.get("ActionID") is None and m.get("Ping") == "Pong"
        m = await c.act(("Action", "Ping"), ("ActionID", "p2"))
        assert m.headers[1] == ("ActionID", "p2")
        m = await c.act(("Action", "NoSuchAction"))
        assert m.get("Message") == ("Invalid/unknown command: NoSuchAction. Use Action: ListCommands "
                                    "to show available commands.")
        m = await c.act(("Action", "Logoff"))
        assert (m.get("Response"), m.get("Message")) == ("Goodbye", "Thanks for all the fish.")
        with pytest.raises(EOFError):
            await c.next()


async def test_wrong_secret_closes_after_delay() -> None:
    async with AsteriskSim(cfg()) as sim:
        c = await Client().open(sim.ami_port)
        await c.next()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        m = await c.act(("Action", "Login"), ("Username", "ctilp"), ("Secret", "wrong"))
        assert m.get("Message") == "Authentication failed" and loop.time() - t0 >= 0.09
        with pytest.raises(EOFError):
            await c.next()


async def test_md5_challenge() -> None:
    assert hashlib.md5(b"121141481secret").hexdigest() == "13a9394f0ab18499b524d92905b16723"
    async with AsteriskSim(cfg()) as sim:
        c = await Client().open(sim.ami_port)
        await c.next()
        m = await c.act(("Action", "Challenge"), ("AuthType", "MD5"))
        key = hashlib.md5(((m.get("Challenge") or "") + "secret").encode()).hexdigest()
        m = await c.act(("Action", "Login"), ("AuthType", "MD5"), ("Username", "ctilp"), ("Key", key))
        assert m.get("Message") == "Authentication accepted"


async def test_fullybooted_only_for_system_and_refusals() -> None:
    async with AsteriskSim(cfg()) as sim:
        a = await Client().open(sim.ami_port)
        await a.next()
        await a.login("admin")
        assert (await a.next()).get("Event") == "FullyBooted"  # type: ignore[union-attr]
        c = await Client().open(sim.ami_port)
        await c.next()
        await c.login()
        for action in ("MixMonitor", "DBPut", "Filter", "Command", "UserEvent"):
            m = await c.act(("Action", action), ("ActionID", "x"))
            assert (m.get("Response"), m.get("Message")) == ("Error", "Permission denied"), action
        m = await c.act(("Action", "Originate"), ("Channel", "Local/1004@agent-phones"),
                        ("Application", "System"), ("Data", "true"), ("Async", "true"))
        assert m.get("Message") == "Originate Access Forbidden: app or data blacklisted"
        m = await c.act(("Action", "Redirect"), ("Channel", "Local/x@y-00000000;1"), ("Context", "c"),
                        ("Exten", "1"), ("Priority", "1"))
        assert m.get("Message") == "Channel does not exist: Local/x@y-00000000;1"
        m = await c.act(("Action", "Hangup"), ("Channel", "Local/x@y-00000000;1"))
        assert m.get("Message") == "No such channel"
        assert not [i for i in c.items if isinstance(i, Message) and i.get("Event") == "FullyBooted"]


async def test_originate_async_outcomes() -> None:
    phones = (AgentPhone("1004", "answer", talk_s=1, hangs_up=True), AgentPhone("1002", "never"),
              AgentPhone("1003", "busy"))
    async with AsteriskSim(cfg(phones=phones)) as sim:
        c = await Client().open(sim.ami_port)
        await c.next()
        await c.login()
        for ext, reason in (("1004", "4"), ("1003", "5"), ("1002", "3")):
            m = await c.act(("Action", "Originate"), ("ActionID", f"o{ext}"), ("Channel", f"Local/{ext}@agent-phones"),
                            ("Application", "Wait"), ("Data", "1"), ("Timeout", "2000"), ("Async", "true"))
            assert m.get("Message") == "Originate successfully queued"
            r = await c.until(lambda m: m.get("Event") == "OriginateResponse", 10)
            assert (r.get("ActionID"), r.get("Reason")) == (f"o{ext}", reason)
            if reason != "4":
                assert r.get("Uniqueid") == "<unknown>" and r.get("Channel") == f"Local/{ext}@agent-phones"
            else:
                assert r.get("Channel", "").endswith(";1")


async def test_call_events_reach_ctilp_and_drop() -> None:
    async with AsteriskSim(cfg()) as sim:
        c = await Client().open(sim.ami_port)
        await c.next()
        await c.login()
        await sim.place_call(Caller("5551234", "Grace", patience_s=1))
        m = await c.until(lambda m: m.get("Event") == "Newchannel")
        assert m.get("Privilege") == "call,all"
        sim.drop_ami_clients()
        with pytest.raises((EOFError, ConnectionError)):
            for _ in range(10000):
                await c.next()


async def test_panoramisk_login_and_events() -> None:
    panoramisk = pytest.importorskip("panoramisk")
    async with AsteriskSim(cfg()) as sim:
        got: list[str] = []
        mgr = panoramisk.Manager(host="127.0.0.1", port=sim.ami_port, username="ctilp", secret="secret",
                                 ping_delay=0, loop=asyncio.get_running_loop())
        mgr.register_event("Newchannel", lambda m, e: got.append(e.Channel))
        await mgr.connect()
        await asyncio.sleep(0.1)
        await sim.place_call(Caller("5551234", "Grace", patience_s=1))
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.05)
        mgr.close()
        assert got and got[0].startswith("Local/abandon@callers-")


async def test_pyst2_login_and_events() -> None:
    manager = pytest.importorskip("asterisk.manager")
    async with AsteriskSim(cfg()) as sim:
        got: list[str] = []
        ready = threading.Event()

        def run() -> None:
            m = manager.Manager()
            m.connect("127.0.0.1", sim.ami_port)
            m.login("ctilp", "secret")
            m.register_event("Newchannel", lambda ev, mgr: got.append(ev.headers["Channel"]))
            ready.set()
            for _ in range(100):
                if got:
                    break
                threading.Event().wait(0.05)
            m.close()

        t = threading.Thread(target=run, daemon=True)
        t.start()
        await asyncio.to_thread(ready.wait, 5)
        await sim.place_call(Caller("5551234", "Grace", patience_s=1))
        await asyncio.to_thread(t.join, 10)
        assert got
