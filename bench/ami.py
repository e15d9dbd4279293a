"""AMI events/s through each client's public event path, on the same event stream.

A fake Asterisk (its own process) speaks the AMI banner, accepts the Login, sends
``FullyBooted`` and then blasts N events: the events of two recorded queue calls,
byte for byte, repeated.  Each client runs in its own process and counts events in
its listener; wall time and process CPU run from the first event to the last.

``cti_typed``, ``panoramisk`` and ``pyst2`` read three fields of every event in their
listener (the event name, ``Channel``, ``Uniqueid``), as a call tracker would; ``cti`` only
counts its raw messages, and the two ``bare`` readers are the ceiling (split, count).
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from bench.common import HOST, Child, Options, Report, profile_text, quiet_logging
from bench.traces import ami_events, ami_mix

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
FULLY_BOOTED = (b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 12\r\nLastReload: 12\r\n"
                b"Status: Fully Booted\r\n\r\n")
IMPLS = ("cti", "cti_typed", "panoramisk", "pyst2", "bare", "bare_readline")


# -- the fake Asterisk ------------------------------------------------------------------

def _response(action: str, action_id: str) -> bytes:
    aid = f"ActionID: {action_id}\r\n" if action_id else ""
    if action.lower() == "login":
        return f"Response: Success\r\n{aid}Message: Authentication accepted\r\n\r\n".encode() + FULLY_BOOTED
    if action.lower() == "logoff":
        return f"Response: Goodbye\r\n{aid}Message: Thanks for all the fish.\r\n\r\n".encode()
    if action.lower() == "ping":
        return f"Response: Success\r\n{aid}Ping: Pong\r\nTimestamp: {time.time():.6f}\r\n\r\n".encode()
    return f"Response: Success\r\n{aid}\r\n".encode()


def _chunks(n_events: int) -> list[bytes]:
    """The stream as a list of writes (whole events only), ``n_events`` in total."""
    cycle = ami_events()
    block = b"".join(cycle)
    whole, rest = divmod(n_events, len(cycle))
    return [block] * whole + ([b"".join(cycle[:rest])] if rest else [])


async def _asterisk(n_events: int, conn: Connection) -> None:
    chunks = _chunks(n_events)
    finished = asyncio.Event()

    async def blast(writer: asyncio.StreamWriter) -> None:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        writer.close()
        finished.set()

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(BANNER)
        blasting: asyncio.Task[None] | None = None
        fields: dict[str, str] = {}
        try:
            while line := await reader.readline():
                text = line.decode(errors="replace").rstrip("\r\n")
                if text:
                    k, _, v = text.partition(":")
                    fields[k.strip().lower()] = v.strip()
                    continue
                action = fields.get("action", "")
                writer.write(_response(action, fields.get("actionid", "")))
                if action.lower() == "login" and blasting is None:
                    blasting = asyncio.create_task(blast(writer))
                fields = {}
        except (ConnectionError, OSError):
            pass
        if blasting is not None:
            await blasting

    server = await asyncio.start_server(session, HOST, 0)
    conn.send(server.sockets[0].getsockname()[1])
    await finished.wait()
    await asyncio.sleep(0.5)


def asterisk_main(n_events: int, conn: Connection) -> None:
    quiet_logging()
    asyncio.run(_asterisk(n_events, conn))


# -- the clients -------------------------------------------------------------------------

class Tally:
    """Counts events; notes wall and CPU time at the first and the last."""

    def __init__(self, total: int, on_done: Callable[[], None]) -> None:
        self.total = total
        self.n = 0
        self.t0 = self.t1 = self.c0 = self.c1 = 0.0
        self._on_done = on_done

    def hit(self) -> None:
        self.n += 1
        if self.n == 1:
            self.t0, self.c0 = time.perf_counter(), time.process_time()
        elif self.n == self.total:
            self.t1, self.c1 = time.perf_counter(), time.process_time()
            self._on_done()

    def result(self) -> dict[str, float]:
        return {"events": self.n, "wall": self.t1 - self.t0, "cpu": self.c1 - self.c0}


async def _cti(port: int, total: int, timeout: float) -> Tally:
    from cti.ami.client import AmiClient
    done = asyncio.Event()
    tally = Tally(total, done.set)
    client = AmiClient(HOST, port, "bench", "secret", ping_interval=60.0, dead_after=120.0)
    client.add_listener(lambda msg: tally.hit())
    await client.start()
    await asyncio.wait_for(done.wait(), timeout)
    await client.stop()
    return tally


async def _cti_typed(port: int, total: int, timeout: float) -> Tally:
    """Every event typed (cti.ami.events) through a subscriber queue, read by a consumer task
    in batches (``get_batch``)."""
    from cti.ami.client import AmiClient
    done = asyncio.Event()
    tally = Tally(total, done.set)
    client = AmiClient(HOST, port, "bench", "secret", ping_interval=60.0, dead_after=120.0)
    q = client.subscribe(maxsize=total + 10)

    async def consume() -> None:
        while True:
            for ev in await q.get_batch():
                _ = (ev.name, getattr(ev, "channel", None), getattr(ev, "uniqueid", None))
                tally.hit()

    task = asyncio.create_task(consume())
    await client.start()
    await asyncio.wait_for(done.wait(), timeout)
    task.cancel()
    await client.stop()
    return tally


async def _panoramisk(port: int, total: int, timeout: float) -> Tally:
    from panoramisk import Manager
    done = asyncio.Event()
    tally = Tally(total, done.set)
    manager = Manager(host=HOST, port=port, username="bench", secret="secret",
                      ping_delay=60, loop=asyncio.get_running_loop())
    def on_event(mgr: Any, msg: Any) -> None:
        _ = (msg.event, msg.get("Channel"), msg.get("Uniqueid"))
        tally.hit()

    manager.register_event("*", on_event)
    await manager.connect()
    await asyncio.wait_for(done.wait(), timeout)
    manager.close()
    return tally


async def _bare_login(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, skip the banner, log in without waiting for the reply (the bare baselines)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    await reader.readline()
    writer.write(b"Action: Login\r\nActionID: 1\r\nUsername: bench\r\nSecret: secret\r\n\r\n")
    return reader, writer


async def _bare_readline(port: int, total: int, timeout: float) -> Tally:
    """StreamReader.readline until a blank line: no dicts, no decoding."""
    done = asyncio.Event()
    tally = Tally(total, done.set)
    reader, writer = await _bare_login(port)

    async def read() -> None:
        is_event = first = True
        while line := await reader.readline():
            if line == b"\r\n":
                if is_event:
                    tally.hit()
                first = True
            elif first:
                is_event, first = line.startswith(b"Event:"), False
            if done.is_set():
                return

    await asyncio.wait_for(read(), timeout)
    writer.close()
    return tally


async def _bare(port: int, total: int, timeout: float) -> Tally:
    """The ceiling: 64 KiB reads split into messages on blank lines, nothing else."""
    done = asyncio.Event()
    tally = Tally(total, done.set)
    reader, writer = await _bare_login(port)

    async def read() -> None:
        rest = b""
        while data := await reader.read(65536):
            messages = (rest + data).split(b"\r\n\r\n")
            rest = messages.pop()
            for m in messages:
                if m.startswith(b"Event:"):
                    tally.hit()
            if done.is_set():
                return

    await asyncio.wait_for(read(), timeout)
    writer.close()
    return tally


def _pyst2(port: int, total: int, timeout: float) -> Tally:
    import asterisk.manager
    done = threading.Event()
    tally = Tally(total, done.set)
    manager = asterisk.manager.Manager()
    def on_event(event: Any, mgr: Any) -> None:
        _ = (event.name, event.headers.get("Channel"), event.headers.get("Uniqueid"))
        tally.hit()

    manager.register_event("*", on_event)
    manager.connect(HOST, port)
    manager.login("bench", "secret")
    if not done.wait(timeout):
        raise TimeoutError(f"pyst2 saw {tally.n} of {total} events in {timeout}s")
    return tally


def _run_client(impl: str, port: int, total: int, timeout: float) -> Tally:
    if impl == "pyst2":
        return _pyst2(port, total, timeout)
    runner = {"cti": _cti, "cti_typed": _cti_typed, "panoramisk": _panoramisk, "bare": _bare,
              "bare_readline": _bare_readline}[impl]
    return asyncio.run(runner(port, total, timeout))


def client_main(impl: str, port: int, total: int, timeout: float, profile: bool, conn: Connection) -> None:
    quiet_logging()
    try:
        if profile:
            prof = cProfile.Profile()
            tally = prof.runcall(_run_client, impl, port, total, timeout)
            conn.send({**tally.result(), "profile": profile_text(prof)})
        else:
            conn.send(_run_client(impl, port, total, timeout).result())
    except BaseException as e:  # noqa: BLE001  a child process reports anything (even SystemExit) rather than hang the parent
        conn.send({"error": f"{type(e).__name__}: {e}"})
    conn.close()
    os._exit(0)  # pyst2 leaves blocked daemon threads behind


# -- orchestration ---------------------------------------------------------------------

def measure(impl: str, n_events: int, timeout: float, profile: bool = False) -> dict[str, Any]:
    with Child(asterisk_main, n_events) as asterisk:
        port = asterisk.recv(30)
        with Child(client_main, impl, port, n_events + 1, timeout, profile) as client:
            result: dict[str, Any] = client.recv(timeout + 30)
    return result


def _parse_mb_per_s(stream: bytes, read_size: int) -> float:
    """The sans-I/O parser alone, fed ``stream`` in reads of ``read_size`` bytes (0: all at once)."""
    from cti.ami.protocol import AmiParser

    parser = AmiParser(expect_banner=False)
    reads = [stream] if read_size <= 0 else [stream[i:i + read_size] for i in range(0, len(stream), read_size)]
    t0 = time.perf_counter()
    for chunk in reads:
        parser.feed(chunk)
    return len(stream) / (time.perf_counter() - t0) / 1e6


def _trickle_seconds(size: int) -> float:
    """One message of ``size`` bytes fed a byte at a time (the scan must stay linear)."""
    from cti.ami.protocol import AmiParser

    data = b"A: b\r\n" * (size // 6) + b"\r\n"
    parser = AmiParser(expect_banner=False, max_headers=size)
    t0 = time.perf_counter()
    for i in range(len(data)):
        parser.feed(data[i:i + 1])
    return time.perf_counter() - t0


def run_parser(report: Report, opts: Options) -> None:
    stream = b"".join(ami_events())
    while len(stream) < (256_000 if opts.quick else 1_000_000):
        stream += stream
    for name, size in (("whole", 0), ("64b", 64), ("1b", 1)):
        report.add("ami_parse_mb_per_s", f"cti_{name}_reads", _parse_mb_per_s(stream, size))
    for kb in (16, 128) if opts.quick else (16, 32, 64, 128):
        report.add(f"ami_trickle_{kb}kb_s", "cti", _trickle_seconds(kb * 1024), lower_is_better=True)


def run(report: Report, opts: Options) -> None:
    run_parser(report, opts)
    mix = ami_mix(ami_events())
    report.note(f"ami stream: {sum(mix.values())} events per cycle from 2 recorded queue calls; "
                + ", ".join(f"{k} {v}" for k, v in mix.most_common(6)) + ", ...")
    n_full = 30_000 if opts.quick else 200_000
    for impl in IMPLS:
        n = n_full if impl != "pyst2" else n_full // 40  # pyst2 does ~1,000 events/s
        rounds = 1 if opts.quick or impl == "pyst2" else 2  # keep the best round
        runs = [measure(impl, n, timeout=60.0 if impl != "pyst2" else 120.0) for _ in range(rounds)]
        ok = [r for r in runs if "error" not in r]
        if not ok:
            report.note(f"ami {impl} failed: {runs[0]['error']}")
            continue
        r = min(ok, key=lambda x: x["wall"])
        intervals = r["events"] - 1
        report.add("ami_events_per_s", impl, intervals / r["wall"])
        report.add("ami_cpu_us_per_event", impl, r["cpu"] / intervals * 1e6, lower_is_better=True)
    if opts.profile:
        r = measure("cti", n_full, timeout=120.0, profile=True)
        report.note("cProfile of the cti client (the profiler slows everything down; read the shares):")
        for line in str(r.get("profile", r.get("error", ""))).splitlines():
            report.note(line)
