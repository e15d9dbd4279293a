"""An AMI outage on a real Asterisk 22: the backend's link is cut (a TCP proxy between cti serve and
Asterisk's AMI), four calls end inside the outage (one of them lives entirely inside it), the link
comes back.  Each row ends at the last time the call was seen alive and carries the outage window."""

from __future__ import annotations

import pytest

from tests.real_asterisk.conftest import REPORT
from tests.real_asterisk.lab import RealLab
from tests.real_asterisk.scenarios import OutageResult, run_outage

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(180)]

_RUN: dict[str, OutageResult] = {}


async def outage(lab: RealLab) -> OutageResult:
    """The outage scenario, run once for the tests of this module."""
    if "res" not in _RUN:
        res = _RUN["res"] = await run_outage(lab)
        REPORT.setdefault("lines", []).append(
            f"outage: cut {res.cut_at:.3f}, restored +{res.restored_at - res.cut_at:.2f} s, backend logged in "
            f"again +{res.relogin - res.cut_at:.2f} s; calls ended at "
            + ", ".join(f"{k} +{t - res.cut_at:.2f} s" for k, t in res.ended.items()))
        REPORT["lines"].extend(f"{c} {c.deltas_ms}" for c in res.checks.values())
    return _RUN["res"]


async def test_calls_ending_inside_an_ami_outage(lab: RealLab) -> None:
    """Outcome, agent, queue, IVR, offers, times, the outage window: every call; the arrival columns
    of the three calls that arrived before the cut."""
    res = await outage(lab)
    problems = {k: res.others(k) + (res.arrival(k) if k != "inside" else []) for k in res.checks}
    assert not any(problems.values()), problems


async def test_a_call_that_lived_inside_the_outage_keeps_its_arrival(lab: RealLab) -> None:
    """The call that arrived and ended while the link was down: its FastAGI sessions saw it (the IVR
    queued it), so its row carries who called, on which channel and DNIS, and when."""
    res = await outage(lab)
    assert not res.arrival("inside"), res.arrival("inside")
