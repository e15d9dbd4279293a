"""Shared helpers: the result printer, process CPU, child processes, loop lag.

Every benchmark records ``<metric> <implementation> <value>`` lines through a
:class:`Report`; the ratio section compares ``cti`` (or, where we have no entry, the
first implementation recorded) with every other implementation of the same metric.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import multiprocessing
import multiprocessing.connection
import os
import pstats
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, Self

CTX = multiprocessing.get_context("spawn")
"""Fresh interpreters: no inherited event loop, threads or imported peers."""

HOST = "127.0.0.1"
STALLED = "stalled"

Value = float | str


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool = False
    profile: bool = False


@dataclass(frozen=True, slots=True)
class Goal:
    metric: str
    impl: str
    other: str
    min_ratio: float | None = None      # impl/other must be at least this
    max_value: float | None = None      # impl's own value must stay below this


@dataclass
class Report:
    results: dict[str, dict[str, Value]] = field(default_factory=dict)
    lower_is_better: set[str] = field(default_factory=set)
    out: Callable[[str], None] = print

    def add(self, metric: str, impl: str, value: Value, *, lower_is_better: bool = False) -> None:
        self.results.setdefault(metric, {})[impl] = value
        if lower_is_better:
            self.lower_is_better.add(metric)
        self.out(f"{metric} {impl} {fmt(value)}")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        self.out(f"# {text}")

    def ratio_lines(self) -> list[str]:
        lines: list[str] = []
        for metric, by_impl in self.results.items():
            numeric = {k: v for k, v in by_impl.items() if isinstance(v, float | int)}
            if len(numeric) < 2:
                continue
            base = "cti" if "cti" in numeric else next(iter(numeric))
            for other, v in numeric.items():
                if other == base or not v:
                    continue
                lines.append(f"ratio {metric} {base}/{other} {fmt(numeric[base] / v)}")
        return lines

    def goal_lines(self, goals: list[Goal]) -> list[str]:
        lines: list[str] = []
        for g in goals:
            by_impl = self.results.get(g.metric, {})
            mine = by_impl.get(g.impl)
            if mine is None:
                continue
            if g.max_value is not None:
                ok = isinstance(mine, float | int) and mine < g.max_value
                lines.append(f"goal {g.metric} {g.impl}<{fmt(g.max_value)} {'met' if ok else 'not_met'} ({fmt(mine)})")
                continue
            theirs = by_impl.get(g.other)
            if not isinstance(mine, float | int) or not isinstance(theirs, float | int) or not theirs:
                continue
            r = mine / theirs
            ok = g.min_ratio is None or r >= g.min_ratio
            lines.append(f"goal {g.metric} {g.impl}/{g.other}>={fmt(g.min_ratio or 0)} "
                         f"{'met' if ok else 'not_met'} ({fmt(r)})")
        return lines


def fmt(value: Value) -> str:
    """Whole numbers for big figures, three significant digits for small ones."""
    if isinstance(value, str):
        return value
    if value >= 1000 or (value == int(value) and value >= 100):
        return str(round(value))
    return f"{value:.3g}"


# -- process CPU ----------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User+system CPU of ``pid`` from /proc (plus its reaped children when asked)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        raw = f.read()
    fields = raw[raw.rindex(b")") + 2:].split()
    # fields[0] is field 3 (state); utime..cstime are fields 14..17
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    total = utime + stime + (cutime + cstime if children else 0)
    return total / _TICKS


# -- logging and profiling -------------------------------------------------------------

def quiet_logging() -> None:
    """Peers log at error level on a normal close; keep their noise out of the output."""
    logging.getLogger().addHandler(logging.NullHandler())


def profile_text(prof: cProfile.Profile, top: int = 15) -> str:
    """The ``top`` functions by own time, with their share of the total."""
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[:top]
    lines = [f"{'own%':>6} {'cum%':>6} {'calls':>9}  function"]
    for (file, line, func), (_cc, ncalls, tt, ct, _callers) in rows:
        where = f"{os.path.relpath(file) if file.startswith('/') else file}:{line}"
        lines.append(f"{tt / total * 100:6.1f} {ct / total * 100:6.1f} {ncalls:9d}  {func} ({where})")
    return "\n".join(lines)


# -- child processes --------------------------------------------------------------------

class Child:
    """A spawned process that reports one value (e.g. its port) through a pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        parent, child = CTX.Pipe()
        self.conn: multiprocessing.connection.Connection = parent
        self.proc: BaseProcess = CTX.Process(target=target, args=(*args, child), daemon=True)
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def recv(self, timeout: float) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"child {self.pid} sent nothing within {timeout}s")
        return self.conn.recv()

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(3)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(3)
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def now() -> float:
    return time.perf_counter()


class AsteriskAgiPeer(asyncio.Protocol):
    """The Asterisk end of one FastAGI connection: sends the ``agi_*`` environment, then hands each
    command line to :meth:`command`; a subclass answers it and resolves ``done`` when the line closes."""

    def __init__(self, env: bytes, done: asyncio.Future[bool]) -> None:
        self.env, self.done = env, done
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.env)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while (nl := self.buf.find(b"\n")) >= 0:
            line, self.buf = self.buf[:nl], self.buf[nl + 1:]
            self.command(line)

    def command(self, line: bytes) -> None:
        raise NotImplementedError

    def eof_received(self) -> bool:
        return False  # close our side too
