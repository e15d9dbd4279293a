"""Customer value: the tier rule (top 20% by revenue are key accounts with a manager) and the
falling-revenue churn signal, on the real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from crm_core.analytics import TierRule, revenue_trend
from crm_core.errors import InvalidInput, NotFound
from crm_core.store import Store


async def test_top_twenty_percent_by_revenue_are_key_accounts(store: Store) -> None:
    ids = {}
    for i in range(10):  # revenue 100, 200, ... 1000; the two best have (one has) a manager
        c = await store.upsert_customer(f"A{i}", f"Customer {i}", [f"55500000{i:02d}"],
                                        monthly_revenue=100.0 * (i + 1),
                                        account_manager="Ada" if i == 9 else None)
        ids[i] = c.id
    await store.upsert_customer("Z", "Zero", ["5559999999"], monthly_revenue=0.0)
    report = await store.assign_value_tiers()
    assert (report.customers, report.top, report.cut) == (11, 2, 900.0)
    assert report.unmanaged == ("A8",)  # a key account without a named account manager
    tiers = {i: (await store.get_customer(cid)).value_tier for i, cid in ids.items()}  # type: ignore[union-attr]
    assert [tiers[i] for i in range(10)] == ["standard"] * 8 + ["key"] * 2
    # a tie at the cut joins the top tier; the rule is configurable
    await store.upsert_customer("A0", "Customer 0", ["5550000000"], monthly_revenue=900.0)
    report = await store.assign_value_tiers(TierRule(top_share=0.2, top_tier="gold", other_tier="std"))
    assert report.top == 3 and (await store.get_customer(ids[0])).value_tier == "gold"  # type: ignore[union-attr]
    assert (await store.assign_value_tiers(TierRule(top_share=0.0))).top == 0
    with pytest.raises(ValueError):
        TierRule(top_share=1.5)


async def test_falling_revenue_is_a_churn_reason(store: Store) -> None:
    c = await store.upsert_customer("R1", "Revenue Falls", ["5551230000"])
    for month, amount in [("2026-08", 100.0), ("2026-09", 110.0), ("2026-10", 90.0), ("2026-11", 60.0)]:
        await store.record_revenue(c.id, month, amount)
    assert (await store.get_customer(c.id)).monthly_revenue == 60.0  # type: ignore[union-attr]
    view = await store.customer_360(c.id)
    assert view.churn_reasons == ("revenue down 40% against the 3 months before",)
    assert view.churn_risk == pytest.approx(0.25)
    await store.record_revenue(c.id, "2026-11", 95.0)  # corrected: no longer falling
    assert (await store.customer_360(c.id)).churn_reasons == ()
    with pytest.raises(InvalidInput):
        await store.record_revenue(c.id, "2026-13", 1.0)
    with pytest.raises(InvalidInput):
        await store.record_revenue(c.id, "2026-12", -1.0)
    with pytest.raises(NotFound):
        await store.record_revenue(999_999, "2026-12", 1.0)


def test_revenue_trend_needs_four_months() -> None:
    assert revenue_trend([("2026-01", 10.0), ("2026-02", 10.0), ("2026-03", 5.0)]) is None
    assert revenue_trend([("2026-04", 5.0), ("2026-01", 10.0), ("2026-02", 10.0), ("2026-03", 10.0)]) == -0.5
    assert revenue_trend([(f"2026-0{m}", 0.0) for m in range(1, 5)]) is None
