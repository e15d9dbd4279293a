"""Erasure on request: a customer's personal data goes, anonymised call statistics stay.

Erased: name, account number, email, account manager, phones, revenue history; the caller
number/name, channel, notes and disposition notes of the customer's calls and contacts; the
personal fields inside their call timelines; recording files (deleted from disk).  Kept: the
rows themselves with times, queue, agent, outcome, wait and talk seconds, disposition codes,
so reports still add up.  On SQLite the deleted bytes are overwritten (``secure_delete``) and
the WAL is checkpointed, so nothing of the person stays in the database files.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, or_, select, update

from crm_core._base import StoreBase, rowcount
from crm_core.errors import NotFound
from crm_core.models import Call, CallEvent, Contact, Customer, CustomerPhone, CustomerRevenue, Recording

__all__ = ["ErasureMixin", "ErasureReport"]

log = logging.getLogger(__name__)

# keys of call-event data that carry personal data (CallArrived, CallQueued, CallOffered, ...)
PERSONAL_KEYS = frozenset({"caller_num", "caller_name", "channel", "notes", "customer"})

@dataclass(frozen=True, slots=True)
class ErasureReport:
    customer_id: int
    calls: int
    contacts: int
    recordings_deleted: int

class ErasureMixin(StoreBase):
    async def erase_customer(self, customer_id: int) -> ErasureReport:
        async with self._write() as s:
            c = await s.get(Customer, customer_id)
            if c is None:
                raise NotFound(f"customer {customer_id} not found")
            phones = list((await s.execute(
                select(CustomerPhone.e164).where(CustomerPhone.customer_id == customer_id))).scalars())
            digits = {p.lstrip("+") for p in phones} | set(phones)
            # the national forms a call log may hold (5551234567 for +15551234567)
            digits |= {p[2:] for p in phones if p.startswith("+1")}
            mine = or_(Call.customer_id == customer_id, Call.caller_num.in_(digits)) if digits else (
                Call.customer_id == customer_id)
            call_pks = list((await s.execute(select(Call.id).where(mine))).scalars())
            await s.execute(update(Call).where(Call.id.in_(call_pks)).values(
                caller_num=None, caller_name=None, channel=None, notes=None, customer_id=customer_id))
            for ev in (await s.execute(select(CallEvent).where(CallEvent.call_pk.in_(call_pks)))).scalars():
                if PERSONAL_KEYS & set(ev.data):
                    ev.data = {k: v for k, v in ev.data.items() if k not in PERSONAL_KEYS}
            contacts = rowcount(await s.execute(update(Contact).where(Contact.customer_id == customer_id)
                                                .values(notes=None)))
            recs = list((await s.execute(select(Recording).where(
                Recording.call_pk.in_(call_pks), Recording.erased.is_(False)))).scalars())
            await asyncio.to_thread(_delete_files, [r.path for r in recs])
            for r in recs:
                r.erased, r.sha256 = True, None
            await s.execute(delete(CustomerPhone).where(CustomerPhone.customer_id == customer_id))
            await s.execute(delete(CustomerRevenue).where(CustomerRevenue.customer_id == customer_id))
            c.name, c.account_no, c.email, c.account_manager = "(erased)", f"erased-{customer_id}", None, None
            c.erased = True
        if self.dialect == "sqlite":
            async with self._engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("customer erased", extra={"customer_id": customer_id, "calls": len(call_pks)})
        return ErasureReport(customer_id, len(call_pks), contacts, len(recs))


def _delete_files(paths: Iterable[str]) -> None:
    """Delete recording files, a file already gone included (in a worker thread: disk I/O)."""
    for path in paths:
        Path(path).unlink(missing_ok=True)
