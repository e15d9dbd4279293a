"""The ``cti`` command: ``serve``, ``demo``, ``simulate``.

Every command takes ``--config PATH``; environment variables override the file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import secrets
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from callcenter.settings import AgentSettings, Settings, SettingsError, load_settings
from ivr.errors import FlowError

log = logging.getLogger("cti")

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "cti.toml"


class JsonFormatter(logging.Formatter):
    _skip = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        d: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                             "logger": record.name, "msg": record.getMessage()}
        for k, v in vars(record).items():
            if k not in self._skip:
                d[k] = v
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, default=str)


def setup_logging(settings: Settings, quiet: bool = False) -> None:
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(JsonFormatter() if settings.log.json_ else logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel("WARNING" if quiet else settings.log.level)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load(path: str | None) -> Settings:
    p = Path(path) if path else (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    return load_settings(p)


def _sim_agents(settings: Settings, n: int) -> list[AgentSettings]:
    agents = list(settings.agents)[:n]
    skills = list(settings.skills)
    i = 0
    while len(agents) < n:
        aid = str(2001 + i)
        agents.append(AgentSettings(id=aid, name=f"Bot {aid}", skills=dict.fromkeys(skills, 5)))
        i += 1
    return agents


# -- simulate -------------------------------------------------------------------------------

MANAGER_CONF = Path(__file__).resolve().parent.parent / "asterisk" / "manager.conf"


def _sim_ami_users(settings: Settings) -> dict[str, Any]:
    """The simulator's AMI user: the contract's ``asterisk/manager.conf`` section of our user
    (read/write classes and eventfilters, so a filter that hid an event we need would show),
    with the configured secret; the same classes without filters when the file is absent."""
    import dataclasses

    from simulator.manager_conf import AmiUser, load_manager_conf

    name, secret = settings.ami.username, settings.ami.secret.get_secret_value()
    users = load_manager_conf(MANAGER_CONF) if MANAGER_CONF.is_file() else {}
    user = users.get(name) or AmiUser(secret, frozenset({"call", "dialplan", "user", "agent", "reporting"}),
                                      frozenset({"call", "originate", "reporting"}))
    return {name: dataclasses.replace(user, secret=secret)}



async def run_simulation(settings: Settings, *, calls: int | None, rate: float, agents: int,
                         db: str | None, ami_drops: int = 0, progress: bool = False,
                         until_stopped: asyncio.Event | None = None,
                         capture: dict[str, Any] | None = None,
                         http_port: int | None = None, servers: int = 1) -> dict[str, Any]:
    """Run the whole system on the simulator; ``capture`` receives the records and bots.

    ``servers`` > 1 runs that many simulated Asterisk servers side by side (the i-th on
    127.0.0.i, AMI and FastAGI), the calls spread over them; the app sees each as one of its
    ``[[ami_servers]]`` with call ids namespaced by server."""
    from callcenter.app import CtiApp
    from simulator.actors import AgentPhone, Caller
    from simulator.agent_bot import AgentBot
    from simulator.core import AsteriskSim, SimConfig

    sim_s = settings.sim
    tf = sim_s.time_factor
    http_port = http_port or _free_port()
    base = f"http://127.0.0.1:{http_port}"
    ags = _sim_agents(settings, agents)
    queues = {k: q.model_copy(update={"wrap_up_s": q.wrap_up_s * tf}) for k, q in settings.queues.items()}
    update: dict[str, Any] = {
        "agents": ags, "queues": queues,
        "http": settings.http.model_copy(update={"port": http_port, "public_url": base,
                                                 "allowed_origins": [base]}),
    }
    if servers > 1:
        update["ami"] = settings.ami.model_copy(update={"host": "127.0.0.1", "agi_peers": ["127.0.0.1"]})
        update["ami_servers"] = [settings.ami.model_copy(update={
            "name": f"sim{i + 1}", "host": f"127.0.0.{i + 1}", "agi_peers": [f"127.0.0.{i + 1}"]})
            for i in range(1, servers)]
    settings = settings.model_copy(update=update)
    passwords = {a.id: secrets.token_urlsafe(12) for a in ags}
    db_url = f"sqlite+aiosqlite:///{db}" if db else settings.database.url
    app = CtiApp(settings, db_url=db_url, agent_passwords=passwords)
    await app.start(agi_port=0)
    assert app.store is not None
    await app.store.seed_demo(80)  # demo customers own +1 555 555-1001 .. -1080
    assert app.agi is not None and app.distributor is not None and app.calllog is not None
    phones = tuple(AgentPhone(ext=a.id, behaviour="answer", ring_s=sim_s.answer_after_s, talk_s=sim_s.talk_s)
                   for a in ags)
    links = list(app.links.values())
    hosts = [lk.settings.host if servers > 1 else "127.0.0.1" for lk in links]
    sims = [AsteriskSim(SimConfig(
        ami_host=host, **({"agi_source": host} if servers > 1 else {}),
        agi_port=app.agi.port, time_factor=tf, phones=phones, users=_sim_ami_users(settings)))
        for host in hosts]
    bots: list[AgentBot] = []
    t_start = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        for sim in sims:
            await stack.enter_async_context(sim)
        await app.connect_ami(where={lk.name: (host, sim.ami_port) for lk, host, sim in zip(links, hosts, sims)})
        for a in ags:
            bot = AgentBot(base, f"agent{a.id}", passwords[a.id], a.id, origin=base)
            bot.start()
            bots.append(bot)
        await asyncio.gather(*(asyncio.wait_for(b.connected.wait(), 10) for b in bots))
        await asyncio.sleep(0.2)
        rng = random.Random(7)
        choices = ["1", "2"]

        def caller(i: int) -> Caller:
            num = f"555{5551001 + (i % 100)}"  # 80 of 100 are demo customers
            patience = rng.uniform(0.5, 2.0) * sim_s.patience_s
            return Caller(number=num, name=f"Caller {i}", digits_plan=((2.5, rng.choice(choices)),),
                          patience_s=patience, talk_s=rng.uniform(0.5, 1.5) * sim_s.talk_s)

        drops: asyncio.Task[None] | None = None
        if ami_drops and calls:
            async def chaos() -> None:
                span = calls / rate
                for k in range(ami_drops):
                    await asyncio.sleep(span / (ami_drops + 1))
                    sims[k % len(sims)].drop_ami_clients()
            drops = asyncio.create_task(chaos())
        records: list[tuple[Any, Any]] = []  # (link, the simulator's record of the call)
        if calls is None:
            assert until_stopped is not None
            traffic = [asyncio.create_task(_endless(sim, rate / len(sims), caller)) for sim in sims]
            await until_stopped.wait()
            for t in traffic:
                t.cancel()
            await asyncio.gather(*traffic, return_exceptions=True)
            live = [(sim, lid) for sim in sims for lid, r in sim.record.items() if r.ended is None]
            if live:
                print(f"stopping: letting {len(live)} live calls finish", file=sys.stderr, flush=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.gather(*(sim.wait_ended(lid) for sim, lid in live)), 30)
            records = [(lk, r) for lk, sim in zip(links, sims) for r in sim.record.values()]
        else:
            shares = [calls // len(sims) + (1 if i < calls % len(sims) else 0) for i in range(len(sims))]
            done = await asyncio.gather(*(sim.run_traffic(n, rate * n / calls, caller)
                                          for sim, n in zip(sims, shares) if n))
            records = [(lk, r) for lk, recs in zip([lk for lk, n in zip(links, shares) if n], done) for r in recs]
        if drops:
            await drops
        elapsed = time.monotonic() - t_start
        for lk in links:
            if lk.client:
                await lk.client.wait_connected(10)
        await app.distributor.settle()
        await asyncio.sleep(0.3)
        await app.calllog.drain()
        for b in bots:
            await b.stop()
        result = await _figures(app, records, bots, elapsed)
        for lk in links:
            if lk.client:
                await lk.client.stop()
    if capture is not None:
        capture.update(records=[r for _lk, r in records], bots=bots, http_port=http_port,
                       agi_errors=app.agi.errors)
    await app.stop()
    return result


async def _endless(sim: Any, rate: float, caller: Any) -> None:
    i = 0
    while True:
        await sim.place_call(caller(i))
        i += 1
        await asyncio.sleep(random.expovariate(rate))


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))], 2)


async def _figures(app: Any, records: list[tuple[Any, Any]], bots: list[Any], elapsed: float) -> dict[str, Any]:
    store = app.store
    answered = [r for _lk, r in records if r.answered_by]
    abandoned = [r for _lk, r in records if not r.answered_by]
    problems: list[str] = []
    pops_by_call: dict[str, set[str]] = {}
    for b in bots:
        for p in b.pops:
            pops_by_call.setdefault(p["call_id"], set()).add(b.agent_id)
    logs = unknown = 0

    def in_outage(link: Any, t: float | None) -> bool:  # ended while its link was down (or resyncing)
        outages = list(link.client.outages) if link.client else []
        return t is not None and any(lo - 0.5 <= t <= (hi or t) + 1.0 for lo, hi in outages)

    for link, r in records:
        cid = link.tracker.call_id(r.linkedid)
        row = await store.get_call(cid)
        if row is None:
            problems.append(f"call {r.linkedid}: no call log")
            continue
        logs += 1
        if row.ended_at is None:
            problems.append(f"call {r.linkedid}: call log not closed")
        if row.outcome == "unknown":
            unknown += 1
            if not in_outage(link, r.ended):
                problems.append(f"call {r.linkedid}: logged unknown but it did not end during an AMI outage")
            continue
        if r.answered_by:
            if r.answered_by not in pops_by_call.get(cid, set()):
                problems.append(f"call {r.linkedid}: answered by {r.answered_by} without a pop")
            if row.outcome != "answered":
                problems.append(f"call {r.linkedid}: answered but logged {row.outcome}")
        elif row.outcome == "answered":
            problems.append(f"call {r.linkedid}: not answered but logged answered")
    total_rows = await store.count_calls()
    if total_rows != len(records):
        problems.append(f"{total_rows} call logs for {len(records)} calls")
    lat = [x for b in bots for x in b.latencies_ms]
    return {
        "calls": len(records),
        "answered": len(answered),
        "abandoned": len(abandoned),
        "call_logs": total_rows,
        "outcome_unknown": unknown,
        "pops": sum(len(b.pops) for b in bots),
        "pop_latency_ms": {"p50": _pct(lat, 50), "p99": _pct(lat, 99), "max": _pct(lat, 100)},
        "calls_per_s": round(len(records) / elapsed, 2) if elapsed else None,
        "elapsed_s": round(elapsed, 2),
        "asterisk_servers": len(app.links),
        "ami_reconnects": sum(lk.client.reconnects for lk in app.links.values() if lk.client),
        "resync_ms_max": round(max(app.resyncs), 2) if app.resyncs else 0.0,
        "agi_sessions": app.agi.sessions_total,
        "bot_errors": sum(len(b.errors) for b in bots),
        "consistent": not problems,
        "problems": problems[:20],
    }


# -- commands -------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    setup_logging(settings, quiet=True)
    if args.rate <= 0 or args.calls <= 0 or args.agents <= 0:
        print("cti simulate: --calls, --rate and --agents must be > 0", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cti-sim-") as tmp:
        # a measured run starts from an empty store unless --db names one
        db = args.db or str(Path(tmp) / "sim.db")
        res = asyncio.run(run_simulation(settings, calls=args.calls, rate=args.rate, agents=args.agents,
                                         db=db, ami_drops=args.ami_drops, servers=args.servers))
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k}: {v}")
    return 0 if res["consistent"] and res["answered"] + res["abandoned"] == res["calls"] else 1


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM (Ctrl-C), for a clean shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def cmd_demo(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    setup_logging(settings, quiet=False)

    async def main() -> None:
        stop = _stop_on_signals()
        demo_settings = settings.model_copy(update={"sim": settings.sim.model_copy(
            update={"time_factor": max(settings.sim.time_factor, 0.2)})})
        port = args.port or settings.http.port
        task = asyncio.create_task(run_simulation(demo_settings, calls=None, rate=args.rate,
                                                  agents=args.agents, db=args.db, until_stopped=stop,
                                                  http_port=port))
        await asyncio.sleep(1.5)
        print("cti demo running on the built-in Asterisk simulator (Ctrl-C to stop)", flush=True)
        print(f"  agent desktop: http://127.0.0.1:{port}/agent", flush=True)
        print(f"  wallboard:     http://127.0.0.1:{port}/wallboard", flush=True)
        print(f"  {args.agents} agent bots take calls; log in yourself by adding an agent with a"
              " password in config/cti.toml", flush=True)
        res = await task
        print(json.dumps(res), flush=True)

    asyncio.run(main())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    setup_logging(settings)
    from callcenter.app import CtiApp

    async def main() -> None:
        stop = _stop_on_signals()
        app = CtiApp(settings, migrate=False)  # a production schema changes only by `cti db upgrade`
        await app.start()
        await app.connect_ami()
        print(f"cti serving: agent desktop {settings.http.public_url}/agent", flush=True)
        await stop.wait()
        await app.stop()

    from crm_core.migrate import SchemaOutdated

    try:
        asyncio.run(main())
    except SchemaOutdated as e:
        print(f"cti serve: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """``cti db upgrade`` builds or upgrades the schema; ``cti db status`` tells where it is."""
    from callcenter.cli_customers import db_url
    from crm_core import migrate
    from crm_core.db import ensure_pg_schema, make_engine

    url = db_url(args, _load)

    async def main() -> int:
        engine = make_engine(url)
        try:
            if args.action == "upgrade":
                before = await migrate.schema_state(engine)
                await ensure_pg_schema(engine, None)
                state = await migrate.upgrade(engine)
                print(f"schema {before.current or 'empty'} -> {state.current} (newest {state.head})")
                return 0
            state = await migrate.schema_state(engine)
            print(f"schema {state.current or 'empty'}, newest {state.head}: "
                  + ("up to date" if state.up_to_date else "run `cti db upgrade`"))
            return 0 if state.up_to_date else 1
        finally:
            await engine.dispose()

    return asyncio.run(main())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cti", description="CTI call-center backend on Asterisk")
    p.add_argument("--config", help="path to cti.toml (default: config/cti.toml)")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run against a real Asterisk")
    s.set_defaults(fn=cmd_serve)
    d = sub.add_parser("demo", help="run everything on the built-in simulator until Ctrl-C")
    d.add_argument("--rate", type=float, default=0.5)
    d.add_argument("--agents", type=int, default=6)
    d.add_argument("--db", default=None, help="SQLite file (default: database.url)")
    d.add_argument("--port", type=int, default=None, help="HTTP port (default: http.port)")
    d.set_defaults(fn=cmd_demo)
    m = sub.add_parser("simulate", help="a finite measured run on the simulator")
    m.add_argument("--calls", type=int, default=50)
    m.add_argument("--rate", type=float, default=10.0)
    m.add_argument("--agents", type=int, default=10)
    m.add_argument("--db", default=None)
    m.add_argument("--ami-drops", type=int, default=0)
    m.add_argument("--servers", type=int, default=1, choices=range(1, 9), metavar="N",
                   help="simulated Asterisk servers side by side (1-8; calls namespaced by server)")
    m.add_argument("--json", action="store_true")
    m.set_defaults(fn=cmd_simulate)
    db = sub.add_parser("db", help="the CRM schema: upgrade (build or migrate) or status")
    db.add_argument("action", choices=("upgrade", "status"))
    db.add_argument("--db", default=None, help="database URL or SQLite file (default: database.url)")
    db.set_defaults(fn=cmd_db)
    from callcenter.cli_customers import add_customer_commands
    add_customer_commands(sub, _load)  # cti customers import|export|show
    for sp in (s, d, m, db):
        sp.add_argument("--config", default=argparse.SUPPRESS, help="path to cti.toml")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except SettingsError as e:
        print(f"cti: configuration error: {e}", file=sys.stderr)
        return 2
    except FlowError as e:
        print(f"cti: IVR flow error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
