"""``cti customers import | export | show``: customer CSV files and the customer 360 view.

The file handling lives here; validation and the batched writes are in ``crm_core.csvio``
(see docs/customers-csv.md). ``add_customer_commands`` registers the group on the ``cti``
parser; the settings loader comes from the CLI, so ``--config`` and ``CTI_DATABASE_URL`` pick
the database unless ``--db`` names one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from callcenter.settings import Settings
from callcenter.startup import DB_VIA_FLAG, DB_VIA_SETTINGS, open_store
from crm_core.csvio import (
    ROW,
    CsvHeaderError,
    CsvRows,
    ImportStats,
    Reject,
    export_rows,
    import_records,
    parse_header,
)
from crm_core.dto import CustomerDTO
from crm_core.errors import NotFound
from crm_core.store_erasure import ErasureReport

__all__ = ["add_customer_commands"]

PROGRESS_EVERY = 10_000
STDERR_REJECTS = 1000  # rejected-row lines on stderr; --report FILE gets them all

Loader = Callable[[str | None], Settings]


def db_url(args: argparse.Namespace, load: Loader) -> str:
    """``--db`` (a URL, or a SQLite file path), else the configured ``database.url``."""
    db: str | None = args.db
    if db:
        return db if "://" in db else f"sqlite+aiosqlite:///{db}"
    return load(getattr(args, "config", None)).database.url


def db_via(args: argparse.Namespace) -> str:
    """Where the database of :func:`db_url` was chosen, for an error that names the fix."""
    return DB_VIA_FLAG if args.db else DB_VIA_SETTINGS


def _missing_sqlite(url: str) -> str | None:
    """The path of a SQLite database file that does not exist (reading must not create it)."""
    parsed = make_url(url)
    db = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and db and db != ":memory:" \
            and not db.startswith("file:") and not Path(db).expanduser().exists():
        return db
    return None


def _no_database(cmd: str, path: str) -> int:
    return _fail(cmd, f"no database at {path}; name an existing one with --db, or create it with `cti db upgrade`")


def _fail(cmd: str, message: str, code: int = 2) -> int:
    print(f"cti customers {cmd}: {message}", file=sys.stderr)
    return code


# -- import -----------------------------------------------------------------------------------


class _Reporter:
    """Rejected rows to stderr (the first STDERR_REJECTS) and to the --report CSV file."""

    def __init__(self, report: TextIO | None) -> None:
        self._writer = csv.writer(report) if report is not None else None
        if self._writer is not None:
            self._writer.writerow(["line", "account_no", "column", "reason"])
        self.shown = 0
        self.count = 0

    def __call__(self, r: Reject) -> None:
        self.count += 1
        for p in r.problems:
            if self._writer is not None:
                self._writer.writerow([r.line, r.account_no or "", p.column, p.reason])
            if self.shown < STDERR_REJECTS:
                where = "" if p.column == ROW else f" {p.column}:"
                print(f"rejected line {r.line}:{where} {p.reason}", file=sys.stderr)
                self.shown += 1


def _progress(t0: float) -> Callable[[ImportStats], None]:
    next_at = PROGRESS_EVERY

    def show(stats: ImportStats) -> None:
        nonlocal next_at
        if stats.rows >= next_at:
            rate = stats.rows / max(time.monotonic() - t0, 1e-9)
            print(f"progress: {stats.rows} rows, {rate:.0f} rows/s", file=sys.stderr, flush=True)
            next_at = (stats.rows // PROGRESS_EVERY + 1) * PROGRESS_EVERY

    return show


async def _import(url: str, via: str, path: Path, report: TextIO | None, batch: int) -> int:
    try:
        f = path.open(encoding="utf-8-sig", newline="")
    except OSError as e:
        return _fail("import", f"cannot read {path}: {e.strerror or e}")
    with f:
        rows = CsvRows(f)
        try:
            first = next(rows, None)
            if first is None:
                return _fail("import", f"{path}: empty file, expected a header row")
            header = parse_header(first[1])
        except CsvHeaderError as e:
            return _fail("import", f"{path}: {e}")
        except (UnicodeDecodeError, csv.Error) as e:
            return _fail("import", f"cannot read {path}: {e}")
        if header.unknown:
            print(f"cti customers import: ignoring unknown column(s): {', '.join(header.unknown)}",
                  file=sys.stderr)
        reporter = _Reporter(report)
        t0 = time.monotonic()
        async with open_store(url, via=via) as store:
            try:
                stats = await import_records(store, header, rows, batch_size=batch,
                                             on_reject=reporter, on_progress=_progress(t0))
            except (UnicodeDecodeError, csv.Error) as e:
                return _fail("import", f"cannot read {path} after line {rows.line_num}: {e}"
                             " (the rows before it were imported)")
    elapsed = time.monotonic() - t0
    if reporter.count > reporter.shown:
        print(f"... {reporter.count - reporter.shown} more rejected row problem(s) not shown"
              " (use --report FILE)", file=sys.stderr)
    print(f"{stats.rows} rows in {elapsed:.2f} s ({stats.rows / max(elapsed, 1e-9):.0f} rows/s)",
          file=sys.stderr)
    print(stats.line(), flush=True)
    return 0


def cmd_import(args: argparse.Namespace, load: Loader) -> int:
    url = db_url(args, load)
    if args.batch < 1:
        return _fail("import", "--batch must be >= 1")
    with contextlib.ExitStack() as stack:
        report: TextIO | None = None
        if args.report:
            try:
                report = stack.enter_context(open(args.report, "w", encoding="utf-8", newline=""))
            except OSError as e:
                return _fail("import", f"cannot write report {args.report}: {e.strerror or e}")
        try:
            return asyncio.run(_import(url, db_via(args), Path(args.file), report, args.batch))
        except SQLAlchemyError as e:
            return _fail("import", f"database error: {e.__class__.__name__}: {e.args[0] if e.args else e}"
                         " (the batches before it were imported)", 1)


# -- export -----------------------------------------------------------------------------------


async def _export(url: str, via: str, out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    n = -1
    async with open_store(url, create=False, via=via) as store:
        async for fields in export_rows(store):
            writer.writerow(fields)
            n += 1
    return n


def cmd_export(args: argparse.Namespace, load: Loader) -> int:
    url = db_url(args, load)
    if (missing := _missing_sqlite(url)) is not None:
        return _no_database("export", missing)
    try:
        if args.output in (None, "-"):
            n = asyncio.run(_export(url, db_via(args), sys.stdout))
            sys.stdout.flush()
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                n = asyncio.run(_export(url, db_via(args), out))
    except OSError as e:
        return _fail("export", f"cannot write {args.output or 'stdout'}: {e.strerror or e}")
    except SQLAlchemyError as e:
        return _fail("export", f"database error: {e.__class__.__name__}: {e.args[0] if e.args else e}")
    print(f"exported={n}", file=sys.stderr)
    return 0


# -- show -------------------------------------------------------------------------------------


async def _show(url: str, via: str, number: str) -> dict[str, Any] | None:
    async with open_store(url, create=False, via=via) as store:
        customer = (await store.find_customer_by_account(number)
                    or await store.find_customer_by_phone(number))
        if customer is None:
            return None
        try:
            view = await store.customer_360(customer.id)
        except NotFound:
            return None
        return view.to_json()


def cmd_show(args: argparse.Namespace, load: Loader) -> int:
    url = db_url(args, load)
    if (missing := _missing_sqlite(url)) is not None:
        return _no_database("show", missing)
    try:
        view = asyncio.run(_show(url, db_via(args), args.number))
    except SQLAlchemyError as e:
        return _fail("show", f"database error: {e.__class__.__name__}: {e.args[0] if e.args else e}")
    if view is None:
        return _fail("show", f"no customer with account number or phone {args.number!r}", 1)
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    c = view["customer"]
    print(f"{c['name']} (account {c['account_no']}, id {c['id']})")
    for key in ("phones", "email", "segment", "value_tier", "monthly_revenue", "account_manager"):
        value = ", ".join(c[key]) if key == "phones" else c[key]
        print(f"  {key}: {value if value not in (None, '') else '-'}")
    print(f"  churn risk: {view['churn_risk']} {'; '.join(view['churn_reasons'])}".rstrip())
    print(f"  last calls: {len(view['last_calls'])}, last contacts: {len(view['last_contacts'])}")
    return 0


# -- erase ------------------------------------------------------------------------------------


async def _erase(url: str, via: str, number: str,
                 confirmed: bool) -> tuple[CustomerDTO | None, ErasureReport | None]:
    async with open_store(url, create=False, via=via) as store:
        customer = (await store.find_customer_by_account(number)
                    or await store.find_customer_by_phone(number))
        if customer is None or not confirmed:
            return customer, None
        return customer, await store.erase_customer(customer.id)


def cmd_erase(args: argparse.Namespace, load: Loader) -> int:
    """Erase one customer's personal data (the right to erasure); the call statistics stay."""
    url = db_url(args, load)
    if (missing := _missing_sqlite(url)) is not None:
        return _no_database("erase", missing)
    try:
        customer, report = asyncio.run(_erase(url, db_via(args), args.number, args.yes))
    except SQLAlchemyError as e:
        return _fail("erase", f"database error: {e.__class__.__name__}: {e.args[0] if e.args else e}")
    if customer is None:
        return _fail("erase", f"no customer with account number or phone {args.number!r}", 1)
    if report is None:
        print(f"would erase {customer.name} (account {customer.account_no}, id {customer.id}, "
              f"{len(customer.phones)} phone(s)); run again with --yes to erase", file=sys.stderr)
        return 1
    print(f"erased customer={report.customer_id} calls={report.calls} contacts={report.contacts} "
          f"recordings={report.recordings_deleted}")
    return 0


