"""Event-loop lag of a FastAGI server while 1,000 empty or garbage connections come and go.

The server process runs a ticker beside the server: it sleeps 5 ms at a time and keeps
the worst overshoot and a heartbeat in shared memory, so a loop that freezes is seen
from outside instead of hanging the run.  900 connections connect and close without
sending a byte; 100 send garbage (binary, an endless line, an HTTP request, an
unterminated environment) and close.  Afterwards one real IVR session must still be
served.  A server whose heartbeat stops is reported as ``stalled`` and killed.
"""

from __future__ import annotations

import asyncio
import os
import time
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized

from bench.agi import one_session
from bench.common import CTX, HOST, STALLED, Child, Options, Report, quiet_logging
from bench.traces import agi_environment

TICK = 0.005
N_CONNECTIONS = 1000
N_GARBAGE = 100
CONCURRENCY = 100
STALL_AFTER = 2.0  # a heartbeat older than this means the loop is frozen
IMPLS = ("cti", "panoramisk")

GARBAGE = (
    os.urandom(2048),
    b"x" * 20_000,
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"agi_network: yes\nagi_network_script: ivr/main\nagi_request: agi://127.0.0.1/ivr/main\n",
)


async def _ticker(max_lag: Synchronized[float], beat: Synchronized[float]) -> None:
    while True:
        t = time.monotonic()
        await asyncio.sleep(TICK)
        now = time.monotonic()
        lag = now - t - TICK
        if lag > max_lag.value:
            max_lag.value = lag
        beat.value = now


def server_main(impl: str, max_lag: Synchronized[float], beat: Synchronized[float], conn: Connection) -> None:
    """The server under test with the ticker on the same event loop."""
    quiet_logging()
    asyncio.run(_server_with_ticker(impl, max_lag, beat, conn))


async def _server_with_ticker(impl: str, max_lag: Synchronized[float], beat: Synchronized[float],
                              conn: Connection) -> None:
    from bench import agi_servers
    runner = {"cti": agi_servers._cti, "panoramisk": agi_servers._panoramisk}[impl]
    ticker = asyncio.create_task(_ticker(max_lag, beat))
    await runner(conn)
    ticker.cancel()


async def _connection(port: int, payload: bytes | None) -> None:
    try:
        _, writer = await asyncio.open_connection(HOST, port)
    except OSError:
        return
    try:
        if payload:
            writer.write(payload)
            await writer.drain()
        writer.close()
        await writer.wait_closed()
    except OSError:
        pass


async def _storm(port: int) -> None:
    sem = asyncio.Semaphore(CONCURRENCY)
    every = N_CONNECTIONS // N_GARBAGE

    async def one(i: int) -> None:
        async with sem:
            garbage = GARBAGE[(i // every) % len(GARBAGE)] if i % every == 0 else None
            await _connection(port, garbage)

    await asyncio.gather(*(one(i) for i in range(N_CONNECTIONS)))


def measure(impl: str) -> tuple[float | str, bool]:
    """(max loop lag in ms or ``stalled``, whether a real session was served afterwards)."""
    max_lag = CTX.Value("d", 0.0, lock=False)
    beat = CTX.Value("d", time.monotonic(), lock=False)
    with Child(server_main, impl, max_lag, beat) as child:
        port = child.recv(30)
        time.sleep(0.3)  # let the ticker settle
        max_lag.value = 0.0
        asyncio.run(asyncio.wait_for(_storm(port), 30))
        time.sleep(STALL_AFTER)
        if time.monotonic() - beat.value > STALL_AFTER:
            return STALLED, False
        served = asyncio.run(one_session(port, agi_environment()))
        return max_lag.value * 1e3, served


def run(report: Report, opts: Options) -> None:
    for impl in IMPLS:
        lag, served = measure(impl)
        report.add("agi_empty_conn_loop_lag_ms_max", impl, lag, lower_is_better=True)
        if lag != STALLED:
            report.add("agi_session_after_empty_conns_ok", impl, float(served))
