"""``core restart now`` under load on a real Asterisk 22 (runs last: the PBX restarts under the session).

Calls in the IVR, in hold, ringing and talking when Asterisk restarts end as the system's doing:
``end_reason`` ``shutdown``, ``hangup_side`` ``system``; outcome ``system`` when unanswered, an
answered call stays ``answered``; none ``abandoned``.
"""

from __future__ import annotations

import pytest

from tests.real_asterisk.conftest import REPORT
from tests.real_asterisk.lab import RealLab
from tests.real_asterisk.scenarios import run_restart, summary

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]


async def test_core_restart_now_under_load(lab: RealLab) -> None:
    res = await run_restart(lab)
    REPORT.setdefault("lines", []).append(res.line)
    REPORT["lines"].extend(f"{c} {c.deltas_ms}" for c in res.checks)
    assert not any(c.problems for c in res.checks), summary(res.checks)
    # one row per call that entered the contract this session, none for the foreign one
    assert await lab.store.count_calls() == lab.calls_placed
