"""FastAGI sessions/s for the same 5-command IVR at concurrency 50 and 200.

This process plays Asterisk: each of C workers connects, sends the recorded ``agi_*``
environment, answers every command the way Asterisk 22 does, and after ``HANGUP``
sends the ``HANGUP`` notice and half-closes (as Asterisk does on a hung-up channel).
A session counts when the server has closed the connection after all five commands.
The server runs in its own process; its CPU comes from /proc (forked children too).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bench.agi_servers import IMPLS, serve
from bench.common import HOST, AsteriskAgiPeer, Child, Options, Report
from bench.traces import agi_environment

# replies as Asterisk 22 sends them (tests/fixtures/traces/v3-01-answered-recorded.agi.txt)
REPLIES: tuple[tuple[bytes, bytes], ...] = (
    (b"ANSWER", b"200 result=0\n"),
    (b"STREAM FILE", b"200 result=0 endpos=11234\n"),
    (b"GET DATA", b"200 result= (timeout)\n"),
    (b"SET VARIABLE", b"200 result=1\n"),
    (b"HANGUP", b"200 result=1\nHANGUP\n"),
)
COMMANDS_PER_SESSION = len(REPLIES)
SESSION_TIMEOUT = 10.0


class FakeChannel(AsteriskAgiPeer):
    """One call's FastAGI connection, from Asterisk's side."""

    def __init__(self, env: bytes, done: asyncio.Future[bool]) -> None:
        super().__init__(env, done)
        self.commands = 0
        self.hung_up = False

    def command(self, line: bytes) -> None:
        assert self.transport is not None
        if self.hung_up:
            self.transport.write(b"511 Command Not Permitted on a dead channel or intercepted by a "
                                 b"hangup handler\n")
            return
        self.commands += 1
        for verb, reply in REPLIES:
            if line.startswith(verb):
                self.transport.write(reply)
                if verb == b"HANGUP":
                    self.hung_up = True
                    self.transport.write_eof()
                return
        self.transport.write(b"200 result=1\n")  # VERBOSE, NOOP ...

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.hung_up and self.commands == COMMANDS_PER_SESSION)


async def one_session(port: int, env: bytes) -> bool:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bool] = loop.create_future()
    try:
        transport, _ = await loop.create_connection(lambda: FakeChannel(env, done), HOST, port)
    except OSError:
        return False
    try:
        return await asyncio.wait_for(done, SESSION_TIMEOUT)
    except TimeoutError:
        transport.abort()
        return False


@dataclass
class LoadResult:
    sessions: int       # completed inside the window
    failed: int         # anywhere in the run
    window: float
    cpu: float          # server CPU seconds inside the window


async def load(child: Child, port: int, concurrency: int, warmup: float, window: float) -> LoadResult:
    env = agi_environment()
    loop = asyncio.get_running_loop()
    t_start = loop.time() + warmup
    t_end = t_start + window
    completed: list[float] = []
    failed = 0

    async def worker() -> None:
        nonlocal failed
        while loop.time() < t_end:
            if await one_session(port, env):
                completed.append(loop.time())
            else:
                failed += 1

    async def cpu_at(t: float) -> float:
        await asyncio.sleep(t - loop.time())
        return child.cpu()

    cpu0 = asyncio.create_task(cpu_at(t_start))
    cpu1 = asyncio.create_task(cpu_at(t_end))
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    in_window = sum(1 for t in completed if t_start <= t < t_end)
    return LoadResult(in_window, failed, window, await cpu1 - await cpu0)


def measure(impl: str, concurrency: int, warmup: float, window: float,
            profile: bool = False) -> tuple[LoadResult, str]:
    """Load ``impl`` for ``warmup + window`` seconds; with ``profile``, also its cProfile summary."""
    with Child(serve, impl, profile) as child:
        port = child.recv(30)
        result = asyncio.run(load(child, port, concurrency, warmup, window))
        text = ""
        if profile:
            child.conn.send("stop")
            text = child.recv(30)
        return result, text


def run(report: Report, opts: Options) -> None:
    warmup, window = (0.3, 1.0) if opts.quick else (0.5, 3.0)
    rounds = 1 if opts.quick else 2  # loopback on a 2-core VM is noisy: keep the best round
    for concurrency in (50, 200):
        # rounds interleave the implementations, every other round in reverse order, so that
        # a burst or a drift of other work on the machine does not land on one of them only
        runs: dict[str, list[LoadResult]] = {impl: [] for impl in IMPLS}
        for n in range(rounds):
            for impl in IMPLS if n % 2 == 0 else IMPLS[::-1]:
                runs[impl].append(measure(impl, concurrency, warmup, window)[0])
        for impl in IMPLS:
            r = max(runs[impl], key=lambda x: x.sessions)
            if r.failed:
                report.note(f"agi c{concurrency} {impl}: {r.failed} sessions failed")
            if not r.sessions:
                report.add(f"agi_sessions_per_s_c{concurrency}", impl, 0.0)
                continue
            report.add(f"agi_sessions_per_s_c{concurrency}", impl, r.sessions / r.window)
            report.add(f"agi_cpu_ms_per_session_c{concurrency}", impl, r.cpu / r.sessions * 1e3,
                       lower_is_better=True)
    if opts.profile:
        _, text = measure("cti", 50, warmup, window, profile=True)
        report.note("cProfile of the cti FastAGI server at c50 (the profiler slows it down; read the shares):")
        for line in text.splitlines():
            report.note(line)
