"""The call-log invariant: one function, applied to rows the real store wrote, and by ``cti db check``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core.call_invariant import call_row_problems
from crm_core.dto import CallDTO
from crm_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
T = 1_790_000_000.0


async def answered_row(store: Store, call_id: str = "c1") -> CallDTO:
    await store.call_arrived(call_id, uniqueid=call_id, linkedid=call_id, channel="Local/x;2", caller_num="555",
                             caller_name="Ann", dnis="100", at=T)
    await store.call_update(call_id, queue="sales", queued_at=T + 2, offered_at=T + 3)
    await store.call_update(call_id, answered_at=T + 5, agent_id="1001", answered_by="Local/1001@agent-phones;1")
    await store.call_end(call_id, at=T + 65, outcome="answered", hangup_cause=16, hangup_side="caller",
                         end_reason="hangup")
    row = await store.get_call(call_id)
    assert row is not None
    return row


async def test_rows_the_store_writes_are_valid(store: Store) -> None:
    row = await answered_row(store)
    assert (row.wait_s, row.talk_s) == pytest.approx((3.0, 60.0))
    assert call_row_problems(row) == []
    await store.call_arrived("c2", uniqueid="c2", linkedid="c2", channel="ch", caller_num="", caller_name="",
                             dnis="", at=T)
    open_row = await store.get_call("c2")
    assert open_row is not None and call_row_problems(open_row) == []  # open, in progress
    await store.call_update("c2", queue="sales", queued_at=T + 1)
    await store.call_end("c2", at=T + 30, outcome="abandoned", hangup_cause=16, hangup_side="caller",
                         end_reason="hangup")
    abandoned = await store.get_call("c2")
    assert abandoned is not None and abandoned.wait_s == pytest.approx(29.0) and call_row_problems(abandoned) == []


async def test_each_broken_rule_is_named(store: Store) -> None:
    ok = await answered_row(store)

    def broken(**change: object) -> list[str]:
        return call_row_problems(dataclasses.replace(ok, **change))  # type: ignore[arg-type]

    assert broken(outcome="in_progress") == ["closed with outcome 'in_progress'",
                                             "answered_at set but outcome 'in_progress'"]
    assert broken(ended_at=None) == ["open but outcome 'answered'"]
    assert broken(arrived_at=None) == ["closed without arrived_at"]
    assert "answered_at after ended_at" in broken(ended_at=T + 4, talk_s=-1.0)
    assert "talk_s negative (-1.0)" in broken(ended_at=T + 4, talk_s=-1.0)
    assert broken(agent_id=None, answered_by=None) == ["answered by nobody (no agent_id, no answered_by)"]
    assert broken(answered_at=None, talk_s=None, wait_s=None) == ["answered without answered_at",
                                                                   "answered without talk_s"]
    assert broken(outcome="abandoned", answered_at=None, talk_s=None, wait_s=63.0) == [
        "abandoned with agent '1001'"]
    assert broken(wait_s=4.0) == ["wait_s 4.000 != 3.000"]
    assert broken(talk_s=59.0) == ["talk_s 59.000 != 60.000"]
    assert broken(queued_at=T - 1, wait_s=6.0) == ["arrived_at after queued_at"]
    assert broken(outcome="system", answered_at=None, talk_s=None, agent_id=None, wait_s=63.0,
                  answered_by=None) == ["system outcome with end_reason 'hangup', side 'caller'"]
    assert broken(outage_from=T + 10) == ["half an outage window (outage_from/outage_to)"]
    assert broken(outage_from=T + 10, outage_to=T + 20) == ["ended after its outage window closed"]
    assert broken(outage_from=T + 70, outage_to=T + 80) == []


def _cti(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callcenter", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd),
                                                        "PYTHONPATH": str(ROOT)})


async def test_cti_db_check_names_every_broken_row(tmp_path: Path) -> None:
    db = tmp_path / "crm.db"
    async with Store.open(f"sqlite+aiosqlite:///{db}") as store:
        for i in range(5):
            await answered_row(store, f"ok-{i}")
        await answered_row(store, "bad")
        await store.call_update("bad", agent_id=None, answered_by=None)
    good = _cti("db", "check", "--db", str(db), cwd=tmp_path)
    assert good.returncode == 1, good.stderr
    assert good.stdout.splitlines() == ["call bad: answered by nobody (no agent_id, no answered_by)",
                                        "checked 6 call logs: 1 break the invariant"]
    async with Store.open(f"sqlite+aiosqlite:///{db}") as store:
        await store.call_update("bad", agent_id="1002")
    fixed = _cti("db", "check", "--db", str(db), cwd=tmp_path)
    assert (fixed.returncode, fixed.stdout.strip()) == (0, "checked 6 call logs: 0 break the invariant (all valid)")
