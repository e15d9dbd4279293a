"""Erasure on request: no trace of the person in the store (nor in the SQLite files), the
anonymised call statistics stay, recording files are deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_core.errors import NotFound
from crm_core.store import Store

NOW = 1_795_000_000.0
NAME, PHONE, EMAIL, NOTE = "Zelda Quuxworth", "5557771234", "zelda@quux.example", "secret-diagnosis-xyz"


async def _person(store: Store, tmp_path: Path) -> tuple[int, Path]:
    c = await store.upsert_customer("ACCZ77", NAME, [PHONE], email=EMAIL, account_manager="Ada",
                                    monthly_revenue=500.0)
    await store.record_revenue(c.id, "2026-10", 500.0)
    await store.log_contact(c.id, "email", "inbound", NOW, disposition="complaint", notes=NOTE)
    await store.call_arrived("Z1", uniqueid="Z1", linkedid="Z1", channel=f"PJSIP/{PHONE}-01",
                             caller_num=PHONE, caller_name=NAME, dnis="5551000", at=NOW)
    await store.call_event("Z1", "call_queued", NOW + 1, {"caller_num": PHONE, "caller_name": NAME, "queue": "sales"})
    await store.call_update("Z1", customer_id=c.id, queue="sales", queued_at=NOW + 1, answered_at=NOW + 9,
                            agent_id="1001", notes=NOTE)
    await store.call_end("Z1", at=NOW + 99, outcome="answered", hangup_cause=16, hangup_side="caller",
                         end_reason="hangup")
    wav = tmp_path / "cti-Z1-1.wav"
    wav.write_bytes(b"RIFF" + b"\0" * 100)
    await store.add_recording("Z1", str(wav), duration_s=90.0, size_bytes=104)
    return c.id, wav


async def test_erasure_leaves_no_trace_but_keeps_the_statistics(store: Store, tmp_path: Path) -> None:
    cid, wav = await _person(store, tmp_path)
    other = await store.upsert_customer("ACC1", "Other Person", ["5550001111"])
    report = await store.erase_customer(cid)
    assert (report.calls, report.contacts, report.recordings_deleted) == (1, 1, 1)
    assert not wav.exists()
    assert await store.find_customer_by_phone(PHONE) is None
    assert await store.find_customer_by_account("ACCZ77") is None
    assert await store.search_customers("Zelda") == []
    row = await store.get_call("Z1")
    assert row is not None
    assert (row.caller_num, row.caller_name, row.channel, row.notes) == (None, None, None, None)
    assert (row.outcome, row.queue, row.agent_id, row.talk_s, row.wait_s) == ("answered", "sales", "1001", 90.0, 8.0)
    for _kind, _at, data in await store.call_events("Z1"):
        assert PHONE not in str(data) and NAME not in str(data)
    assert (await store.find_customer_by_phone("5550001111")) == other  # nobody else touched
    with pytest.raises(NotFound):
        await store.erase_customer(999_999)
    if store.dialect == "sqlite":  # the bytes themselves are gone from the database files
        db = Path(store.engine.url.database or "")
        await store.close()
        raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
        for secret in (NAME, PHONE, EMAIL, NOTE, "ACCZ77"):
            assert secret.encode() not in raw, secret
