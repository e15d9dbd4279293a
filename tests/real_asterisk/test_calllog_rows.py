"""Each call-log scenario on a real Asterisk 22: the row, field by field, against Asterisk's own events."""

from __future__ import annotations

import pytest

from tests.real_asterisk.conftest import REPORT
from tests.real_asterisk.lab import RealLab
from tests.real_asterisk.scenarios import SCENARIOS, Scenario, run_not_ours, run_scenario

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_call_log_row(lab: RealLab, sc: Scenario) -> None:
    check = await run_scenario(lab, sc)
    REPORT.setdefault("lines", []).append(f"{check} {check.deltas_ms}")
    assert not check.problems, str(check)


async def test_a_call_that_never_enters_the_contract_leaves_no_row(lab: RealLab) -> None:
    problems = await run_not_ours(lab)
    REPORT.setdefault("lines", []).append(f"not_ours: {problems or 'ok'}")
    assert not problems, problems