# -- registration -----------------------------------------------------------------------------


def add_customer_commands(sub: Any, load: Loader) -> argparse.ArgumentParser:
    """Add ``customers {import,export,show,erase}`` to the ``cti`` subparsers ``sub``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "customers", help="import/export customer CSV files, show a customer",
        description="Customer CSV files (docs/customers-csv.md) and the customer 360 view.")
    group = p.add_subparsers(dest="customers_cmd", required=True, metavar="ACTION", help="what to do")

    def db_option(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--db", metavar="URL", default=None,
                        help="database URL, or a SQLite file path (default: database.url)")
        sp.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="the TOML configuration file (default: config/cti.toml)")

    i = group.add_parser("import", help="upsert customers from a CSV file by account number")
    i.add_argument("file", metavar="FILE.csv", help="the CSV file to import (docs/customers-csv.md)")
    i.add_argument("--report", metavar="FILE", help="write the rejected rows to this CSV file")
    i.add_argument("--batch", type=int, default=2000, metavar="ROWS",
                   help="rows per transaction (default %(default)s)")
    db_option(i)
    i.set_defaults(fn=lambda a: cmd_import(a, load))
    e = group.add_parser("export", help="write every customer as CSV (the import format)")
    e.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")
    db_option(e)
    e.set_defaults(fn=lambda a: cmd_export(a, load))
    s = group.add_parser("show", help="the customer 360 view of an account number or phone")
    s.add_argument("number", metavar="NUMBER", help="account number, or phone number in any form")
    s.add_argument("--json", action="store_true", help="print JSON")
    db_option(s)
    s.set_defaults(fn=lambda a: cmd_show(a, load))
    x = group.add_parser("erase", help="erase a customer's personal data (keeps anonymised call statistics)")
    x.add_argument("number", metavar="NUMBER", help="account number, or phone number in any form")
    x.add_argument("--yes", action="store_true", help="really erase (without it, only say who would be)")
    db_option(x)
    x.set_defaults(fn=lambda a: cmd_erase(a, load))
    return p
