"""``cti ivr simulate FLOW --ani NUMBER --digits "1 2 #"``: run one flow in text mode, without a phone.

The call goes over real FastAGI: a :class:`FastAgiServer` on ``127.0.0.1:0`` serves the flow with the
real :class:`IvrRunner`, and the built-in Asterisk simulator places one call whose caller presses the
digits one by one, ``--gap`` simulated seconds apart (the first ``--gap`` s after answer; a digit
pressed while a prompt without barge-in plays is lost, as on a real line).  The simulator's dialplan
always asks for ``ivr/main``: the server runs FLOW whatever the script says.

One line per node (id, type, what the caller hears, what the caller pressed, the lookup result, the
exit taken), then the outcome: queued to Q (skills, priority), hung up, or the fallback queue after a
runtime failure.  Sensitive ``collect`` values are shown as ``***`` (the runner masks them).

* ``--at``: the clock the ``hours`` nodes see (then running on from there).  A time without an offset is
  read in the timezone of the flow's first ``hours`` node (the local zone when it has none).
* CRM lookup: ``--db`` (URL or SQLite file) or the configured ``database.url``, opened without
  migrating and only read.  When the store cannot be opened (a missing SQLite file is never created),
  one line on stderr says so and the call runs as an unknown caller; ``--no-crm`` does that on purpose.

Exit 0 when the flow ran to an end (a queue, a hangup), 2 when the flow fails validation (the
``cti ivr check`` lines on stdout) or FLOW is not found, 1 on a runtime failure (the runner sent the
caller to its fallback queue, or the call did not end within ``--timeout``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy.engine import make_url

from callcenter.cli_customers import db_url
from callcenter.cli_ivr import check_files
from callcenter.settings import Settings
from callcenter.startup import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from crm_core.store import Store
from cti import dialplan
from cti.agi.server import FastAgiServer
from cti.agi.session import AgiSession
from cti.bus import Bus
from cti.domain import CallQueued, IvrStep
from ivr.engine import Enqueue, IvrState, command_for
from ivr.errors import FlowError, FlowErrors
from ivr.flow import Flow, load_flow
from ivr.nodes import (
    BranchNode,
    CollectNode,
    GotoNode,
    HangupNode,
    HoursNode,
    LookupNode,
    MenuNode,
    Node,
    QueueNode,
    TransferNode,
)
from ivr.runner import CustomerLike, CustomerLookup, IvrRunner
from simulator import AsteriskSim, SimConfig
from simulator.actors import Caller

__all__ = ["SimResult", "add_simulate_command", "cmd_simulate", "parse_at", "simulate_call"]

Loader = Callable[[str | None], Settings]
TIME_FACTOR = 0.05  # simulated seconds run 20 times faster than real ones


# -- what the call did --------------------------------------------------------------------------


@dataclass
class _Group:
    """What happened at one node: the IvrStep that closed it and the actions before it."""

    node: str
    digits: str
    at: float
    heard: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class SimResult:
    groups: list[_Group]
    state: IvrState | None = None
    queued: CallQueued | None = None
    failure: str = ""  # the runner's logged error (it then sent the caller to the fallback queue)
    timed_out: bool = False


class _Recorder:
    def __init__(self) -> None:
        self.pending = _Group("", "", 0.0)
        self.groups: list[_Group] = []
        self.queued: CallQueued | None = None

    def on_step(self, ev: IvrStep) -> None:
        g = self.pending
        g.node, g.digits, g.at = ev.node, ev.digits, ev.at
        self.groups.append(g)
        self.pending = _Group("", "", 0.0)

    def on_queued(self, ev: CallQueued) -> None:
        self.queued = ev


class _TracingSession:
    """The runner's session, noting what the caller hears; digits come from the IvrStep (masked)."""

    def __init__(self, inner: AgiSession, rec: _Recorder) -> None:
        self._inner = inner
        self._rec = rec
        self.env = inner.env

    async def answer(self) -> None:
        await self._inner.answer()

    async def set_variable(self, name: str, value: str) -> None:
        await self._inner.set_variable(name, value)

    async def stream_file(self, filename: str, escape_digits: str = "") -> str:
        self._rec.pending.heard.append(filename)
        return await self._inner.stream_file(filename, escape_digits)

    async def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> str | None:
        self._rec.pending.heard.append(filename)
        return await self._inner.get_data(filename, timeout_ms, max_digits)

    async def say_digits(self, digits: str, escape_digits: str = "") -> str:
        self._rec.pending.heard.append(f"<{len(digits)} digits said>")
        return await self._inner.say_digits(digits, escape_digits)

    async def say_number(self, number: int, escape_digits: str = "") -> str:
        self._rec.pending.heard.append("<a number said>")
        return await self._inner.say_number(number, escape_digits)

    async def hangup(self) -> None:
        await self._inner.hangup()


