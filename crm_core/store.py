"""The CRM store: one object the rest of the system talks to; it hands out DTOs only.

    store = await Store.open("sqlite+aiosqlite:///var/crm.db")
    ...
    await store.close()

or ``async with Store.open(url) as store: ...``.

Concurrency: every method opens its own AsyncSession (one unit of work) and may be called
from many asyncio tasks at once. On SQLite the writers of one Store queue on an asyncio lock
and each write transaction starts with ``BEGIN IMMEDIATE``; readers run in parallel (WAL).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Generator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from sqlalchemy import BindParameter, bindparam, delete, func, select, update
from sqlalchemy.orm import selectinload

from crm_core import migrate
from crm_core._base import (
    StoreBase,
    TimeLike,
    call_dto,
    contact_dto,
    customer_dto,
    rowcount,
    to_dt,
    to_epoch,
)
from crm_core.analytics import WINDOW_S, Signal, TierRule, churn_score
from crm_core.db import ensure_pg_schema, make_engine
from crm_core.dto import ContactDTO, Customer360, CustomerDTO, TierReport
from crm_core.errors import Conflict, InvalidInput, NotFound
from crm_core.models import (
    CHANNELS,
    DIRECTIONS,
    Call,
    Contact,
    Customer,
    CustomerPhone,
    CustomerRevenue,
    Disposition,
    utcnow,
)
from crm_core.phone import normalize_phone
from crm_core.seed import SeedMixin
from crm_core.store_calls import CallLogMixin
from crm_core.store_erasure import ErasureMixin
from crm_core.store_staff import StaffMixin

__all__ = ["Store"]

log = logging.getLogger(__name__)
_ID_MIN, _ID_MAX = -(2**31), 2**31 - 1  # INTEGER primary keys
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
DEFAULT_TIER_RULE = TierRule()  # the top 20% by revenue are "key", the others "standard"


class _Opening:
    """What ``Store.open`` returns: await it, or use it as ``async with``."""

    def __init__(self, url: str, create: bool, schema: str | None) -> None:
        self._args = (url, create, schema)
        self._store: Store | None = None

    def __await__(self) -> Generator[Any, None, Store]:
        return Store._open(*self._args).__await__()

    async def __aenter__(self) -> Store:
        self._store = await Store._open(*self._args)
        return self._store

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


class Store(CallLogMixin, StaffMixin, SeedMixin, ErasureMixin, StoreBase):
    @classmethod
    def open(cls, url: str, *, create: bool = True, schema: str | None = None) -> _Opening:
        """Open a store on ``url``.  ``create`` builds or upgrades the schema (Alembic, to the
        newest revision); without it an outdated schema raises ``SchemaOutdated``.  ``schema``
        (PostgreSQL) puts the tables in that schema (created if missing)."""
        return _Opening(url, create, schema)

    @classmethod
    async def _open(cls, url: str, create: bool, schema: str | None) -> Store:
        engine = make_engine(url, schema=schema)
        try:
            if create:
                await ensure_pg_schema(engine, schema)
                await migrate.upgrade(engine)
            else:
                await migrate.check_current(engine)
        except Exception:
            await engine.dispose()
            raise
        log.info("CRM store open (%s)", engine.url.render_as_string(hide_password=True))
        return cls(engine)

    async def close(self) -> None:
        await self._close_reads()
        await self._engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- customers ------------------------------------------------------------------------

    async def find_customer_by_phone(self, raw: str) -> CustomerDTO | None:
        e164 = normalize_phone(raw)
        if e164 is None:
            return None
        return await self._customer_by("phone", e164)

    async def find_customer_by_account(self, account_no: str) -> CustomerDTO | None:
        return await self._customer_by("account", account_no.strip())

    async def get_customer(self, customer_id: int) -> CustomerDTO | None:
        if not _ID_MIN <= customer_id <= _ID_MAX:  # no such row; PostgreSQL would refuse the value
            return None
        return await self._customer_by("id", customer_id)

    async def _customer_by(self, key: str, value: object) -> CustomerDTO | None:
        """The screen pop's hot path: two cached Core statements in one read unit (no ORM)."""
        rows = (await self._read_rows([(self._customer_stmts()[key], {"v": value})]))[0]
        return _customer_from_rows(rows)

    def _customer_stmts(self) -> dict[str, Any]:
        """One statement per lookup key: the customer's columns with one row per phone."""
        stmts = self._stmt_cache.get("customer_by")
        if stmts is None:
            c, p = Customer.__table__, CustomerPhone.__table__
            phones = p.alias("all_phones")
            cols = (c.c.id, c.c.account_no, c.c.name, c.c.email, c.c.segment, c.c.value_tier,
                    c.c.monthly_revenue, c.c.account_manager, phones.c.e164)
            live = c.c.erased.is_(False)
            v: BindParameter[Any] = bindparam("v")
            with_phones = c.outerjoin(phones, phones.c.customer_id == c.c.id)
            stmts = self._stmt_cache["customer_by"] = {
                "phone": select(*cols).select_from(with_phones.join(p, p.c.customer_id == c.c.id))
                .where(p.c.e164 == v, live).order_by(phones.c.id),
                "account": select(*cols).select_from(with_phones).where(c.c.account_no == v, live)
                .order_by(phones.c.id),
                "id": select(*cols).select_from(with_phones).where(c.c.id == v, live).order_by(phones.c.id),
            }
        return stmts

    async def search_customers(self, name_prefix: str, limit: int = 20) -> list[CustomerDTO]:
        """Customers whose name starts with ``name_prefix`` (case-insensitive), by name."""
        escaped = name_prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = (
            select(Customer)
            .where(Customer.erased.is_(False), func.lower(Customer.name).like(escaped + "%", escape="\\"))
            .order_by(Customer.name, Customer.id).limit(limit)
            .options(selectinload(Customer.phones))
        )
        async with self._read() as s:
            return [customer_dto(c) for c in (await s.execute(stmt)).scalars()]

    async def upsert_customer(
        self,
        account_no: str,
        name: str,
        phones: list[str],
        email: str | None = None,
        segment: str | None = None,
        value_tier: str | None = None,
        monthly_revenue: float | None = None,
        account_manager: str | None = None,
        *,
        tenure_months: int | None = None,
    ) -> CustomerDTO:
        """Create or update the customer with ``account_no``.

        On update, arguments left as ``None`` keep their stored value; ``phones`` (any
        form, normalised to E.164) replaces the customer's phone set. Raises InvalidInput for
        an unparseable phone, Conflict for a phone that belongs to another customer.
        """
        account_no = account_no.strip()
        if not account_no or not name.strip():
            raise InvalidInput("account_no and name must not be empty")
        numbers: list[str] = []
        for raw in phones:
            e164 = normalize_phone(raw)
            if e164 is None:
                raise InvalidInput(f"not a phone number: {raw!r}")
            if e164 not in numbers:
                numbers.append(e164)
        given: dict[str, Any] = {
            "email": email, "segment": segment, "value_tier": value_tier,
            "monthly_revenue": monthly_revenue, "account_manager": account_manager,
            "tenure_months": tenure_months,
        }
        update = {"name": name, "updated_at": utcnow()}
        update.update({k: v for k, v in given.items() if v is not None})
        insert_values = {**given, "monthly_revenue": monthly_revenue or 0.0,
                         "tenure_months": tenure_months or 0, "name": name}
        stmt = (
            self._insert(Customer).values(account_no=account_no, **insert_values)
            .on_conflict_do_update(index_elements=["account_no"], set_=update)
            .returning(Customer.id)
        )
        async with self._write() as s:
            cid: int = (await s.execute(stmt)).scalar_one()
            owners: dict[str, int] = {}
            if numbers:
                rows = await s.execute(
                    select(CustomerPhone.e164, CustomerPhone.customer_id)
                    .where(CustomerPhone.e164.in_(numbers))
                )
                owners = dict(rows.all())
            taken = sorted(n for n, owner in owners.items() if owner != cid)
            if taken:
                raise Conflict(f"phone(s) {', '.join(taken)} belong to another customer")
            await s.execute(delete(CustomerPhone).where(
                CustomerPhone.customer_id == cid, CustomerPhone.e164.not_in(numbers)
            ))
            s.add_all(CustomerPhone(customer_id=cid, e164=n) for n in numbers if n not in owners)
        dto = await self.get_customer(cid)
        assert dto is not None
        return dto

    async def log_contact(
        self,
        customer_id: int | None,
        channel: str,
        direction: str,
        at: TimeLike,
        agent_id: str | None = None,
        disposition: str | None = None,
        notes: str | None = None,
        call_id: str | None = None,
    ) -> ContactDTO:
        if channel not in CHANNELS:
            raise InvalidInput(f"channel must be one of {CHANNELS}, got {channel!r}")
        if direction not in DIRECTIONS:
            raise InvalidInput(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        row = Contact(
            customer_id=customer_id, channel=channel, direction=direction, at=to_dt(at),
            agent_id=agent_id, disposition=disposition, notes=notes, call_id=call_id,
        )
        async with self._write() as s:
            s.add(row)
            await s.flush()
            return contact_dto(row)

    async def record_revenue(self, customer_id: int, month: str, revenue: float) -> None:
        """Set a customer's revenue for ``month`` (``YYYY-MM``); the latest month becomes the
        customer's ``monthly_revenue``."""
        if not _MONTH.fullmatch(month):
            raise InvalidInput(f"month must be YYYY-MM, got {month!r}")
        if revenue < 0:
            raise InvalidInput(f"revenue must not be negative, got {revenue}")
        stmt = self._insert(CustomerRevenue).values(customer_id=customer_id, month=month, revenue=revenue)
        stmt = stmt.on_conflict_do_update(index_elements=["customer_id", "month"], set_={"revenue": revenue})
        async with self._write() as s:
            if (await s.get(Customer, customer_id)) is None:
                raise NotFound(f"customer {customer_id} not found")
            await s.execute(stmt)
            latest = (await s.execute(
                select(CustomerRevenue.revenue).where(CustomerRevenue.customer_id == customer_id)
                .order_by(CustomerRevenue.month.desc()).limit(1))).scalar_one()
            await s.execute(update(Customer).where(Customer.id == customer_id).values(monthly_revenue=latest))

    async def assign_value_tiers(self, rule: TierRule = DEFAULT_TIER_RULE) -> TierReport:
        """Apply the tier rule to every customer (two UPDATEs, whatever the size of the base).

        Returns the counts and the top-tier accounts that have no named account manager yet.
        """
        active = Customer.erased.is_(False)
        async with self._write() as s:
            n = (await s.execute(select(func.count()).select_from(Customer).where(active))).scalar_one()
            k = rule.top_count(n)
            cut = None
            if k > 0:
                cut = (await s.execute(select(Customer.monthly_revenue).where(active)
                                       .order_by(Customer.monthly_revenue.desc()).offset(k - 1).limit(1))).scalar()
            is_top = (Customer.monthly_revenue >= cut) & (Customer.monthly_revenue > 0) if cut else None
            await s.execute(update(Customer).where(active).values(value_tier=rule.other_tier))
            top = 0
            unmanaged: list[str] = []
            if is_top is not None:
                top = rowcount(await s.execute(
                    update(Customer).where(active, is_top).values(value_tier=rule.top_tier)))
                unmanaged = list((await s.execute(
                    select(Customer.account_no).where(active, is_top, func.coalesce(Customer.account_manager, "") == "")
                    .order_by(Customer.monthly_revenue.desc()))).scalars())
        return TierReport(customers=n, top=top, cut=cut, unmanaged=tuple(unmanaged))

    async def customer_360(
        self, customer_id: int, contacts: int = 10, calls: int = 10, *,
        now: TimeLike | None = None,
    ) -> Customer360:
        """The customer, the latest contacts and calls (newest first) and a churn score."""
        if not _ID_MIN <= customer_id <= _ID_MAX:
            raise NotFound(f"customer {customer_id} not found")
        now_dt = to_dt(now if now is not None else time.time())
        assert now_dt is not None
        st = self._stmt_cache.get("360")
        if st is None:
            cid: BindParameter[Any] = bindparam("cid")
            ct, ca = Contact.__table__, Call.__table__
            st = self._stmt_cache["360"] = (
                select(ct).where(ct.c.customer_id == cid)
                .order_by(ct.c.at.desc(), ct.c.id.desc()).limit(bindparam("n_contacts")),
                select(ca).where(ca.c.customer_id == cid)
                .order_by(ca.c.arrived_at.desc().nulls_last(), ca.c.id.desc()).limit(bindparam("n_calls")),
                select(ca.c.call_id, func.coalesce(ca.c.arrived_at, ca.c.ended_at), ca.c.outcome, ca.c.disposition)
                .where(ca.c.customer_id == cid, func.coalesce(ca.c.arrived_at, ca.c.ended_at) >= bindparam(
                    "since", type_=Call.__table__.c.arrived_at.type)),
                select(ct.c.call_id, ct.c.at, ct.c.disposition)
                .where(ct.c.customer_id == cid, ct.c.at >= bindparam("since", type_=ct.c.at.type)),
                select(Disposition.code).where(Disposition.is_complaint.is_(True)),
                select(CustomerRevenue.month, CustomerRevenue.revenue)
                .where(CustomerRevenue.customer_id == cid)
                .order_by(CustomerRevenue.month.desc()).limit(4),
            )
        args = {"v": customer_id, "cid": customer_id, "n_contacts": contacts, "n_calls": calls,
                "since": to_dt(now_dt.timestamp() - WINDOW_S)}
        (customer_rows, last_contacts, last_calls, recent_calls, recent_contacts, complaints,
         revenue_rows) = await self._read_rows([(stmt, args) for stmt in (self._customer_stmts()["id"], *st)])
        customer = _customer_from_rows(customer_rows)
        if customer is None:
            raise NotFound(f"customer {customer_id} not found")
        complaint_codes = [r[0] for r in complaints]
        revenue = [(r[0], r[1]) for r in revenue_rows]
        signals = [Signal(at=_epoch(at), is_call=True, outcome=o, disposition=d)
                   for _cid, at, o, d in recent_calls if at is not None]
        call_dispo = {(cid, d) for cid, _at, _o, d in recent_calls}
        signals += [Signal(at=_epoch(at), is_call=False, outcome=None, disposition=d)
                    for cid, at, d in recent_contacts if cid is None or (cid, d) not in call_dispo]
        risk, reasons = churn_score(signals, now_dt.timestamp(), complaint_codes, revenue)
        return Customer360(
            customer=customer,
            last_contacts=tuple(contact_dto(c) for c in last_contacts),
            last_calls=tuple(call_dto(c) for c in last_calls),
            churn_risk=risk,
            churn_reasons=reasons,
        )


def _customer_from_rows(rows: Sequence[Any]) -> CustomerDTO | None:
    if not rows:
        return None
    r = rows[0]
    return CustomerDTO(id=r[0], account_no=r[1], name=r[2], email=r[3], segment=r[4], value_tier=r[5],
                       monthly_revenue=float(r[6] or 0.0), account_manager=r[7],
                       phones=tuple(x[8] for x in rows if x[8] is not None))


def _epoch(value: datetime) -> float:
    epoch = to_epoch(value)
    assert epoch is not None
    return epoch
