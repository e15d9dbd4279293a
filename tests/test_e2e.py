"""End to end over real sockets: simulator (AMI server + FastAGI client) -> our AMI client,
FastAGI server, IVR, ACD, screen pops over websockets to agent bots, call logs in SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from callcenter.cli import run_simulation
from callcenter.settings import load_settings

CONFIG = Path(__file__).resolve().parent.parent / "config" / "cti.toml"


async def test_thirty_calls_end_to_end(tmp_path: Path) -> None:
    settings = load_settings(CONFIG)
    db = tmp_path / "e2e.db"
    cap: dict[str, object] = {}
    res = await run_simulation(settings, calls=30, rate=15, agents=6, db=str(db), capture=cap)
    assert res["calls"] == 30
    assert res["answered"] + res["abandoned"] == 30
    assert res["answered"] > 0
    assert res["consistent"], res["problems"]
    assert cap["agi_errors"] == 0

    records = cap["records"]
    bots = cap["bots"]
    # each offer's pop reached exactly one bot; a bot's pops are for calls offered to its agent
    receivers: dict[tuple[str, int], list[str]] = {}
    for bot in bots:  # type: ignore[attr-defined]
        for pop in bot.pops:
            receivers.setdefault((pop["call_id"], pop["offer_no"]), []).append(bot.agent_id)
            rec = next(r for r in records if r.linkedid == pop["call_id"])  # type: ignore[attr-defined]
            rang = [a for a, _ in rec.offers]
            # the caller may leave between the offer and the ring: then Asterisk dialled nobody
            assert bot.agent_id in rang or (not rec.answered_by and len(rang) < pop["offer_no"]), (
                bot.agent_id, rec.offers)
    assert all(len(v) == 1 for v in receivers.values()), receivers
    # the pop carries the caller's customer record (demo customers own 555-555-1001..1080)
    with_customer = [p for b in bots for p in b.pops if p.get("customer")]  # type: ignore[attr-defined]
    assert with_customer and all(p["customer"]["customer"]["phones"] for p in with_customer)
    answered = {r.linkedid: r.answered_by for r in records if r.answered_by}  # type: ignore[attr-defined]
    popped = {(p["call_id"], b.agent_id) for b in bots for p in b.pops}  # type: ignore[attr-defined]
    for lid, agent in answered.items():
        assert (lid, agent) in popped

    con = sqlite3.connect(db)
    rows = con.execute("select call_id, outcome, agent_id, ivr_choice, queue, ended_at, caller_num "
                       "from calls").fetchall()
    assert len(rows) == 30
    by_id = {r[0]: r for r in rows}
    chosen = 0
    for r in records:  # type: ignore[attr-defined]
        row = by_id[r.linkedid]
        assert row[5] is not None, "call log closed"
        assert row[6] == r.caller.number
        if r.answered_by:
            assert row[1] == "answered" and row[2] == r.answered_by
        else:
            assert row[1] in ("abandoned", "ivr_hangup")
        if r.ivr_digits and row[3]:  # the digit the caller pressed is the IVR choice recorded
            assert row[3] == r.ivr_digits[0]
            assert row[4] == {"1": "sales", "2": "support"}[r.ivr_digits[0]]
            chosen += 1
        elif r.ivr_digits and row[4] is not None:
            # the digit came after the menu timed out (timing under load): the default queue
            assert row[4] == "support"
    assert chosen >= 20, chosen
    mode = con.execute("pragma journal_mode").fetchone()[0]
    assert mode == "wal"


async def test_background_traffic_writes_no_row_and_every_row_of_ours_is_valid(tmp_path: Path) -> None:
    """Internal calls, another queue's calls and other clients' Redirects of our waiting callers run
    beside ours: no row for any foreign call, every row of ours keeps the invariant (the run's own
    consistency check applies it), and a caller sent away and ending there is 'redirected'."""
    db = tmp_path / "bg.db"
    cap: dict[str, object] = {}
    res = await run_simulation(load_settings(CONFIG), calls=80, rate=20, agents=4, db=str(db), capture=cap,
                               background=15.0)
    assert res["consistent"], res["problems"]
    assert res["call_logs"] == res["calls"] == 80
    assert res["background_calls"] > 20 and res["foreign_calls_ignored"] == res["background_calls"]
    assert res["foreign_redirects"] > 0
    with sqlite3.connect(db) as c:
        outcomes = dict(c.execute("SELECT outcome, count(*) FROM calls GROUP BY outcome").fetchall())
        ids = {r[0] for r in c.execute("SELECT linkedid FROM calls")}
    ours = {r.linkedid for r in cap["records"]}  # type: ignore[attr-defined]
    assert ids == ours
    moved = [r for r in cap["records"] if r.foreign]  # type: ignore[attr-defined]
    assert moved and outcomes.get("redirected", 0) <= len(moved)
