"""crm_core.Store on real databases: SQLite files and (when reachable) PostgreSQL."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from crm_core import Conflict, InvalidInput, NotFound, Store
from tests.crm_fixtures import PG_URL, _pg_admin

NOW = 1_750_000_000.0
DAY = 86400.0


async def _arrive(s: Store, call_id: str, at: float = NOW, caller: str = "5555551001") -> None:
    await s.call_arrived(
        call_id, uniqueid=f"{call_id}.u", linkedid=call_id, channel="PJSIP/trunk-0001",
        caller_num=caller, caller_name="Caller", dnis="8005550100", at=at,
    )


# -- customers ------------------------------------------------------------------------------

async def test_upsert_and_lookup_by_any_phone_form(store: Store) -> None:
    c = await store.upsert_customer(
        "ACC1", "Ada Lovelace", ["(555) 123-4567", "+44 20 7946 0958"], email="ada@example.com",
        value_tier="key", monthly_revenue=120.5, account_manager="Alice",
    )
    assert c.phones == ("+15551234567", "+442079460958")
    for form in ("+15551234567", "555.123.4567", "1 555 123 4567", "0044 20 7946 0958"):
        found = await store.find_customer_by_phone(form)
        assert found == c, form
    assert await store.find_customer_by_phone("5559999999") is None
    assert await store.find_customer_by_phone("not a number") is None
    assert await store.find_customer_by_account("ACC1") == c
    assert await store.find_customer_by_account("NOPE") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.name = "x"  # type: ignore[misc]
    json.dumps(c.to_json())


async def test_upsert_updates_in_place_and_replaces_phones(store: Store) -> None:
    first = await store.upsert_customer("ACC1", "Ada", ["5551234567", "5557654321"],
                                        email="a@x", monthly_revenue=10.0)
    second = await store.upsert_customer("ACC1", "Ada L.", ["5557654321", "5550000001"])
    assert second.id == first.id
    assert second.name == "Ada L."
    assert second.email == "a@x" and second.monthly_revenue == 10.0  # None keeps the value
    assert set(second.phones) == {"+15557654321", "+15550000001"}
    assert await store.find_customer_by_phone("5551234567") is None
    with pytest.raises(Conflict):
        await store.upsert_customer("ACC2", "Bob", ["555-765-4321"])
    assert await store.find_customer_by_account("ACC2") is None  # rolled back
    with pytest.raises(InvalidInput):
        await store.upsert_customer("ACC3", "Eve", ["call me"])


async def test_search_customers(store: Store) -> None:
    await store.upsert_customer("A1", "Smith Anna", ["5550000001"])
    await store.upsert_customer("A2", "smithers Bob", ["5550000002"])
    await store.upsert_customer("A3", "Jones 100%_", ["5550000003"])
    names = [c.name for c in await store.search_customers("smith")]
    assert names == ["Smith Anna", "smithers Bob"]
    assert len(await store.search_customers("smith", limit=1)) == 1
    assert await store.search_customers("%") == []
    assert [c.name for c in await store.search_customers("jones 100%")] == ["Jones 100%_"]


async def test_customer_360(store: Store) -> None:
    c = await store.upsert_customer("ACC9", "Grace Hopper", ["5551112222"])
    await store.log_contact(c.id, "email", "inbound", NOW - 40 * DAY, disposition="info")
    await store.log_contact(c.id, "sms", "outbound", NOW - 2 * DAY, notes="reminder")
    await store.log_contact(c.id, "web", "inbound", NOW - DAY, disposition="complaint",
                            notes="double charge")
    for i, (ago, outcome) in enumerate([(5, "answered"), (3, "abandoned"), (2, "answered")]):
        cid = f"call-{i}"
        await _arrive(store, cid, at=NOW - ago * DAY, caller="5551112222")
        await store.call_update(cid, customer_id=c.id)
        await store.call_end(cid, at=NOW - ago * DAY + 60, outcome=outcome, hangup_cause=16,
                             hangup_side="caller", end_reason="normal")
    view = await store.customer_360(c.id, contacts=2, calls=10, now=NOW)
    assert view.customer == c
    assert [x.channel for x in view.last_contacts] == ["web", "sms"]
    assert [x.call_id for x in view.last_calls] == ["call-2", "call-1", "call-0"]
    assert view.churn_reasons == (
        "2 repeat calls within 7 days",
        "1 abandoned call in the last 30 days",
        "1 complaint in the last 30 days",
    )
    assert view.churn_risk == pytest.approx(0.8)
    data = json.loads(json.dumps(view.to_json()))
    assert data["customer"]["phones"] == ["+15551112222"]
    quiet = await store.customer_360(c.id, now=NOW + 100 * DAY)
    assert quiet.churn_risk == 0.0 and quiet.churn_reasons == ()
    with pytest.raises(NotFound):
        await store.customer_360(999_999)
    with pytest.raises(InvalidInput):
        await store.log_contact(c.id, "pigeon", "inbound", NOW)


# -- call log -------------------------------------------------------------------------------

async def test_call_arrived_twice_is_a_noop(store: Store) -> None:
    await _arrive(store, "L1", at=NOW)
    await _arrive(store, "L1", at=NOW + 5, caller="999")
    assert await store.count_calls() == 1
    call = await store.get_call("L1")
    assert call is not None
    assert call.arrived_at == pytest.approx(NOW) and call.caller_num == "5555551001"
    assert call.outcome == "in_progress" and call.offers == 0
    assert await store.get_call("nope") is None


async def test_call_update_before_arrival_is_kept(store: Store) -> None:
    await store.call_update("L2", queue="support", queued_at=NOW + 10,
                            ivr_path=["main", "billing"], skills=("billing", "en"))
    await _arrive(store, "L2", at=NOW)
    await store.call_update("L2", offers=2, agent_id="1001", answered_at=NOW + 30)
    call = await store.get_call("L2")
    assert call is not None and await store.count_calls() == 1
    assert call.queue == "support" and call.ivr_path == "main/billing"
    assert call.skills == "billing,en" and call.caller_num == "5555551001"
    assert call.arrived_at == pytest.approx(NOW)
    assert call.queued_at == pytest.approx(NOW + 10)
    assert call.offers == 2 and call.agent_id == "1001"
    with pytest.raises(InvalidInput):
        await store.call_update("L2", no_such_column=1)


async def test_call_end_twice_keeps_one_row(store: Store) -> None:
    await _arrive(store, "L3", at=NOW)
    await store.call_update("L3", queued_at=NOW + 10, answered_at=NOW + 25, agent_id="1001")
    await store.call_end("L3", at=NOW + 85, outcome="answered", hangup_cause=16,
                         hangup_side="agent", end_reason="normal")
    await store.call_end("L3", at=NOW + 99, outcome="abandoned", hangup_cause="17",
                         hangup_side="caller", end_reason="late", disposition="resolved")
    assert await store.count_calls() == 1
    call = await store.get_call("L3")
    assert call is not None
    assert call.ended_at == pytest.approx(NOW + 85) and call.outcome == "answered"
    assert call.hangup_cause == "16" and call.hangup_side == "agent"
    assert call.end_reason == "normal"
    assert call.disposition == "resolved"  # was empty: filled
    assert call.talk_s == pytest.approx(60.0) and call.wait_s == pytest.approx(15.0)


async def test_call_end_without_arrival_and_abandoned_wait(store: Store) -> None:
    await store.call_end("L4", at=NOW + 40, outcome="abandoned", hangup_cause=16,
                         hangup_side="caller", end_reason="caller_hangup", queued_at=NOW + 5)
    await _arrive(store, "L4", at=NOW)
    call = await store.get_call("L4")
    assert call is not None and await store.count_calls() == 1
    assert call.outcome == "abandoned" and call.arrived_at == pytest.approx(NOW)
    assert call.wait_s == pytest.approx(35.0) and call.talk_s is None
    with pytest.raises(InvalidInput):
        await store.call_end("L5", at=NOW, outcome="exploded")


async def test_call_event_dedup(store: Store) -> None:
    assert await store.call_event("L6", "queued", NOW + 1, {"queue": "support"})
    assert not await store.call_event("L6", "queued", NOW + 1, {"queue": "support"})
    assert await store.call_event("L6", "offered", NOW + 2, {"agent": "1001"}, dedup_key="o1")
    assert not await store.call_event("L6", "offered", NOW + 3, {"agent": "1001"},
                                      dedup_key="o1")
    assert await store.call_event("L6", "queued", NOW + 4, {"queue": "sales"})
    assert await store.call_event("L7", "queued", NOW + 1, {"queue": "support"})
    events = await store.call_events("L6")
    assert [(k, at - NOW, d) for k, at, d in events] == [
        ("queued", pytest.approx(1.0), {"queue": "support"}),
        ("offered", pytest.approx(2.0), {"agent": "1001"}),
        ("queued", pytest.approx(4.0), {"queue": "sales"}),
    ]
    assert await store.count_calls() == 2  # events create the call row (write-ahead)


async def test_200_concurrent_call_logs(store: Store) -> None:
    async def one(i: int) -> None:
        cid = f"C{i:04d}"
        # Milestones interleaved and partly out of order, some duplicated.
        if i % 3 == 0:
            await store.call_update(cid, queue="support", queued_at=NOW + i + 1)
        await _arrive(store, cid, at=NOW + i)
        await store.call_event(cid, "arrived", NOW + i, {"i": i})
        await store.call_event(cid, "arrived", NOW + i, {"i": i})
        await store.call_update(cid, answered_at=NOW + i + 3, agent_id=f"10{i % 10:02d}")
        await store.call_end(cid, at=NOW + i + 10, outcome="answered", hangup_cause=16,
                             hangup_side="caller", end_reason="normal")
        if i % 2 == 0:
            await store.call_end(cid, at=NOW + i + 11, outcome="answered", hangup_cause=16,
                                 hangup_side="caller", end_reason="normal")

    results = await asyncio.gather(*(one(i) for i in range(200)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert await store.count_calls() == 200
    calls = await store.list_calls()
    assert len(calls) == 200 and all(c.outcome == "answered" for c in calls)
    assert all(c.talk_s == pytest.approx(7.0) for c in calls)
    assert [c.call_id for c in calls] == [f"C{i:04d}" for i in range(200)]
    for c in calls[:20]:
        assert len(await store.call_events(c.call_id)) == 1


async def test_list_calls_filters(store: Store) -> None:
    for i, (agent, outcome) in enumerate([("1001", "answered"), ("1002", "answered"),
                                          (None, "abandoned"), ("1001", "answered")]):
        cid = f"F{i}"
        await _arrive(store, cid, at=NOW + i * 100)
        if agent:
            await store.call_update(cid, agent_id=agent, answered_at=NOW + i * 100 + 5)
        await store.call_end(cid, at=NOW + i * 100 + 50, outcome=outcome, hangup_cause=16,
                             hangup_side="caller", end_reason="normal")
    assert [c.call_id for c in await store.list_calls(agent_id="1001")] == ["F0", "F3"]
    assert [c.call_id for c in await store.list_calls(outcome="abandoned")] == ["F2"]
    got = await store.list_calls(since=NOW + 100, until=NOW + 300)
    assert [c.call_id for c in got] == ["F1", "F2"]
    assert len(await store.list_calls(limit=2)) == 2
    json.dumps([c.to_json() for c in got])


# -- agents and users -----------------------------------------------------------------------

async def test_agents_and_state_history(store: Store) -> None:
    a = await store.upsert_agent("1001", "Alice", "PJSIP/1001", {"billing": 7, "en": 10})
    assert a.skills == (("billing", 7), ("en", 10))
    a = await store.upsert_agent("1001", "Alice B", "PJSIP/1001", {"sales": 3})
    assert a.name == "Alice B" and a.skills == (("sales", 3),)
    with pytest.raises(InvalidInput):
        await store.upsert_agent("1002", "Bob", None, {"billing": 11})
    await store.record_agent_state("1001", "ready", None, NOW)
    await store.record_agent_state("1001", "on_call", None, NOW + 5, call_id="L1")
    await store.record_agent_state("1001", "not_ready", "RONA", NOW + 50)
    states = await store.agent_states("1001")
    assert [(s, r) for s, r, _ in states] == [("ready", None), ("on_call", None),
                                              ("not_ready", "RONA")]


async def test_users_and_passwords(store: Store) -> None:
    u = await store.create_user("alice", "s3cret!", "agent", agent_id="1001")
    assert (u.username, u.role, u.agent_id) == ("alice", "agent", "1001")
    assert await store.verify_user("alice", "s3cret!") == u
    assert await store.verify_user("alice", "wrong") is None
    assert await store.verify_user("nobody", "s3cret!") is None
    assert await store.get_user("alice") == u
    assert await store.get_user("nobody") is None
    with pytest.raises(Conflict):
        await store.create_user("alice", "other", "admin")
    with pytest.raises(InvalidInput):
        await store.create_user("bob", "pw", "emperor")
    async with store._read() as s:  # the stored form, never the password
        stored = (await s.execute(text("SELECT password_hash FROM users"))).scalar_one()
    parts = stored.split("$")
    assert parts[0] == "scrypt" and len(parts) == 6 and "s3cret" not in stored


# -- demo data ------------------------------------------------------------------------------

async def test_seed_demo_is_idempotent(store: Store) -> None:
    assert await store.seed_demo(50) == 50
    assert await store.seed_demo(50) == 50
    first = await store.find_customer_by_account("ACC000001")
    assert first is not None and first.phones == ("+15555551001",)
    fifth = await store.find_customer_by_phone("555-655-1005")
    assert fifth is not None and fifth.account_no == "ACC000005" and len(fifth.phones) == 2
    customers = [await store.find_customer_by_account(f"ACC{i:06d}") for i in range(1, 51)]
    tiers = [c.value_tier for c in customers if c is not None]
    assert tiers.count("key") == 10 and {"standard", "basic"} <= set(tiers)
    key = [c for c in customers if c is not None and c.value_tier == "key"]
    rest = [c for c in customers if c is not None and c.value_tier != "key"]
    assert all(c.account_manager for c in key)
    assert min(c.monthly_revenue for c in key) > max(c.monthly_revenue for c in rest)
    view = await store.customer_360(customers[27].id)  # type: ignore[union-attr]
    assert {x.channel for x in view.last_contacts} >= {"email", "web"}
    assert view.churn_reasons  # ACC000028: email, web and a complaint
    n_contacts = len(view.last_contacts)
    assert await store.seed_demo(50) == 50
    again = await store.customer_360(customers[27].id)  # type: ignore[union-attr]
    assert len(again.last_contacts) == n_contacts


# -- SQLite specifics and layering ----------------------------------------------------------

async def test_sqlite_pragmas_and_parent_dir(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "crm.db"
    async with Store.open(f"sqlite+aiosqlite:///{path}") as s, s.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
        assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 1
    assert path.exists()
    store = await Store.open(f"sqlite+aiosqlite:///{path}", create=False)
    try:
        assert await store.count_calls() == 0
    finally:
        await store.close()


async def test_two_stores_on_one_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    async with Store.open(url) as a, Store.open(url) as b:
        await asyncio.gather(*(
            (a if i % 2 else b).call_end(f"X{i}", at=NOW, outcome="failed")
            for i in range(60)
        ))
        assert await a.count_calls() == 60


def test_crm_core_imports_no_other_project_package() -> None:
    forbidden = {"cti", "ivr", "acd", "screen_pop", "recordings"}
    root = Path(__file__).resolve().parent.parent / "crm_core"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path}: imports {name}"


async def test_pg_fast_reads_unreachable_server_is_a_sqlalchemy_error() -> None:
    """The asyncpg read path fails like the engine does (callers catch SQLAlchemyError)."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from crm_core.db import make_engine, pg_reads
    from crm_core.models import Customer

    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/test", schema="s1")
    reads = pg_reads(engine)
    assert reads is not None
    with pytest.raises(SQLAlchemyError):
        await reads.fetch_many([(select(Customer.id), {})])
    await reads.close()
    await engine.dispose()
    assert pg_reads(make_engine("sqlite+aiosqlite:///:memory:")) is None


async def test_ids_out_of_range_are_not_found_on_both_engines(store: Store) -> None:
    assert await store.get_customer(2**40) is None
    with pytest.raises(NotFound):
        await store.customer_360(-(2**40))


async def test_pg_fast_reads_take_the_urls_options() -> None:
    """``?ssl=disable`` (and SQLAlchemy-only options) in the URL reach asyncpg as connect
    arguments, not as server settings; a closed store's fast path does not reopen."""
    from sqlalchemy.exc import SQLAlchemyError

    admin = await _pg_admin()
    schema = f"crm_test_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in PG_URL else "?"
    try:
        store = await Store.open(PG_URL + sep + "ssl=disable&prepared_statement_cache_size=50", schema=schema)
        c = await store.upsert_customer("U1", "Url Options", ["5551230000"])
        assert (await store.find_customer_by_phone("5551230000")) == c
        assert (await store.customer_360(c.id)).customer == c
        await store.close()
        with pytest.raises(SQLAlchemyError):
            await store.find_customer_by_phone("5551230000")
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
