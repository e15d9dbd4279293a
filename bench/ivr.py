"""The IVR over real FastAGI: N concurrent calls through a 6-node flow (play, lookup, menu, collect,
branch, queue), our FastAgiServer + IvrRunner in a spawned process, the callers in this one.

Each caller connects, sends the recorded environment and answers as Asterisk 22 does; media commands
(STREAM FILE, GET DATA) answer after a short delay, as a caller listening and keying would, so that
the N sessions overlap.  A session counts as completed when the server sent ``SET VARIABLE CTI_NEXT
queue`` and closed.

The node overhead is the runner's own time between a reply (or the CRM's answer) and its next command:
the server wraps the session and the CRM and takes ``perf_counter`` when a command returns and when the
next one is called; the wire is outside.  Each session gives 6 such gaps (after ANSWER, CTI_CALL_ID,
the greeting, the lookup, the menu, the collect), each one node's work (step, IvrStep, the next command).
"""

from __future__ import annotations

import asyncio
import contextvars
import statistics
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.common import HOST, AsteriskAgiPeer, Child, Options, Report, quiet_logging
from bench.traces import agi_environment

FLOW = """
start = "greeting"
[nodes.greeting]
type = "play"
prompts = ["hello-world"]
next = "identify"
[nodes.identify]
type = "lookup"
by = "ani"
found = "menu"
not_found = "menu"
[nodes.menu]
type = "menu"
prompt = "beep"
options = { "1" = "account", "2" = "account" }
retries = 2
fallback = "account"
[nodes.account]
type = "collect"
prompt = "beep"
var = "acct"
min_digits = 6
max_digits = 8
sensitive = true
next = "route"
fallback = "route"
[nodes.route]
type = "branch"
default = "sales"
[[nodes.route.when]]
var = "customer.tier"
op = "eq"
value = "gold"
next = "sales"
[nodes.sales]
type = "queue"
queue = "sales"
skills = ["sales"]
"""
GAPS_PER_SESSION = 6
REPLIES: tuple[tuple[bytes, bytes], ...] = (
    (b"ANSWER", b"200 result=0\n"),
    (b"SET VARIABLE CTI_CALL_ID", b"200 result=1\n"),
    (b"STREAM FILE", b"200 result=0 endpos=11234\n"),
    (b"GET DATA beep 3000", b"200 result=1\n"),
    (b"GET DATA beep 5000", b"200 result=123456\n"),
    (b"SET VARIABLE CTI_NEXT", b"200 result=1\n"),
)
MEDIA = (b"STREAM FILE", b"GET DATA")
SESSION_TIMEOUT = 60.0


# -- the server process ---------------------------------------------------------------------------

class _Timed:
    """The session as the runner sees it, timing the runner's work between commands."""

    def __init__(self, inner: Any, gaps: list[float]) -> None:
        self.inner = inner
        self.env: dict[str, str] = inner.env
        self.gaps = gaps
        self.back = 0.0  # when the last command (or CRM call) returned

    def mark_in(self) -> None:
        if self.back:
            self.gaps.append(time.perf_counter() - self.back)

    def mark_out(self) -> None:
        self.back = time.perf_counter()

    async def answer(self) -> None:
        self.mark_in()
        await self.inner.answer()
        self.mark_out()

    async def set_variable(self, name: str, value: str) -> None:
        self.mark_in()
        await self.inner.set_variable(name, value)
        self.mark_out()

    async def stream_file(self, filename: str, escape_digits: str = "") -> str:
        self.mark_in()
        got: str = await self.inner.stream_file(filename, escape_digits)
        self.mark_out()
        return got

    async def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> str | None:
        self.mark_in()
        got: str | None = await self.inner.get_data(filename, timeout_ms, max_digits)
        self.mark_out()
        return got

    async def hangup(self) -> None:
        self.mark_in()
        await self.inner.hangup()
        self.mark_out()


class _Customer:
    id = 42
    value_tier = "gold"


_CURRENT: contextvars.ContextVar[_Timed | None] = contextvars.ContextVar("ivr_bench_session", default=None)


class _Crm:
    """An in-memory CRM; the session being served (its task's context) marks the lookup as a command."""

    async def find_customer_by_phone(self, raw: str) -> _Customer | None:
        s = _CURRENT.get()
        if s is not None:
            s.mark_in()
            s.mark_out()
        return _Customer()


def _serve(conn: Connection) -> None:
    quiet_logging()
    asyncio.run(_server(conn))