def _describe(c: CustomerLike) -> str:
    extra = [f"{k} {v}" for k in ("name", "account_no", "account_manager", "churn_risk")
             if (v := getattr(c, k, None)) not in (None, "")]
    return f"found customer #{c.id}, tier {c.value_tier or '-'}" + (f" ({', '.join(extra)})" if extra else "")


class _TracingLookup:
    def __init__(self, inner: CustomerLookup | None, rec: _Recorder) -> None:
        self._inner = inner
        self._rec = rec

    async def _find(self, how: str, raw: str) -> CustomerLike | None:
        fn = getattr(self._inner, how, None) if self._inner is not None else None
        if fn is None:
            self._rec.pending.notes.append("lookup: no CRM store: unknown caller")
            return None
        try:
            c: CustomerLike | None = await fn(raw)
        except Exception as e:
            self._rec.pending.notes.append(f"lookup failed ({e!r}): unknown caller")
            raise
        self._rec.pending.notes.append("lookup: " + (_describe(c) if c else "no customer"))
        return c

    async def find_customer_by_phone(self, raw: str) -> CustomerLike | None:
        return await self._find("find_customer_by_phone", raw)

    async def find_customer_by_account(self, raw: str) -> CustomerLike | None:
        return await self._find("find_customer_by_account", raw)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.errors.append(f"{type(exc).__name__}: {exc}" if exc else record.getMessage())


async def simulate_call(flows: dict[str, Flow], flow: str, ani: str, digits: Sequence[str], *,
                        lookup: CustomerLookup | None, clock: Callable[[], float] = time.time,
                        gap_s: float = 2.0, timeout_s: float = 60.0, time_factor: float = TIME_FACTOR) -> SimResult:
    """One call into ``flow`` over FastAGI from the simulator; what it did."""
    rec = _Recorder()
    bus = Bus()
    bus.on(IvrStep, rec.on_step)
    bus.on(CallQueued, rec.on_queued)
    runner = IvrRunner(flows, bus, _TracingLookup(lookup, rec), clock=clock)
    done: asyncio.Future[IvrState | None] = asyncio.get_running_loop().create_future()

    async def run_ivr(session: AgiSession) -> None:
        try:
            st = await runner.run(_TracingSession(session, rec), flow)
        except BaseException as e:
            if not done.done():
                done.set_exception(e)
            raise
        if not done.done():
            done.set_result(st)

    async def hold(session: AgiSession) -> None:  # after the IVR: nothing to do, the run is over
        return None

    capture = _Capture()
    rlog = logging.getLogger("ivr.runner")
    rlog.addHandler(capture)
    propagate, rlog.propagate = rlog.propagate, False
    result = SimResult(rec.groups)
    try:
        async with FastAgiServer(host="127.0.0.1", port=0, close_wait=0.2) as srv:
            srv.route(dialplan.SCRIPT_IVR_PREFIX, run_ivr)
            srv.route(dialplan.SCRIPT_HOLD, hold)
            async with AsteriskSim(SimConfig(agi_port=srv.port, time_factor=time_factor)) as sim:
                plan = tuple((gap_s, d) for d in digits)
                await sim.place_call(Caller(ani, "Simulated caller", digits_plan=plan))
                try:
                    result.state = await asyncio.wait_for(done, timeout_s)
                except TimeoutError:
                    result.timed_out = True
    finally:
        rlog.removeHandler(capture)
        rlog.propagate = propagate
    result.queued = rec.queued
    result.failure = "; ".join(capture.errors)
    return result


