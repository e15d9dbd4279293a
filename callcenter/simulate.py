"""The whole system on the built-in Asterisk simulator: ``cti simulate`` and ``cti demo``.

:func:`run_simulation` starts the app (store, ACD, FastAGI, web) beside one or more
simulated Asterisk servers and agent bots, places calls (a finite measured run, or until
stopped), then checks every call against its call log and pop.  Its start-up failures
(a port taken, the database) propagate as the app raises them, after everything that did
start has been stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import secrets
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callcenter.settings import AgentSettings, Settings
from callcenter.startup import DB_VIA_FLAG, DB_VIA_SETTINGS
from crm_core.call_invariant import call_row_problems

if TYPE_CHECKING:
    from callcenter.app import AsteriskLink, CtiApp
    from simulator.actors import Caller, CallRecord
    from simulator.agent_bot import AgentBot
    from simulator.core import AsteriskSim
    from simulator.manager_conf import AmiUser

__all__ = ["run_simulation"]

MANAGER_CONF = Path(__file__).resolve().parent.parent / "asterisk" / "manager.conf"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sim_agents(settings: Settings, n: int) -> list[AgentSettings]:
    agents = list(settings.agents)[:n]
    skills = list(settings.skills)
    i = 0
    while len(agents) < n:
        aid = str(2001 + i)
        agents.append(AgentSettings(id=aid, name=f"Bot {aid}", skills=dict.fromkeys(skills, 5)))
        i += 1
    return agents


def _sim_ami_users(settings: Settings) -> dict[str, AmiUser]:
    """The simulator's AMI user: the contract's ``asterisk/manager.conf`` section of our user
    (read/write classes and eventfilters, so a filter that hid an event we need would show),
    with the configured secret; the same classes without filters when the file is absent."""
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
                         http_port: int | None = None, servers: int = 1,
                         on_ready: Callable[[int], None] | None = None,
                         db_source: str | None = None, background: float = 0.0) -> dict[str, Any]:
    """Run the whole system on the simulator; ``capture`` receives the records and bots.

    ``rate`` is in calls per second (wall clock); ``calls`` None runs until ``until_stopped``
    is set.  ``on_ready(http_port)`` runs once everything listens and every bot is logged in,
    before the first call.  ``db`` is a SQLite file (default: ``database.url``); ``db_source``
    names where it came from, for the error when it cannot be opened.

    ``servers`` > 1 runs that many simulated Asterisk servers side by side (the i-th on
    127.0.0.i, AMI and FastAGI), the calls spread over them; the app sees each as one of its
    ``[[ami_servers]]`` with call ids namespaced by server.

    ``background`` (calls per second) mixes in the rest of a PBX's traffic for as long as our calls
    arrive: internal calls, another queue's calls, other clients' Redirects of our waiting callers.
    None of it may write a call log; the figures count it and what the trackers ignored."""
    from callcenter.app import CtiApp

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
    app = CtiApp(settings, db_url=db_url, agent_passwords=passwords,
                 db_source=db_source or (DB_VIA_FLAG if db else DB_VIA_SETTINGS))
    try:
        await app.start(agi_port=0)
        return await _run(app, settings, ags, passwords, base, calls=calls, rate=rate, ami_drops=ami_drops,
                          until_stopped=until_stopped, capture=capture, servers=servers,
                          on_ready=on_ready, background=background)
    finally:
        await app.stop()


async def _run(app: CtiApp, settings: Settings, ags: list[AgentSettings], passwords: dict[str, str], base: str,
               *, calls: int | None, rate: float, ami_drops: int, until_stopped: asyncio.Event | None,
               capture: dict[str, Any] | None, servers: int,
               on_ready: Callable[[int], None] | None, background: float = 0.0) -> dict[str, Any]:
    """The run itself, on a started ``app`` (which the caller stops)."""
    from simulator.actors import AgentPhone, Caller
    from simulator.agent_bot import AgentBot
    from simulator.core import AsteriskSim, SimConfig

    sim_s = settings.sim
    tf = sim_s.time_factor
    assert app.store is not None
    await app.store.seed_demo(80)  # demo customers own +1 555 555-1001 .. -1080
    assert app.agi is not None and app.distributor is not None and app.calllog is not None
    phones = tuple(AgentPhone(ext=a.id, behaviour="answer", ring_s=sim_s.answer_after_s, talk_s=sim_s.talk_s)
                   for a in ags)
    links = list(app.links.values())
    hosts = [lk.settings.host if servers > 1 else "127.0.0.1" for lk in links]
    sims = [AsteriskSim(SimConfig(
        ami_host=host, agi_source=host if servers > 1 else None,
        agi_port=app.agi.port, time_factor=tf, phones=phones, users=dict(_sim_ami_users(settings))))
        for host in hosts]
    bots: list[AgentBot] = []
    t_start = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        for sim in sims:
            await stack.enter_async_context(sim)
        await app.connect_ami(where={lk.name: (host, sim.ami_port)
                                     for lk, host, sim in zip(links, hosts, sims, strict=True)})
        for a in ags:
            bot = AgentBot(base, f"agent{a.id}", passwords[a.id], a.id, origin=base)
            stack.push_async_callback(bot.stop)
            bot.start()
            bots.append(bot)
        await asyncio.gather(*(asyncio.wait_for(b.connected.wait(), 10) for b in bots))
        await asyncio.sleep(0.2)
        if on_ready is not None:
            on_ready(app.http_port)
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
        records: list[tuple[AsteriskLink, CallRecord]] = []  # (link, the simulator's record of the call)
        bg_stats = {"background_calls": 0, "foreign_redirects": 0, "redirected_back": 0}
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
            records = [(lk, r) for lk, sim in zip(links, sims, strict=True) for r in sim.record.values()]
        else:
            shares = [calls // len(sims) + (1 if i < calls % len(sims) else 0) for i in range(len(sims))]
            busy = [(lk, sim, n) for lk, sim, n in zip(links, sims, shares, strict=True) if n]
            # the rest of the PBX, over the same span as our calls (each server its share)
            other = [asyncio.create_task(sim.run_background(background / len(sims),
                                                            count=max(1, round(background * calls / rate / len(sims)))))
                     for sim in sims] if background > 0 else []
            done = await asyncio.gather(*(sim.run_traffic(n, rate * n / calls, caller) for _lk, sim, n in busy))
            for stats in await asyncio.gather(*other):
                bg_stats["background_calls"] += stats.internal + stats.queue
                bg_stats["foreign_redirects"] += stats.redirects
                bg_stats["redirected_back"] += stats.back_to_hold
            records = [(lk, r) for (lk, _sim, _n), recs in zip(busy, done, strict=True) for r in recs]
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
        if background > 0:
            result.update(bg_stats, foreign_calls_ignored=sum(lk.tracker.foreign_calls for lk in links))
        for lk in links:
            if lk.client:
                await lk.client.stop()
    if capture is not None:
        capture.update(records=[r for _lk, r in records], bots=bots, http_port=app.http_port,
                       agi_errors=app.agi.errors)
    return result


async def _endless(sim: AsteriskSim, rate: float, caller: Callable[[int], Caller]) -> None:
    i = 0
    while True:
        await sim.place_call(caller(i))
        i += 1
        await asyncio.sleep(random.expovariate(rate))


def _pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return round(s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))], 2)


async def _figures(app: CtiApp, records: list[tuple[AsteriskLink, CallRecord]], bots: list[AgentBot],
                   elapsed: float) -> dict[str, Any]:
    store = app.store
    assert store is not None and app.agi is not None
    answered = [r for _lk, r in records if r.answered_by]
    abandoned = [r for _lk, r in records if not r.answered_by]
    problems: list[str] = []
    pops_by_call: dict[str, set[str]] = {}
    for b in bots:
        for p in b.pops:
            pops_by_call.setdefault(p["call_id"], set()).add(b.agent_id)
    logs = unknown = 0

    def in_outage(link: AsteriskLink, t: float | None) -> bool:  # ended while its link was down (or resyncing)
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
        problems.extend(f"call {r.linkedid}: {p}" for p in call_row_problems(row))
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
        elif row.outcome == "answered" and not (r.foreign and row.answered_by and not row.agent_id):
            # (a caller another client sent to an extension is answered there, by no agent of ours)
            problems.append(f"call {r.linkedid}: not answered but logged answered")
        if row.outcome == "redirected" and not r.foreign:
            problems.append(f"call {r.linkedid}: logged redirected but nobody moved it")
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

