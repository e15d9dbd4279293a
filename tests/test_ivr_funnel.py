"""The IVR funnel: the pure fold, the store's paged read of IVR steps (SQLite and PostgreSQL), the command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from crm_core.ivr_funnel import IvrFunnel
from crm_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
T = 1_790_000_000.0  # 2026-09-21


def test_reached_once_per_call_left_before_hangup_options_every_time() -> None:
    f = IvrFunnel()
    f.add_path([("greeting", ""), ("menu", "7"), ("menu", "1"), ("sales", "")])
    f.add_path([("greeting", ""), ("menu", ""), ("hangup", "")])
    f.add_path([("greeting", ""), ("account", "***"), ("hangup", "")])
    f.add_path([])
    assert (f.calls, f.hung_up) == (3, 2)
    rows = {r["node"]: r for r in f.rows()}
    assert rows["greeting"] == {"node": "greeting", "reached": 3, "left": 0, "options": {}}
    assert rows["menu"] == {"node": "menu", "reached": 2, "left": 1, "options": {"7": 1, "1": 1}}
    assert rows["account"]["left"] == 1 and rows["account"]["options"] == {"***": 1}
    assert f.rows()[0]["node"] == "greeting"  # most reached first


async def _call(store: Store, call_id: str, at: float, steps: list[tuple[str, str]]) -> None:
    await store.call_arrived(call_id, uniqueid=call_id, linkedid=call_id, channel="ch", caller_num="5",
                             caller_name="", dnis="1", at=at)
    for i, (node, digits) in enumerate(steps):
        await store.call_event(call_id, "ivr_step", at + i, {"node": node, "digits": digits},
                               dedup_key=f"s{i}")


async def test_the_store_pages_the_steps_of_the_calls_in_range(store: Store) -> None:
    for i in range(7):
        await _call(store, f"c{i}", T + i * 86400, [("greeting", ""), ("menu", str(i % 2 + 1))])
    await _call(store, "left", T + 2 * 86400 + 5, [("greeting", ""), ("hangup", "")])
    f = IvrFunnel()
    pages = 0
    async for page in store.iter_ivr_steps(T + 86400, T + 4 * 86400, batch=2):
        pages += 1
        for path in page:
            f.add_path(path)
    assert pages >= 2 and (f.calls, f.hung_up) == (4, 1)  # days 1, 2, 3 and the caller who left on day 2
    rows = {r["node"]: r for r in f.rows()}
    assert rows["greeting"]["reached"] == 4 and rows["greeting"]["left"] == 1
    assert rows["menu"]["options"] == {"2": 2, "1": 1}


async def test_cti_ivr_funnel_reads_a_store(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    async with Store.open(f"sqlite+aiosqlite:///{db}") as store:
        await _call(store, "a", T, [("greeting", ""), ("menu", "1")])
        await _call(store, "b", T + 60, [("greeting", ""), ("hangup", "")])
    args = [sys.executable, "-m", "callcenter", "ivr", "funnel", "--db", str(db), "--json",
            "--from", "2026-09-21", "--to", "2026-09-21"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    r = await asyncio.to_thread(subprocess.run, args, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                                check=False, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["calls"], out["hung_up_in_ivr"]) == (2, 1)
    assert {n["node"]: (n["reached"], n["left"]) for n in out["nodes"]} == {"greeting": (2, 1), "menu": (1, 0)}
