"""The ``cti`` command: ``serve``, ``demo``, ``simulate``, ``db``, ``customers``.

Every command takes ``--config PATH``; environment variables override the file.

A command that cannot start prints one line on stderr, ``cti <command>: <what failed>
(<why>); <the fix>``, and no traceback (``callcenter.startup`` builds these lines); the log
of a start-up that failed is dropped (kept, before that line, when ``log.level`` is DEBUG).
``serve`` and ``demo`` print their banner only once everything listens and, for ``serve``, each
AMI link has answered or ``--ami-timeout`` has passed. ``serve`` keeps serving while an Asterisk AMI
is unreachable or refuses the login: it retries with backoff, logs each change of the link once, and
``/api/health`` and the pages show the link.

Exit status:

======  =========================================================================================
0       done; ``serve`` and ``demo`` also after SIGINT (Ctrl-C) or SIGTERM once running
1       the environment failed: a port already in use, the database unreachable or not openable,
        its schema outdated (``cti db upgrade``);
        or a command found what it reports: a simulation inconsistent, ``db status`` outdated,
        ``customers show`` no such customer, ``customers erase`` without ``--yes``
2       the command line or the configuration as written: a bad flag or value, a config file
        missing, unreadable or invalid, an IVR flow invalid, an unusable database URL
130     interrupted (Ctrl-C) before ``serve`` or ``demo`` was running, or during another command
======  =========================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

from callcenter.settings import Settings, load_settings
from callcenter.simulate import run_simulation
from callcenter.startup import (
    DB_VIA_FLAG,
    DB_VIA_SETTINGS,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    START_ERRORS,
    ListenError,
    database_errors,
    error_line,
    hold_log,
    one_line,
    open_store,
    release_log,
)

__all__ = ["build_parser", "main", "run_simulation"]

log = logging.getLogger("cti")

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "cti.toml"


class JsonFormatter(logging.Formatter):
    _skip = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        d: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                             "logger": record.name, "msg": record.getMessage()}
        d.update({k: v for k, v in vars(record).items() if k not in self._skip})
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, default=str)


def setup_logging(settings: Settings, quiet: bool = False) -> None:
    """Log to stderr, held until the command has started (:func:`callcenter.startup.release_log`)."""
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JsonFormatter() if settings.log.json_ else logging.Formatter("%(levelname)s %(name)s %(message)s"))
    hold_log(h)
    logging.getLogger().setLevel("WARNING" if quiet else settings.log.level)


def _load(path: str | None) -> Settings:
    p = Path(path) if path else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    return load_settings(p)


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM (Ctrl-C), for a clean shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _unless_stopped(aw: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``aw`` unless ``stop`` is set first, which cancels it: True when ``aw`` completed
    (its exception, if any, is raised)."""
    work = asyncio.ensure_future(aw)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if work.done():
        work.result()
        return True
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    return False


