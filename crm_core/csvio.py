"""Customer CSV import and export (see docs/customers-csv.md): one place to import them from.

Two halves, each in its own module:

* :mod:`crm_core.csv_rows`, pure and I/O-free: :class:`CsvRows`, :func:`parse_header`,
  :class:`RowValidator` / :func:`validate_rows` turn CSV rows into :class:`CustomerRecord` values or
  :class:`Reject` values (line, column, reason); :func:`export_fields` turns a stored customer back
  into CSV fields;
* :mod:`crm_core.csv_store`, on a :class:`~crm_core.store.Store`: :func:`import_records` upserts
  validated records in batches (SQLAlchemy Core ``INSERT ... ON CONFLICT DO UPDATE``, bulk phone
  rows, one transaction per batch) and :func:`export_rows` streams the customers out.

Import semantics: rows are applied in file order as if each were upserted on its own with
``Store.upsert_customer``. A phone that belongs to another customer at that point rejects
the row (``upsert_customer`` raises Conflict there); the ``phones`` column, when present,
replaces the customer's phone set. A column absent from the header is left as stored; a column
present with an empty cell clears the field (NULL, or 0 for the two numbers).
"""

from __future__ import annotations

from crm_core.csv_rows import (
    COLUMNS,
    MAX_PHONES,
    MAX_TENURE,
    PHONE_SEPARATORS,
    REQUIRED_COLUMNS,
    ROW,
    CsvHeaderError,
    CsvRows,
    CustomerRecord,
    Header,
    Problem,
    Reject,
    RowValidator,
    export_fields,
    parse_header,
    validate_rows,
)
from crm_core.csv_store import (
    ANALYZE_AFTER,
    BATCH_SIZE,
    ImportStats,
    export_rows,
    import_records,
    plan_phones,
    write_batch,
)

__all__ = [
    "ANALYZE_AFTER",
    "BATCH_SIZE",
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
    "ImportStats",
    "Problem",
    "Reject",
    "RowValidator",
    "export_fields",
    "export_rows",
    "import_records",
    "parse_header",
    "plan_phones",
    "validate_rows",
    "write_batch",
]
