"""Customer CSV rows, pure and I/O-free (see docs/customers-csv.md).

:class:`CsvRows`, :func:`parse_header`, :class:`RowValidator` / :func:`validate_rows` turn CSV rows
into :class:`CustomerRecord` values or :class:`Reject` values (line, column, reason);
:func:`export_fields` turns a stored customer back into CSV fields. The store-facing half (batched
import, streaming export) is :mod:`crm_core.csv_store`; :mod:`crm_core.csvio` offers both.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import String

from crm_core.errors import InvalidInput
from crm_core.models import Customer
from crm_core.phone import normalize_phone

__all__ = [
    "COLUMNS",
    "MAX_PHONES",
    "MAX_TENURE",
    "PHONE_SEPARATORS",
    "REQUIRED_COLUMNS",
    "ROW",
    "CsvHeaderError",
    "CsvRows",
    "CustomerRecord",
    "Header",
    "Problem",
    "Reject",
    "RowValidator",
    "export_fields",
    "parse_header",
    "validate_rows",
]

COLUMNS = ("account_no", "name", "phones", "email", "segment", "value_tier",
           "monthly_revenue", "tenure_months", "account_manager")
REQUIRED_COLUMNS = ("account_no", "name")
PHONE_SEPARATORS = ";|"
ROW = "(row)"  # the column named by a problem of the whole row
MAX_PHONES = 20
MAX_TENURE = 2**31 - 1
_PHONE_SPLIT = re.compile(r"[;|]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_TEXT_COLUMNS = ("name", "email", "segment", "value_tier", "account_manager")


def _max_len(column: str) -> int:
    t = Customer.__table__.c[column].type
    assert isinstance(t, String) and t.length is not None
    return t.length


_MAX_LEN = {c: _max_len(c) for c in ("account_no", *_TEXT_COLUMNS)}


class CsvHeaderError(InvalidInput):
    """The header row is missing, lacks a required column or names a column twice."""

    error_id = "csv-header"


@dataclass(frozen=True, slots=True)
class Header:
    """Where each known column sits in a row; ``unknown`` columns are ignored."""

    width: int
    index: dict[str, int]
    unknown: tuple[str, ...]

    def has(self, column: str) -> bool:
        return column in self.index


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One valid row. Fields of columns absent from the header are ``None``."""

    line: int
    account_no: str
    name: str
    phones: tuple[str, ...] | None
    email: str | None
    segment: str | None
    value_tier: str | None
    monthly_revenue: float | None
    tenure_months: int | None
    account_manager: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    column: str
    reason: str


@dataclass(frozen=True, slots=True)
class Reject:
    """A refused row: its 1-based line number in the file (the header is line 1)."""

    line: int
    account_no: str | None
    problems: tuple[Problem, ...]


# -- pure: reading and validating -------------------------------------------------------------