# -- commands -------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    setup_logging(settings, quiet=True)
    with tempfile.TemporaryDirectory(prefix="cti-sim-") as tmp:
        # a measured run starts from an empty store unless --db names one
        db = args.db or str(Path(tmp) / "sim.db")
        res = asyncio.run(run_simulation(
            settings, calls=args.calls, rate=args.rate, agents=args.agents, db=db, ami_drops=args.ami_drops,
            servers=args.servers, background=args.background_calls, on_ready=lambda _port: release_log(),
            db_source=DB_VIA_FLAG if args.db else "the temporary directory (TMPDIR)"))
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return EXIT_OK if res["consistent"] and res["answered"] + res["abandoned"] == res["calls"] else EXIT_FAILURE


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    setup_logging(settings, quiet=False)

    ready = asyncio.Event()

    def announce(port: int) -> None:
        release_log()
        print("cti demo running on the built-in Asterisk simulator (Ctrl-C to stop)", flush=True)
        print(f"  agent desktop: http://127.0.0.1:{port}/agent", flush=True)
        print(f"  wallboard:     http://127.0.0.1:{port}/wallboard", flush=True)
        print(f"  {args.agents} agent bots take calls; log in yourself by adding an agent with a"
              " password in config/cti.toml", flush=True)
        ready.set()

    async def wait_ready(run: asyncio.Task[dict[str, Any]]) -> None:
        waiter = asyncio.create_task(ready.wait())
        try:
            await asyncio.wait({run, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if run.done():
            run.result()  # it could not start: raise why

    async def main() -> int:
        stop = _stop_on_signals()
        demo_settings = settings.model_copy(update={"sim": settings.sim.model_copy(
            update={"time_factor": max(settings.sim.time_factor, 0.2)})})
        run = asyncio.create_task(run_simulation(
            demo_settings, calls=None, rate=args.rate, agents=args.agents, db=args.db, until_stopped=stop,
            http_port=args.port or settings.http.port, on_ready=announce))
        try:
            if not await _unless_stopped(wait_ready(run), stop):
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
                return EXIT_INTERRUPTED
        except ListenError as e:
            raise e.chosen_by("--port PORT") if e.setting == "http" else e from None
        print(json.dumps(await run), flush=True)
        return EXIT_OK

    return asyncio.run(main())


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    setup_logging(settings)
    from callcenter.app import CtiApp

    async def start(app: CtiApp) -> None:
        await app.start()
        await app.connect_ami(timeout=args.ami_timeout)

    async def main() -> int:
        stop = _stop_on_signals()
        app = CtiApp(settings, migrate=False)  # a production schema changes only by `cti db upgrade`
        try:
            if not await _unless_stopped(start(app), stop):
                return EXIT_INTERRUPTED
            release_log()
            from callcenter.ivr_reload import install_reload_signal
            install_reload_signal(app)  # SIGHUP: reload the IVR flows (as `cti ivr reload` does)
            print(f"cti serving: agent desktop {settings.http.public_url}/agent", flush=True)
            await stop.wait()
        finally:
            await app.stop()
        return EXIT_OK

    return asyncio.run(main())


def cmd_db(args: argparse.Namespace) -> int:
    """``cti db upgrade`` builds or upgrades the schema; ``cti db status`` tells where it is."""
    from callcenter.cli_customers import db_url
    from crm_core import migrate
    from crm_core.db import ensure_pg_schema, make_engine

    url = db_url(args, _load)
    if args.action == "check":
        return check_call_log(url, DB_VIA_FLAG if args.db else DB_VIA_SETTINGS)

    async def main() -> int:
        engine = make_engine(url)
        try:
            if args.action == "upgrade":
                before = await migrate.schema_state(engine)
                await ensure_pg_schema(engine, None)
                state = await migrate.upgrade(engine)
                print(f"schema {before.current or 'empty'} -> {state.current} (newest {state.head})")
                return EXIT_OK
            state = await migrate.schema_state(engine)
            print(f"schema {state.current or 'empty'}, newest {state.head}: "
                  + ("up to date" if state.up_to_date else "run `cti db upgrade`"))
            return EXIT_OK if state.up_to_date else EXIT_FAILURE
        finally:
            await engine.dispose()

    with database_errors(url, DB_VIA_FLAG if args.db else DB_VIA_SETTINGS):
        return asyncio.run(main())


def check_call_log(url: str, via: str) -> int:
    """``cti db check``: every call-log row against :func:`crm_core.call_invariant.call_row_problems`.
    One line per broken row on stdout, progress on stderr every 100,000 rows, a summary last."""
    from crm_core.call_invariant import call_row_problems

    async def main() -> int:
        rows = bad = 0
        async with open_store(url, create=False, via=via) as store:
            async for page in store.iter_calls(batch=2000):
                for row in page:
                    problems = call_row_problems(row)
                    if problems:
                        bad += 1
                        print(f"call {row.call_id}: " + "; ".join(problems))
                rows += len(page)
                if rows % 100_000 < len(page):
                    print(f"checked {rows} call logs ...", file=sys.stderr, flush=True)
        print(f"checked {rows} call logs: {bad} break the invariant" + ("" if bad else " (all valid)"))
        return EXIT_FAILURE if bad else EXIT_OK

    return asyncio.run(main())


# -- the parser -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """A usage error is one line too: what is wrong and where the help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {one_line(message)}; see `{self.prog} --help`\n")


def _number(kind: Callable[[str], float], low: float, strict: bool) -> Callable[[str], Any]:
    """An argparse type: ``kind`` of the text, > ``low`` (``strict``) or >= ``low``."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low:g}, got {text}")
        return value
    return parse


POSITIVE_INT, POSITIVE_FLOAT, COUNT = _number(int, 0, True), _number(float, 0, True), _number(int, 0, False)
NON_NEGATIVE_FLOAT = _number(float, 0, False)


def _port(text: str) -> int:
    port = int(_number(int, 1, False)(text))
    if port > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), got {text}")
    return port


CONFIG_HELP = "the TOML configuration file (default: config/cti.toml)"


def _command_parser(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")
    return parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="cti", description="CTI call-center backend on Asterisk")
    p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND", help="what to run")
    s = _command_parser(sub, "serve", "run against a real Asterisk")
    s.add_argument("--ami-timeout", type=POSITIVE_FLOAT, default=10.0, metavar="SECONDS",
                   help="the longest serve waits at start-up for each Asterisk AMI's first answer (logged in or "
                        "refused) before it serves without it and keeps retrying, in seconds (default %(default)s)")
    s.set_defaults(fn=cmd_serve)
    d = _command_parser(sub, "demo", "run everything on the built-in simulator until Ctrl-C")
    d.add_argument("--rate", type=POSITIVE_FLOAT, default=0.5, metavar="CALLS/S",
                   help="new calls per second, wall clock (default %(default)s)")
    d.add_argument("--agents", type=POSITIVE_INT, default=6, metavar="N",
                   help="agent bots taking calls (default %(default)s)")
    d.add_argument("--db", default=None, metavar="FILE", help="SQLite file of the CRM store (default: database.url)")
    d.add_argument("--port", type=_port, default=None,
                   help="HTTP port of the agent desktop and wallboard (default: http.port)")
    d.set_defaults(fn=cmd_demo)
    m = _command_parser(sub, "simulate", "a finite measured run on the simulator")
    m.add_argument("--calls", type=POSITIVE_INT, default=50, metavar="N", help="calls to place (default %(default)s)")
    m.add_argument("--rate", type=POSITIVE_FLOAT, default=10.0, metavar="CALLS/S",
                   help="new calls per second, wall clock (default %(default)s)")
    m.add_argument("--agents", type=POSITIVE_INT, default=10, metavar="N",
                   help="agent bots taking calls (default %(default)s)")
    m.add_argument("--db", default=None, metavar="FILE",
                   help="SQLite file of the CRM store (default: a new one in a temporary directory)")
    m.add_argument("--ami-drops", type=COUNT, default=0, metavar="N",
                   help="times the simulator drops the AMI link during the run, evenly spaced (default %(default)s)")
    m.add_argument("--background-calls", type=NON_NEGATIVE_FLOAT, default=0.0, metavar="CALLS/S",
                   help="the rest of the PBX's traffic beside ours, in calls per second: internal extension calls, "
                        "calls through another queue, other clients' Redirects of our waiting callers "
                        "(none may write a call log; default %(default)s)")
    m.add_argument("--servers", type=int, default=1, choices=range(1, 9), metavar="N",
                   help="simulated Asterisk servers side by side (1-8; calls namespaced by server)")
    m.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    m.set_defaults(fn=cmd_simulate)
    db = _command_parser(sub, "db", "the CRM schema: upgrade (build or migrate) or status")
    db.add_argument("action", choices=("upgrade", "status", "check"),
                    help="upgrade: build or migrate the schema to the newest revision; "
                         "status: tell its revision (exit 1 when outdated); "
                         "check: apply the call-log invariant to every row (exit 1 on any broken row)")
    db.add_argument("--db", default=None, metavar="URL",
                    help="database URL or SQLite file (default: database.url)")
    db.set_defaults(fn=cmd_db)
    from callcenter.cli_customers import add_customer_commands
    add_customer_commands(sub, _load)  # cti customers import|export|show|erase
    from callcenter.cli_ivr import add_ivr_commands
    from callcenter.ivr_funnel import add_funnel_command
    from callcenter.ivr_reload import add_reload_command
    from callcenter.ivr_simulate import add_simulate_command
    add_ivr_commands(sub, _load, (add_simulate_command, add_reload_command, add_funnel_command))
    # cti ivr check|simulate|reload|funnel
    for sp in (s, d, m, db):
        sp.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=CONFIG_HELP)
    return p


def _command(args: argparse.Namespace) -> str:
    sub = getattr(args, "customers_cmd", None)
    return " ".join(["cti", args.cmd, *([sub] if sub else [])])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        release_log(keep=False)
        return EXIT_INTERRUPTED
    except START_ERRORS as e:
        code, line = error_line(e)
        release_log(keep=logging.getLogger().getEffectiveLevel() <= logging.DEBUG)
        print(f"{_command(args)}: {line}", file=sys.stderr, flush=True)
        return code
    except Exception:
        release_log()  # a bug: its traceback comes with the log that led to it
        raise


if __name__ == "__main__":
    sys.exit(main())
