"""Deterministic demo data: customers with phones, tiers and account managers, some history.

Customer ``i`` (1-based) is ``ACC{i:06d}`` with phone ``+1555{5551000 + i}``; every fifth
customer has a second phone ``+1555{6551000 + i}``. Revenues are a permutation of a fixed
ladder, so they are distinct; the top 20 % by revenue are tier ``key`` with a named account
manager, the next 40 % ``standard``, the rest ``basic``. Seeding twice adds nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from sqlalchemy import func, select

from crm_core._base import StoreBase, to_dt
from crm_core.models import Contact, Customer, CustomerPhone, Disposition

__all__ = ["DEMO_DISPOSITIONS", "DemoCustomer", "SeedMixin", "demo_customers"]

_FIRST = ("Ada", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
          "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara")
_LAST = ("Andersen", "Brooks", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
         "Ivanova", "Jensen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Petrov",
         "Rossi", "Schmidt", "Tanaka", "Weber", "Yilmaz")
_MANAGERS = ("Alice Martin", "Bruno Keller", "Carmen Ortiz", "Dmitri Volkov")
_SEGMENTS = ("residential", "small_business", "enterprise")

DEMO_DISPOSITIONS: tuple[tuple[str, str, bool], ...] = (
    ("resolved", "Resolved", False),
    ("info", "Information given", False),
    ("sale", "Sale", False),
    ("callback", "Callback scheduled", False),
    ("escalated", "Escalated", False),
    ("complaint", "Complaint", True),
    ("complaint_billing", "Billing complaint", True),
)


@dataclass(frozen=True, slots=True)
class DemoCustomer:
    index: int
    account_no: str
    name: str
    email: str
    phones: tuple[str, ...]
    segment: str
    value_tier: str
    monthly_revenue: float
    account_manager: str | None
    tenure_months: int


def demo_customers(n: int) -> list[DemoCustomer]:
    """The first ``n`` demo customers (pure and deterministic)."""
    revenues = {i: round(25.0 + ((i * 7919) % max(n, 1)) * 17.5, 2) for i in range(1, n + 1)}
    ranked = sorted(revenues, key=lambda i: (-revenues[i], i))
    n_key, n_std = math.ceil(n * 0.2), math.ceil(n * 0.6)
    tier = {i: "key" if r < n_key else "standard" if r < n_std else "basic"
            for r, i in enumerate(ranked)}
    out: list[DemoCustomer] = []
    for i in range(1, n + 1):
        first, last = _FIRST[i % len(_FIRST)], _LAST[(i * 7) % len(_LAST)]
        phones = [f"+1555{5551000 + i}"]
        if i % 5 == 0:
            phones.append(f"+1555{6551000 + i}")
        out.append(DemoCustomer(
            index=i, account_no=f"ACC{i:06d}", name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}{i}@example.com", phones=tuple(phones),
            segment=_SEGMENTS[i % len(_SEGMENTS)], value_tier=tier[i],
            monthly_revenue=revenues[i],
            account_manager=_MANAGERS[i % len(_MANAGERS)] if tier[i] == "key" else None,
            tenure_months=(i * 5) % 97 + 1,
        ))
    return out


def _demo_contacts(c: DemoCustomer, now: float) -> list[tuple[str, str, float, str, str]]:
    """(channel, direction, at, disposition, notes) of a demo customer's history."""
    day = 86400.0
    items: list[tuple[str, str, float, str, str]] = []
    if c.index % 2 == 0:
        items.append(("email", "inbound", now - (c.index % 20 + 2) * day, "info",
                      "Asked about the latest invoice"))
    if c.index % 3 == 0:
        items.append(("sms", "outbound", now - (c.index % 11 + 1) * day, "resolved",
                      "Payment reminder sent"))
    if c.index % 4 == 0:
        items.append(("web", "inbound", now - (c.index % 9 + 1) * day, "callback",
                      "Web form: requested a callback"))
    if c.index % 7 == 0:
        items.append(("email", "inbound", now - 3 * day, "complaint_billing",
                      "Complains about a double charge"))
    return items


class SeedMixin(StoreBase):
    async def seed_demo(self, n_customers: int = 50) -> int:
        """Insert the demo data that is missing; returns the number of customers stored."""
        demo = demo_customers(n_customers)
        now = time.time()
        async with self._write() as s:
            await s.execute(
                self._insert(Disposition)
                .values([{"code": c, "label": lbl, "is_complaint": k}
                         for c, lbl, k in DEMO_DISPOSITIONS])
                .on_conflict_do_nothing(index_elements=["code"])
            )
            existing = set((await s.execute(
                select(Customer.account_no).where(
                    Customer.account_no.in_([d.account_no for d in demo]))
            )).scalars())
            taken = set((await s.execute(
                select(CustomerPhone.e164).where(
                    CustomerPhone.e164.in_([p for d in demo for p in d.phones]))
            )).scalars())
            for d in demo:
                if d.account_no in existing:
                    continue
                row = Customer(
                    account_no=d.account_no, name=d.name, email=d.email, segment=d.segment,
                    value_tier=d.value_tier, monthly_revenue=d.monthly_revenue,
                    account_manager=d.account_manager, tenure_months=d.tenure_months,
                )
                s.add(row)
                await s.flush()
                s.add_all(CustomerPhone(customer_id=row.id, e164=p)
                          for p in d.phones if p not in taken)
                s.add_all(
                    Contact(customer_id=row.id, channel=ch, direction=direc, at=to_dt(at),
                            agent_id=None, disposition=dispo, notes=notes)
                    for ch, direc, at, dispo, notes in _demo_contacts(d, now)
                )
            total: int = (await s.execute(select(func.count()).select_from(Customer))).scalar_one()
        return total
