"""Customer CSV import/export (crm_core.csvio) and ``cti customers``: real SQLite files, the
PostgreSQL fixture when reachable, and the CLI as a subprocess."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from crm_core import Store
from crm_core.csvio import (
    COLUMNS,
    CsvHeaderError,
    CsvRows,
    Reject,
    export_rows,
    import_records,
    parse_header,
    validate_rows,
)

ROOT = Path(__file__).resolve().parent.parent
HEADER = ",".join(COLUMNS)

# line numbers count the header as line 1
MALFORMED = f"""{HEADER}
G1,Good One,(555) 201-0001;+44 20 7946 0001,one@example.com,residential,basic,10.5,3,
G2,Good Two,5552010002|5552010003,,enterprise,key,0,0,Alice
B3,Bad Phone,555-CALL-NOW,,,,1,1,
B4,,5552010004,,,,1,1,
B5,Negative,5552010005,,,,-0.01,1,
G1,Duplicate,5552010006,,,,1,1,
B7,Bad Email,5552010007,not-an-email,,,1,1,
B8,Short,5552010008

B10,Tenure,5552010010,,,,1,1.5,
B11,Many,5552010011,bad@,,,abc,-2,
"""


def _rows(text: str) -> tuple[object, CsvRows]:
    rows = CsvRows(io.StringIO(text))
    return parse_header(next(rows)[1]), rows


async def _import(s: Store, text: str) -> tuple[str, list[Reject]]:
    rejects: list[Reject] = []
    header, rows = _rows(text)
    stats = await import_records(s, header, rows, batch_size=3, on_reject=rejects.append)  # type: ignore[arg-type]
    return stats.line(), rejects


async def _export(s: Store) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    async for fields in export_rows(s, chunk=2):
        w.writerow(fields)
    return out.getvalue()


def _problems(rejects: list[Reject]) -> dict[int, list[tuple[str, str]]]:
    return {r.line: [(p.column, p.reason) for p in r.problems] for r in rejects}


# -- pure -------------------------------------------------------------------------------------

def test_validation_reports_each_bad_row_with_line_column_and_reason() -> None:
    header, rows = _rows(MALFORMED)
    records, rejects = validate_rows(header, rows)  # type: ignore[arg-type]
    assert [(r.line, r.account_no, r.phones) for r in records] == [
        (2, "G1", ("+15552010001", "+442079460001")),
        (3, "G2", ("+15552010002", "+15552010003")),
    ]
    assert records[1].account_manager == "Alice" and records[1].email is None
    assert records[0].monthly_revenue == 10.5 and records[0].tenure_months == 3
    got = _problems(rejects)
    assert got[4] == [("phones", "not a phone number: '555-CALL-NOW'")]
    assert got[5] == [("name", "required")]
    assert got[6] == [("monthly_revenue", "must not be negative: '-0.01'")]
    assert got[7] == [("account_no", "duplicate of line 2 in this file")]
    assert got[8] == [("email", "not an email address: 'not-an-email'")]
    assert got[9] == [("(row)", "expected 9 fields, got 3")]
    assert 10 not in got  # the blank line is skipped, but still counted
    assert got[11] == [("tenure_months", "not a whole number of months: '1.5'")]
    assert [c for c, _ in got[12]] == ["email", "monthly_revenue", "tenure_months"]
    assert len(rejects) == 8


def test_header_rules() -> None:
    h = parse_header(["\ufeffAccount_No ", "NAME", "notes"])
    assert h.index == {"account_no": 0, "name": 1} and h.unknown == ("notes",)
    with pytest.raises(CsvHeaderError, match="name"):
        parse_header(["account_no", "phones"])
    with pytest.raises(CsvHeaderError, match="twice"):
        parse_header(["account_no", "name", "Name"])


def test_quoted_fields_and_multiline_records_keep_their_start_line() -> None:
    text = f'{HEADER}\nQ1,"Okafor, Omar",5552010001,,,,1,1,\nQ2,"Line\nbreak",x,,,,1,1,\n'
    header, rows = _rows(text)
    records, rejects = validate_rows(header, rows)  # type: ignore[arg-type]
    assert records[0].name == "Okafor, Omar"
    assert rejects[0].line == 3 and rejects[0].problems[0].column == "phones"


# -- on a store (SQLite and PostgreSQL) -------------------------------------------------------

async def test_import_good_rows_and_reject_the_rest(store: Store) -> None:
    line, rejects = await _import(store, MALFORMED)
    assert line == "imported=2 updated=0 rejected=8"
    assert [r.line for r in rejects] == [4, 5, 6, 7, 8, 9, 11, 12]
    g1 = await store.find_customer_by_phone("0044 20 7946 0001")
    assert g1 is not None and g1.account_no == "G1" and g1.monthly_revenue == 10.5
    assert await store.find_customer_by_account("B3") is None


async def test_import_is_idempotent(store: Store) -> None:
    text = (ROOT / "config" / "sample_customers.csv").read_text()
    assert (await _import(store, text))[0] == "imported=20 updated=0 rejected=0"
    before = await _export(store)
    assert (await _import(store, text))[0] == "imported=0 updated=20 rejected=0"
    assert await _export(store) == before


async def test_update_semantics(store: Store) -> None:
    await store.upsert_customer("U1", "Uma", ["5552020001", "5552020002"], email="u@example.com",
                                segment="enterprise", monthly_revenue=50.0, tenure_months=9)
    # only name + phones columns: the rest is kept; phones are replaced as a set
    line, _ = await _import(store, "account_no,name,phones\nU1,Uma B.,5552020002;5552020003\n")
    assert line == "imported=0 updated=1 rejected=0"
    c = await store.find_customer_by_account("U1")
    assert c is not None and c.name == "Uma B." and c.email == "u@example.com"
    assert c.segment == "enterprise" and c.monthly_revenue == 50.0
    assert set(c.phones) == {"+15552020002", "+15552020003"}
    assert await store.find_customer_by_phone("5552020001") is None
    # a present but empty cell clears the field
    await _import(store, "account_no,name,email,monthly_revenue\nU1,Uma B.,,\n")
    c = await store.find_customer_by_account("U1")
    assert c is not None and c.email is None and c.monthly_revenue == 0.0
    assert len(c.phones) == 2  # no phones column: phones kept


async def test_phone_of_another_customer_rejects_the_row_like_upsert_customer(store: Store) -> None:
    await store.upsert_customer("OWNER", "Owner", ["5552030001"])
    text = (f"{HEADER}\n"
            "T1,Thief,5552030001,,,,1,1,\n"     # held in the store by OWNER
            "T2,First,5552030002,,,,1,1,\n"
            "T3,Second,5552030002,,,,1,1,\n"    # T2 (same batch) holds it now
            "OWNER,Owner,5552030009,,,,1,1,\n"  # OWNER lets 5552030001 go ...
            "T5,Heir,5552030001,,,,1,1,\n"      # ... so it is free from here on
            "T6,Late,5552030002,,,,1,1,\n")     # next batch: T2 holds it in the store
    line, rejects = await _import(store, text)
    assert line == "imported=2 updated=1 rejected=3"
    got = _problems(rejects)
    assert got[2] == [("phones", "+15552030001 belongs to another customer (account OWNER)")]
    assert got[4] == [("phones", "+15552030002 belongs to another customer (account T2)")]
    assert got[7] == [("phones", "+15552030002 belongs to another customer (account T2)")]
    heir = await store.find_customer_by_phone("5552030001")
    assert heir is not None and heir.account_no == "T5"


async def test_export_then_import_into_an_empty_store_round_trips(store: Store, tmp_path: Path) -> None:
    await _import(store, (ROOT / "config" / "sample_customers.csv").read_text())
    await store.upsert_customer("X1", "Xavier \"X\", Jr.", ["+1 555 204 0001"], email="x@example.com",
                                value_tier="gold", monthly_revenue=0.1 + 0.2, tenure_months=7)
    exported = await _export(store)
    assert exported.splitlines()[0] == HEADER and len(exported.splitlines()) == 22
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'copy.db'}") as copy:
        assert (await _import(copy, exported))[0] == "imported=21 updated=0 rejected=0"
        assert await _export(copy) == exported
        for acc in ("SMP0001", "SMP0011", "X1"):
            a, b = await store.find_customer_by_account(acc), await copy.find_customer_by_account(acc)
            assert a is not None and b is not None
            assert {**a.to_json(), "id": 0} == {**b.to_json(), "id": 0}


# -- the CLI ----------------------------------------------------------------------------------

def _cti(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "callcenter.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, check=False, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})


def test_cli_import_report_show_and_export(tmp_path: Path) -> None:
    db = str(tmp_path / "crm.db")
    bad = tmp_path / "bad.csv"
    bad.write_text(MALFORMED)
    r = _cti("customers", "import", str(bad), "--db", db, "--report", str(tmp_path / "rej.csv"),
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "imported=2 updated=0 rejected=8"
    assert "rejected line 4: phones: not a phone number: '555-CALL-NOW'" in r.stderr
    assert "rejected line 9: expected 9 fields, got 3" in r.stderr
    with open(tmp_path / "rej.csv", newline="") as f:
        report = list(csv.DictReader(f))
    assert [(x["line"], x["column"]) for x in report][:3] == [
        ("4", "phones"), ("5", "name"), ("6", "monthly_revenue")]
    assert len(report) == 10  # line 12 has three problems

    r = _cti("customers", "show", "+1 (555) 201-0002", "--json", "--db", db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    view = json.loads(r.stdout)
    assert view["customer"]["account_no"] == "G2" and view["last_calls"] == []
    assert set(view) == {"customer", "last_contacts", "last_calls", "churn_risk", "churn_reasons"}
    r = _cti("customers", "show", "G1", "--json", "--db", db, cwd=tmp_path)
    assert json.loads(r.stdout)["customer"]["phones"] == ["+15552010001", "+442079460001"]
    r = _cti("customers", "show", "5559999999", "--db", db, cwd=tmp_path)
    assert r.returncode == 1 and "no customer" in r.stderr and r.stdout == ""

    r = _cti("customers", "export", "--db", db, "-o", str(tmp_path / "out.csv"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cti("customers", "import", str(tmp_path / "out.csv"), "--db", str(tmp_path / "2.db"),
             cwd=tmp_path)
    assert r.stdout.splitlines()[-1] == "imported=2 updated=0 rejected=0"
    again = _cti("customers", "export", "--db", str(tmp_path / "2.db"), cwd=tmp_path)
    assert again.stdout == (tmp_path / "out.csv").read_text()


def test_cli_refuses_unreadable_files(tmp_path: Path) -> None:
    db = str(tmp_path / "crm.db")
    r = _cti("customers", "import", str(tmp_path / "missing.csv"), "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "cannot read" in r.stderr
    (tmp_path / "h.csv").write_text("account_no,phones\nA1,5551234567\n")
    r = _cti("customers", "import", str(tmp_path / "h.csv"), "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "lacks required column(s) name" in r.stderr
    (tmp_path / "bin.csv").write_bytes(b"account_no,name\nA1,\xff\xfe\n")
    r = _cti("customers", "import", str(tmp_path / "bin.csv"), "--db", db, cwd=tmp_path)
    assert r.returncode == 2 and "cannot read" in r.stderr
    r = _cti("customers", "show", "A1", "--db", str(tmp_path / "none.db"), cwd=tmp_path)
    assert r.returncode == 2 and "no database" in r.stderr
    assert not (tmp_path / "none.db").exists()


def test_cli_erase_asks_then_erases_and_export_leaves_the_person_out(tmp_path: Path) -> None:
    db = str(tmp_path / "crm.db")
    bad = tmp_path / "bad.csv"
    bad.write_text(MALFORMED)
    assert _cti("customers", "import", str(bad), "--db", db, cwd=tmp_path).returncode == 0
    r = _cti("customers", "erase", "G1", "--db", db, cwd=tmp_path)
    assert r.returncode == 1 and "would erase" in r.stderr and "--yes" in r.stderr
    assert _cti("customers", "show", "G1", "--db", db, cwd=tmp_path).returncode == 0  # still there
    r = _cti("customers", "erase", "+44 20 7946 0001", "--yes", "--db", db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("erased customer=") and "calls=0" in r.stdout
    for number in ("G1", "+15552010001", "+442079460001"):
        r = _cti("customers", "show", number, "--db", db, cwd=tmp_path)
        assert r.returncode == 1 and "no customer" in r.stderr
    out = _cti("customers", "export", "--db", db, cwd=tmp_path).stdout
    assert "G1" not in out and "erased" not in out and "G2" in out
    assert _cti("customers", "erase", "G1", "--yes", "--db", db, cwd=tmp_path).returncode == 1


async def test_a_large_import_refreshes_the_planner_statistics(store: Store) -> None:
    """PostgreSQL: after 10,000+ rows the customer tables are ANALYZEd (the indexes stay in use)."""
    lines = [HEADER] + [f"L{i:05d},Customer {i},+1 555 3{i:06d},,,,1,1," for i in range(10_000)]
    rows = CsvRows(io.StringIO("\n".join(lines) + "\n"))
    header = parse_header(next(rows)[1])
    stats = await import_records(store, header, rows)
    assert (stats.imported, stats.rejected) == (10_000, 0)
    if store.dialect != "postgresql":
        return
    from sqlalchemy import text

    async with store.engine.connect() as conn:
        got = (await conn.execute(text(
            "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname IN ('customers', 'customer_phones')"))).all()
    assert sorted(got) == [("customer_phones", True), ("customers", True)]