# -- printing ----------------------------------------------------------------------------------


def _kind(node: Node) -> str:
    return type(node).__name__.removesuffix("Node").lower()


def _find_node(flows: dict[str, Flow], current: str, name: str) -> tuple[str, Node | None]:
    if name in flows[current].nodes:
        return current, flows[current].nodes[name]
    for fname, f in flows.items():
        if name in f.nodes:
            return fname, f.nodes[name]
    return current, None


def _hours_label(node: HoursNode, epoch: float) -> str:
    local = datetime.fromtimestamp(epoch, ZoneInfo(node.timezone))
    if local.date() in node.holidays:
        return "holiday"
    minute = local.hour * 60 + local.minute
    return "open" if any(a <= minute < b for a, b in node.week.get(local.weekday(), ())) else "closed"


def _exit_label(node: Node, nxt: str, at: float | None) -> str:
    if isinstance(node, HoursNode) and at is not None:
        return f" ({_hours_label(node, at)})"
    labels = {HoursNode: ("holiday", "open", "closed"), LookupNode: ("several", "not_found", "found")}
    hits = [k for k in labels.get(type(node), ()) if getattr(node, k, None) == nxt]
    if len(hits) == 1:
        return f" ({hits[0].replace('_', ' ')})"
    if isinstance(node, BranchNode) and node.default == nxt:
        return " (default)"
    return ""


def _enqueue_text(e: Enqueue) -> str:
    levels = ", ".join(f"{k}>={v}" for k, v in e.min_levels)
    skills = ", ".join(e.skills) or "-"
    pref = f", preferred agent {e.preferred_agent}" if e.preferred_agent else ""
    return f"queued to {e.queue} (skills {skills}{f' [{levels}]' if levels else ''}, priority {e.priority}{pref})"


def print_result(flows: dict[str, Flow], flow: str, r: SimResult, out: TextIO) -> int:
    """The steps and the outcome on ``out``; -> the exit code."""
    path: tuple[str, ...] = r.state.path if r.state else r.queued.ivr_path if r.queued else ()
    if not path:
        path = tuple(g.node for g in r.groups if g.node != "hangup")
    groups = list(r.groups)
    current = flow
    last: Node | None = None
    for i, name in enumerate(path):
        current, node = _find_node(flows, current, name)
        last = node
        mine: list[_Group] = []
        while groups and groups[0].node == name:
            mine.append(groups.pop(0))
            if i + 1 < len(path) and path[i + 1] == name:
                break
        kind = _kind(node) if node else "?"
        parts = [f"{i + 1:>3}. {name} [{kind}]"]
        heard = [h for g in mine for h in g.heard]
        if heard:
            parts.append("hears " + ", ".join(heard))
        pressed = [g.digits for g in mine if g.digits]
        if isinstance(node, (MenuNode, CollectNode)) or pressed:
            parts.append("pressed " + (" / ".join(pressed) if pressed else "nothing (timeout)"))
        if isinstance(node, CollectNode) and pressed and (i + 1 == len(path) or path[i + 1] != name):
            parts.append(f"{node.var} = {pressed[-1]}")
        parts += [n for g in mine for n in g.notes]
        if isinstance(node, HoursNode) and mine:
            local = datetime.fromtimestamp(mine[0].at, ZoneInfo(node.timezone))
            parts.append(f"clock {local:%a %Y-%m-%d %H:%M} {node.timezone}")
        if isinstance(node, (GotoNode, TransferNode)) and getattr(node, "flow", None):
            parts.append(f"transferred to flow {node.flow}")
            current = str(node.flow)
        if i + 1 < len(path) and node is not None:
            parts.append(f"-> {path[i + 1]}{_exit_label(node, path[i + 1], mine[0].at if mine else None)}")
        if not mine and node is not None and command_for(node, r.state or IvrState(name)) is not None \
                and i + 1 == len(path) and r.failure:
            parts.append("(the runner failed here)")
        print("  ".join(parts), file=out)
    if r.state is not None:
        vals = {k: v for k, v in r.state.masked().items() if k != "ani"}
        if vals:
            print("collected: " + ", ".join(f"{k}={v}" for k, v in vals.items()), file=out)
    if r.timed_out:
        print("outcome: runtime failure: the call did not end in time (--timeout)", file=out)
        return EXIT_FAILURE
    if r.state is not None and isinstance(last, QueueNode):
        print("outcome: " + _enqueue_text(command_for(last, r.state)), file=out)  # type: ignore[arg-type]
        return EXIT_OK
    if r.state is not None and isinstance(last, HangupNode):
        print(f"outcome: hung up by the flow at {path[-1]}", file=out)
        return EXIT_OK
    if r.queued is not None:
        q = r.queued
        why = r.failure or "runner failure"
        print(f"outcome: fallback: queued to {q.queue} (skills {', '.join(q.skills)}, priority {q.priority}) "
              f"after a runtime failure: {why}", file=out)
        return EXIT_FAILURE
    if r.failure:
        print(f"outcome: runtime failure: {r.failure}", file=out)
        return EXIT_FAILURE
    print(f"outcome: the caller hung up{f' at {path[-1]}' if path else ''}", file=out)
    return EXIT_OK