class CsvRows:
    """``(line number where the record starts, fields)`` for each non-blank CSV record of
    ``lines``; ``line_num`` is the last physical line read (for error messages)."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._reader = csv.reader(lines)
        self._last = 0

    @property
    def line_num(self) -> int:
        return self._reader.line_num

    def __iter__(self) -> CsvRows:
        return self

    def __next__(self) -> tuple[int, list[str]]:
        while True:
            fields = next(self._reader)
            start, self._last = self._last + 1, self._reader.line_num
            if fields and not (len(fields) == 1 and not fields[0].strip()):
                return start, fields


def parse_header(fields: Sequence[str]) -> Header:
    """Column names are matched case-insensitively, surrounding blanks and a BOM ignored."""
    names = [f.strip().lstrip("\ufeff").strip().lower() for f in fields]
    index: dict[str, int] = {}
    unknown: list[str] = []
    for i, name in enumerate(names):
        if name in index or (name in unknown and name):
            raise CsvHeaderError(f"column {name!r} appears twice in the header")
        if name in COLUMNS:
            index[name] = i
        else:
            unknown.append(name)
    missing = [c for c in REQUIRED_COLUMNS if c not in index]
    if missing:
        raise CsvHeaderError(
            f"header lacks required column(s) {', '.join(missing)}"
            f" (columns are {', '.join(COLUMNS)})")
    return Header(width=len(names), index=index, unknown=tuple(unknown))


class RowValidator:
    """Validates rows one by one; remembers account numbers to refuse later duplicates.

    Written as one straight pass per row (no per-row closures): it runs 100k+ times a file."""

    def __init__(self, header: Header) -> None:
        self.header = header
        self._seen: dict[str, int] = {}
        ix = header.index
        self._width = header.width
        self._acc = ix["account_no"]
        self._text = tuple((c, ix.get(c), _MAX_LEN[c]) for c in _TEXT_COLUMNS)
        self._phones_at = ix.get("phones")
        self._revenue_at = ix.get("monthly_revenue")
        self._tenure_at = ix.get("tenure_months")

    def check(self, line: int, fields: Sequence[str]) -> CustomerRecord | Reject:
        if len(fields) != self._width:
            acc = fields[self._acc].strip() if len(fields) > self._acc else ""
            return Reject(line, acc or None, (Problem(
                ROW, f"expected {self._width} fields, got {len(fields)}"),))
        problems: list[Problem] = []
        account_no = fields[self._acc].strip()
        if not account_no:
            problems.append(Problem("account_no", "required"))
        elif len(account_no) > _MAX_LEN["account_no"]:
            problems.append(Problem("account_no",
                                    f"longer than {_MAX_LEN['account_no']} characters"))
        elif account_no in self._seen:
            problems.append(Problem("account_no",
                                    f"duplicate of line {self._seen[account_no]} in this file"))
        else:
            self._seen[account_no] = line
        texts: list[str | None] = []
        for column, at, limit in self._text:
            value = fields[at].strip() if at is not None else None
            if value and len(value) > limit:
                problems.append(Problem(column, f"longer than {limit} characters"))
            texts.append(value or None)
        name, email, segment, value_tier, account_manager = texts
        if name is None:
            problems.append(Problem("name", "required"))
        if email is not None and not _EMAIL.fullmatch(email):
            problems.append(Problem("email", f"not an email address: {email!r}"))
        phones = None if self._phones_at is None else _phones(fields[self._phones_at], problems)
        revenue = (None if self._revenue_at is None
                   else _revenue(fields[self._revenue_at].strip(), problems))
        tenure = (None if self._tenure_at is None
                  else _tenure(fields[self._tenure_at].strip(), problems))
        if problems:
            return Reject(line, account_no or None, tuple(problems))
        assert name is not None
        return CustomerRecord(
            line, account_no, name, phones, email, segment, value_tier, revenue, tenure,
            account_manager,
        )


def _phones(value: str, problems: list[Problem]) -> tuple[str, ...]:
    if ";" not in value and "|" not in value:  # the common case: one number
        value = value.strip()
        if not value:
            return ()
        e164 = normalize_phone(value)
        if e164 is None:
            problems.append(Problem("phones", f"not a phone number: {value!r}"))
            return ()
        return (e164,)
    out: list[str] = []
    for part in _PHONE_SPLIT.split(value):
        raw = part.strip()
        if not raw:
            continue
        e164 = normalize_phone(raw)
        if e164 is None:
            problems.append(Problem("phones", f"not a phone number: {raw!r}"))
        elif e164 not in out:
            out.append(e164)
    if len(out) > MAX_PHONES:
        problems.append(Problem("phones", f"more than {MAX_PHONES} phone numbers"))
    return tuple(out)


def _revenue(value: str, problems: list[Problem]) -> float:
    if not value:
        return 0.0
    if not _NUMBER.fullmatch(value):
        problems.append(Problem("monthly_revenue", f"not a number: {value!r}"))
        return 0.0
    number = float(value)
    if not math.isfinite(number):
        problems.append(Problem("monthly_revenue", f"not a finite number: {value!r}"))
    elif number < 0:
        problems.append(Problem("monthly_revenue", f"must not be negative: {value!r}"))
    return number


def _tenure(value: str, problems: list[Problem]) -> int:
    if not value:
        return 0
    if not _INTEGER.fullmatch(value):
        problems.append(Problem("tenure_months", f"not a whole number of months: {value!r}"))
        return 0
    months = int(value)
    if months < 0:
        problems.append(Problem("tenure_months", f"must not be negative: {value!r}"))
    elif months > MAX_TENURE:
        problems.append(Problem("tenure_months", f"too large: {value!r}"))
    return months


def validate_rows(
    header: Header, rows: Iterable[tuple[int, Sequence[str]]],
) -> tuple[list[CustomerRecord], list[Reject]]:
    """Rows in (line number, fields), valid records and rejects out (pure)."""
    validator = RowValidator(header)
    records: list[CustomerRecord] = []
    rejects: list[Reject] = []
    for line, fields in rows:
        result = validator.check(line, fields)
        if isinstance(result, Reject):
            rejects.append(result)
        else:
            records.append(result)
    return records, rejects


# -- pure: writing ---------------------------------------------------------------------------


def export_fields(account_no: str, name: str, phones: Sequence[str], email: str | None,
                  segment: str | None, value_tier: str | None, monthly_revenue: float | None,
                  tenure_months: int | None, account_manager: str | None) -> list[str]:
    """One customer as CSV fields in :data:`COLUMNS` order (pure; re-imports to the same)."""
    return [account_no, name, ";".join(phones), email or "", segment or "", value_tier or "",
            repr(float(monthly_revenue or 0.0)), str(int(tenure_months or 0)),
            account_manager or ""]
