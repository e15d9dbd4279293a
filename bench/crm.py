"""CRM store figures, SQLite and PostgreSQL side by side.

* lookup by phone among N customers (default 1,000,000; 50,000 with ``--quick``): p50/p99 ms
  of ``Store.find_customer_by_phone`` for random known numbers (any written form);
* the 360 view of a customer with contact and call history: p50/p99 ms;
* call-log writes at 200 new calls/s (each call's ~14 domain events through the real
  CallLogWriter): calls/s sustained, rows lost or duplicated, the writer's backlog at the end;
* CSV import (the ``cti customers import`` path: parse, validate, normalise phones, upsert by
  account number in batches) of 100,000 new customers (20,000 with ``--quick``) into that base,
  rows/s, then the same file again (every row an update).

A table of the figures, SQLite and PostgreSQL side by side, closes the run.

The base is loaded with bulk inserts (not the measured path).  PostgreSQL at CTI_BENCH_PG_URL
(default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``) in a scratch schema, dropped
afterwards; skipped with the reason when unreachable.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Table

from bench.common import Options, Report

PG_URL = os.environ.get("CTI_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
CHUNK = 20_000


def _phone(i: int) -> str:
    return f"+1{2000000000 + i}"


async def _load(store: Any, n: int) -> None:
    from crm_core.models import Customer, CustomerPhone, utcnow

    now = utcnow()
    cust, phones = Customer.__table__, CustomerPhone.__table__
    assert isinstance(cust, Table) and isinstance(phones, Table)
    for start in range(0, n, CHUNK):
        ids = range(start + 1, min(n, start + CHUNK) + 1)
        async with store.engine.begin() as conn:
            await conn.execute(cust.insert(), [
                {"id": i, "account_no": f"A{i:08d}", "name": f"Customer {i}", "monthly_revenue": float(i % 997),
                 "tenure_months": i % 120, "created_at": now, "updated_at": now, "erased": False} for i in ids])
            await conn.execute(phones.insert(), [{"customer_id": i, "e164": _phone(i)} for i in ids])
    if store.dialect == "postgresql":  # explicit ids: move the sequences past them
        from sqlalchemy import text

        async with store.engine.begin() as conn:
            for table in ("customers", "customer_phones"):
                await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                        f"(SELECT max(id) FROM {table}))"))
            await conn.execute(text("ANALYZE customers, customer_phones"))  # as autovacuum would


def _pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def _lookups(store: Any, n: int, report: Report, impl: str, samples: int) -> None:
    rng = random.Random(1)
    forms: list[Callable[[str], str]] = [
        lambda d: d, lambda d: d[2:], lambda d: f"({d[2:5]}) {d[5:8]}-{d[8:]}", lambda d: f"1-{d[2:]}"]
    lat: list[float] = []
    for _ in range(samples):
        i = rng.randint(1, n)
        raw = rng.choice(forms)(_phone(i))
        t0 = time.perf_counter()
        c = await store.find_customer_by_phone(raw)
        lat.append((time.perf_counter() - t0) * 1000)
        assert c is not None and c.id == i, (raw, c)
    report.add("crm_lookup_phone_p50_ms", impl, statistics.median(lat), lower_is_better=True)
    report.add("crm_lookup_phone_p99_ms", impl, _pct(lat, 99), lower_is_better=True)
    # the 360 view of customers with history (10 contacts, 10 calls each)
    picked = [rng.randint(1, n) for _ in range(20)]
    now = time.time()
    for cid in picked:
        for k in range(10):
            await store.log_contact(cid, ("email", "sms", "web", "fax", "phone")[k % 5], "inbound",
                                    now - k * 3600, disposition="complaint" if k == 3 else "info")
            call = f"b-{cid}-{k}"
            await store.call_arrived(call, uniqueid=call, linkedid=call, channel="c", caller_num=_phone(cid)[2:],
                                     caller_name="x", dnis="1", at=now - k * 7200)
            await store.call_update(call, customer_id=cid)
            await store.call_end(call, at=now - k * 7200 + 60, outcome="answered", hangup_cause=16,
                                 hangup_side="caller", end_reason="hangup")
    lat = []
    for _ in range(samples // 4):
        cid = rng.choice(picked)
        t0 = time.perf_counter()
        v = await store.customer_360(cid)
        lat.append((time.perf_counter() - t0) * 1000)
        assert len(v.last_contacts) == 10 and len(v.last_calls) == 10
    report.add("crm_360_p50_ms", impl, statistics.median(lat), lower_is_better=True)
    report.add("crm_360_p99_ms", impl, _pct(lat, 99), lower_is_better=True)


async def _calllog(store: Any, report: Report, impl: str, seconds: float, rate: float = 200.0) -> None:
    from acd.calllog import CallLogWriter
    from cti.bus import Bus
    from cti.domain import (
        AgentStateChanged,
        CallAnswered,
        CallArrived,
        CallBridged,
        CallEnded,
        CallHeld,
        CallOffered,
        CallQueued,
        Disposition,
        IvrStep,
    )

    bus = Bus()
    writer = CallLogWriter(bus, store)
    await writer.start()
    run = uuid.uuid4().hex[:6]
    n = int(seconds * rate)
    t_start = time.perf_counter()
    live: list[tuple[str, float]] = []
    for i in range(n):  # every call arrives, waits, is answered and ends within ~1 s
        cid, t = f"w{run}-{i}", time.time()
        bus.publish(CallArrived(cid, "ch", cid, "5550001", "X", "5551000", t))
        for node in ("greeting", "lookup", "menu"):
            bus.publish(IvrStep(cid, node, "", t))
        bus.publish(CallQueued(cid, cid, "ch", "support", ("support",), 0, "5550001", "X", None, ("menu",), "2", t))
        bus.publish(CallHeld(cid, "ch", t))
        live.append((cid, t))
        while live and t - live[0][1] > 1.0:
            old, _ = live.pop(0)
            bus.publish(CallOffered(old, old, "1001", 1, "support", "", "", None, "2", "f.wav", t))
            bus.publish(AgentStateChanged("1001", "ringing", "", old, t))
            bus.publish(CallBridged(old, "1001", "b", t))
            bus.publish(CallAnswered(old, "1001", 1.0, t))
            bus.publish(CallEnded(old, 16, "Normal Clearing", "caller", "hangup", t))
            bus.publish(Disposition(old, "1001", "resolved", "", t))
        delay = t_start + (i + 1) / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
    for old, _ in live:
        bus.publish(CallEnded(old, 16, "Normal Clearing", "caller", "hangup", time.time()))
    sent = time.perf_counter() - t_start
    await writer.drain()
    total = time.perf_counter() - t_start
    await writer.stop()
    rows = [c for c in await store.list_calls(limit=n * 2) if c.call_id.startswith(f"w{run}-")]
    closed = sum(1 for c in rows if c.ended_at is not None)
    report.add("crm_calllog_calls_per_s", impl, n / total)
    report.add("crm_calllog_backlog_s_at_end", impl, total - sent, lower_is_better=True)
    report.add("crm_calllog_rows_lost_or_dup", impl, float(abs(len(rows) - n) + (n - closed)), lower_is_better=True)


def _write_csv(path: Path, n: int) -> None:
    rng = random.Random(7)
    segments = ("residential", "business", "enterprise")
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("account_no,name,phones,email,segment,value_tier,monthly_revenue,tenure_months,account_manager\n")
        for i in range(n):
            phone = f"(555) {i // 10000 % 1000:03d}-{i % 10000:04d}" if i % 2 else f"+44 20 7{i:07d}"
            f.write(f"CSV{i:07d},Customer {i},{phone},c{i}@example.com,{rng.choice(segments)},,"
                    f"{rng.uniform(5, 500):.2f},{rng.randrange(240)},\n")


async def _csv_import(store: Any, report: Report, impl: str, path: Path) -> None:
    from crm_core.csvio import CsvRows, import_records, parse_header

    for label in ("crm_csv_import_rows_per_s", "crm_csv_reimport_rows_per_s"):
        with path.open(encoding="utf-8", newline="") as f:
            rows = CsvRows(f)
            header = parse_header(next(rows)[1])
            t0 = time.perf_counter()
            stats = await import_records(store, header, rows)
            elapsed = time.perf_counter() - t0
        if stats.rejected:
            report.note(f"crm {impl}: {stats.rejected} CSV rows rejected (the bench file should have none)")
        report.add(label, impl, stats.rows / elapsed)


async def _one(url: str, impl: str, report: Report, opts: Options, schema: str | None = None,
               csv_path: Path | None = None) -> None:
    from crm_core.store import Store

    n = 50_000 if opts.quick else 1_000_000
    async with Store.open(url, schema=schema) as store:
        t0 = time.perf_counter()
        await _load(store, n)
        report.note(f"crm {impl}: {n} customers loaded in {time.perf_counter() - t0:.1f} s")
        await _lookups(store, n, report, impl, samples=400 if opts.quick else 2000)
        await _calllog(store, report, impl, seconds=2.0 if opts.quick else 10.0)
        if csv_path is not None:
            await _csv_import(store, report, impl, csv_path)


async def _main(report: Report, opts: Options) -> None:
    with tempfile.TemporaryDirectory(prefix="cti-bench-") as tmp:
        csv_path = Path(tmp) / "customers.csv"
        _write_csv(csv_path, 20_000 if opts.quick else 100_000)
        await _one(f"sqlite+aiosqlite:///{Path(tmp) / 'crm.db'}", "sqlite", report, opts, csv_path=csv_path)
        try:
            await _pg(report, opts, csv_path)
        finally:
            _table(report)


async def _pg(report: Report, opts: Options, csv_path: Path) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = await asyncpg.connect(dsn, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        report.note(f"crm postgres skipped: not reachable at {make_url(PG_URL).render_as_string()}: {e!r}")
        return
    schema = f"cti_bench_{uuid.uuid4().hex[:8]}"
    try:
        await _one(PG_URL, "postgres", report, opts, schema=schema, csv_path=csv_path)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


GOALS = {"crm_lookup_phone_p99_ms": "< 2", "crm_360_p99_ms": "< 10", "crm_csv_import_rows_per_s": ">= 20000 (SQLite)",
         "crm_calllog_rows_lost_or_dup": "0"}


def _table(report: Report) -> None:
    from bench.common import fmt

    rows = [(m, v) for m, v in report.results.items() if m.startswith("crm_")]
    if not rows:
        return
    report.note("")
    report.note(f"{'metric':<32} {'sqlite':>10} {'postgres':>10}  goal")
    for metric, by in rows:
        cells = [fmt(by[k]) if k in by else "-" for k in ("sqlite", "postgres")]
        report.note(f"{metric:<32} {cells[0]:>10} {cells[1]:>10}  {GOALS.get(metric, '')}".rstrip())


def run(report: Report, opts: Options) -> None:
    asyncio.run(_main(report, opts))