async def _server(conn: Connection) -> None:
    from cti.agi.server import FastAgiServer
    from cti.agi.session import AgiSession
    from cti.bus import Bus
    from ivr.flow import load_flows
    from ivr.runner import IvrRunner

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "bench.toml").write_text(FLOW)
        flows = load_flows(d)
    bus = Bus()
    crm = _Crm()
    runner = IvrRunner(flows, bus, crm)
    gaps: list[float] = []
    done = [0, 0, 0]  # completed (queued), other ends, peak of sessions at once

    async def ivr(s: AgiSession) -> None:
        done[2] = max(done[2], server.active)
        timed = _Timed(s, gaps)
        _CURRENT.set(timed)  # this handler's task's context: the CRM finds its session there
        st = await runner.run(timed, "bench")
        done[0 if st is not None and st.done else 1] += 1

    server = FastAgiServer(host=HOST, port=0, backlog=4096, max_sessions=5000, command_timeout=30.0)
    server.route("ivr/", ivr)
    await server.start()
    conn.send(server.port)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_reader(conn.fileno(), stopped.set)
    await stopped.wait()
    loop.remove_reader(conn.fileno())
    conn.recv()
    conn.send({"gaps": gaps, "completed": done[0], "other": done[1], "active": server.active,
               "peak": done[2], "errors": server.errors, "refused": server.refused, "shed": server.shed})
    await server.stop()


# -- the callers (this process) -------------------------------------------------------------------------

class _Caller(AsteriskAgiPeer):
    def __init__(self, env: bytes, done: asyncio.Future[bool], delay: float) -> None:
        super().__init__(env, done)
        self.delay = delay
        self.step = 0
        self.ok = True

    def command(self, line: bytes) -> None:
        assert self.transport is not None
        if self.step >= len(REPLIES) or not line.startswith(REPLIES[self.step][0]):
            self.ok = False
            self.transport.write(b"200 result=1\n")
            return
        reply = REPLIES[self.step][1]
        self.step += 1
        if line.startswith(MEDIA) and self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._write, reply)
        else:
            self.transport.write(reply)

    def _write(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.ok and self.step == len(REPLIES))


async def _one(port: int, env: bytes, delay: float) -> bool:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()
    try:
        transport, _ = await loop.create_connection(lambda: _Caller(env, done, delay), HOST, port)
    except OSError:
        return False
    try:
        return await asyncio.wait_for(done, SESSION_TIMEOUT)
    except TimeoutError:
        transport.abort()
        return False


async def _load(port: int, sessions: int, waves: int, delay: float) -> tuple[int, int, float]:
    env = agi_environment()
    started = completed = 0
    t0 = time.perf_counter()
    for _ in range(waves):
        started += sessions
        results = await asyncio.gather(*(_one(port, env, delay) for _ in range(sessions)))
        completed += sum(results)
    return started, completed, time.perf_counter() - t0


def _pct(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(report: Report, opts: Options) -> None:
    sessions, waves, delay = (200, 1, 0.005) if opts.quick else (1000, 3, 0.02)
    with Child(_serve) as child:
        port = child.recv(30)
        cpu0 = child.cpu()
        started, completed, wall = asyncio.run(_load(port, sessions, waves, delay))
        cpu = child.cpu() - cpu0
        child.conn.send("stop")
        stats: dict[str, Any] = child.recv(30)
    gaps: list[float] = stats["gaps"]
    report.note(f"ivr: {waves} x {sessions} concurrent sessions, flow play/lookup/menu/collect/branch/queue, "
                f"media replies after {delay * 1e3:.0f} ms; {wall:.1f} s; {len(gaps)} gaps "
                f"({GAPS_PER_SESSION} a session); server: {stats['completed']} queued, {stats['other']} other, "
                f"{stats['errors']} errors, {stats['refused']} refused, {stats['shed']} shed, "
                f"{stats['active']} active at the end, {stats['peak']} at once at the peak")
    report.add("ivr_node_overhead_p50_ms", "cti", _pct(gaps, 0.50) * 1e3, lower_is_better=True)
    report.add("ivr_node_overhead_p99_ms", "cti", _pct(gaps, 0.99) * 1e3, lower_is_better=True)
    report.add("ivr_node_overhead_mean_ms", "cti", (statistics.fmean(gaps) if gaps else 0.0) * 1e3,
               lower_is_better=True)
    report.add("ivr_sessions_started", "cti", float(started))
    report.add("ivr_sessions_completed", "cti", float(completed))
    report.add("ivr_sessions_lost", "cti", float(started - min(completed, stats["completed"])),
               lower_is_better=True)
    report.add("ivr_cpu_ms_per_session", "cti", cpu / max(completed, 1) * 1e3, lower_is_better=True)