# -- the command ---------------------------------------------------------------------------------


def parse_at(text: str, tz: tzinfo | None) -> float:
    """``2026-12-24T20:00`` (ISO 8601; without an offset: in ``tz``, else the local zone) -> epoch s."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz) if tz is not None else dt.astimezone()
    return dt.timestamp()


def _flow_file(args: argparse.Namespace, settings: Settings | None) -> Path:
    p = Path(args.flow)
    if p.suffix == ".toml" or p.is_file() or settings is None:
        return p
    return Path(settings.ivr.flows_dir) / f"{args.flow}.toml"


def _load_flows(target: Path) -> dict[str, Flow]:
    """The target flow and the good flows beside it (for goto/transfer); broken siblings are skipped."""
    flows = {target.stem: load_flow(target)}
    for sib in sorted(target.parent.glob("*.toml")):
        if sib.stem not in flows:
            try:
                flows[sib.stem] = load_flow(sib)
            except FlowError:
                continue
    return flows


def _missing_sqlite(url: str) -> str | None:
    """The SQLite file of ``url`` when it does not exist (a lookup must never create it)."""
    u = make_url(url)
    db = u.database
    return db if u.get_backend_name() == "sqlite" and db and db != ":memory:" and not Path(db).exists() else None


async def _open_store(url: str, err: TextIO) -> Store | None:
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        missing = _missing_sqlite(url)
        if missing:
            raise FileNotFoundError(f"no such file {missing}")
        return await Store.open(url, create=False)
    except Exception as e:  # noqa: BLE001  any cause: said in one line, the call runs on for an unknown caller
        print(f"CRM store {shown} not reachable ({type(e).__name__}: {e}): running as an unknown caller",
              file=err)
        return None


def cmd_simulate(args: argparse.Namespace, load: Loader, out: TextIO | None = None,
                 err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    need_settings = not (args.flow.endswith(".toml") or Path(args.flow).is_file()) or args.sounds_dir is None \
        or (not args.db and not args.no_crm)
    settings = load(getattr(args, "config", None)) if need_settings else None
    target = _flow_file(args, settings)
    if not target.is_file():
        print(FlowError(str(target), "", "no such IVR flow file").line(), file=out)
        return EXIT_USAGE
    sounds = args.sounds_dir if args.sounds_dir is not None else list(settings.ivr.sounds_dirs) if settings else []
    errors = check_files([target], sounds)
    if errors:
        for e in errors:
            print(e.line(), file=out)
        print(f"1 file(s) checked, {len(errors)} error(s)", file=err)
        return EXIT_USAGE
    try:
        flows = _load_flows(target)
    except FlowErrors as e:
        for fe in e.errors:
            print(fe.line(), file=out)
        return EXIT_USAGE
    flow = target.stem
    hours = next((n for n in flows[flow].nodes.values() if isinstance(n, HoursNode)), None)
    clock: Callable[[], float] = time.time
    at_text = "now"
    if args.at:
        try:
            epoch = parse_at(args.at, ZoneInfo(hours.timezone) if hours else None)
        except ValueError as e:
            print(f"--at {args.at!r}: {e} (want e.g. 2026-12-24T20:00)", file=err)
            return EXIT_USAGE
        t0 = time.monotonic()
        clock = lambda: epoch + (time.monotonic() - t0) / TIME_FACTOR  # noqa: E731  the call's simulated time
        at_text = datetime.fromtimestamp(epoch, ZoneInfo(hours.timezone) if hours else None).isoformat()
    digits = [d for tok in args.digits.split() for d in tok]
    bad = [d for d in digits if d not in "0123456789*#"]
    if bad:
        print(f"--digits: not DTMF keys: {''.join(bad)!r} (want 0-9, * and #)", file=err)
        return EXIT_USAGE

    async def main() -> int:
        store = None
        if not args.no_crm:
            url = db_url(args, load) if args.db else settings.database.url if settings else ""
            store = await _open_store(url, err) if url else None
        try:
            print(f"ivr simulate {flow} ({target}): caller {args.ani}, digits {' '.join(digits) or '-'} "
                  f"every {args.gap:g} s, clock {at_text}", file=out)
            r = await simulate_call(flows, flow, args.ani, digits, lookup=store, clock=clock,
                                    gap_s=args.gap, timeout_s=args.timeout)
            return print_result(flows, flow, r, out)
        finally:
            if store is not None:
                await store.close()

    return asyncio.run(main())


def _positive(text: str) -> float:
    v = float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return v


def add_simulate_command(ivr_sub: Any, load: Loader) -> argparse.ArgumentParser:
    """Add ``simulate`` to the subparsers of ``cti ivr``."""
    p: argparse.ArgumentParser = ivr_sub.add_parser(
        "simulate", help="run a flow in text mode on the built-in simulator (one call, no phone needed)",
        description="Place one simulated call into a flow over FastAGI and print each step and the outcome. "
                    "Exit 0 when the flow ran to an end, 2 when it fails validation, 1 on a runtime failure.")
    p.add_argument("flow", metavar="FLOW",
                   help="a flow name in ivr.flows_dir (e.g. main) or the path of a flow file (*.toml)")
    p.add_argument("--ani", required=True, metavar="NUMBER",
                   help="the caller's number (caller ID) as Asterisk would give it, e.g. +15555551005")
    p.add_argument("--digits", default="", metavar="KEYS",
                   help='the DTMF keys the caller presses, in order, spaces optional: "1 2 #" '
                        "(0-9, * and #; default: none)")
    p.add_argument("--gap", type=_positive, default=2.0, metavar="SECONDS",
                   help="simulated seconds between two key presses, the first one counted from answer "
                        "(default %(default)s)")
    p.add_argument("--at", default=None, metavar="YYYY-MM-DDTHH:MM",
                   help="the clock the hours nodes see, ISO 8601 (e.g. 2026-12-24T20:00; without an offset in "
                        "the timezone of the flow's first hours node; default: now)")
    p.add_argument("--db", default=None, metavar="URL|PATH",
                   help="CRM database URL or SQLite file for the lookup, only read (default: database.url)")
    p.add_argument("--no-crm", action="store_true", help="no CRM lookup: the caller is unknown")
    p.add_argument("--sounds-dir", action="append", metavar="DIR", default=None,
                   help="look for prompts here when validating (repeatable; default: ivr.sounds_dirs)")
    p.add_argument("--timeout", type=_positive, default=60.0, metavar="SECONDS",
                   help="real seconds to wait for the call to end before calling it a failure (default %(default)s)")
    p.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                   help="the TOML configuration file (default: config/cti.toml)")
    p.set_defaults(fn=lambda a: cmd_simulate(a, load))
    return p
