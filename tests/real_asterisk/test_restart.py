"""``core restart now`` under load on a real Asterisk 22 (runs last: the PBX restarts under the session).

Calls in the IVR, in hold, ringing and talking when Asterisk restarts end as the system's doing:
``end_reason`` ``shutdown``, ``hangup_side`` ``system``; outcome ``system`` when unanswered, an
answered call stays ``answered``; none ``abandoned``.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.real_asterisk.conftest import REPORT
from tests.real_asterisk.harness import wait_until
from tests.real_asterisk.lab import RealLab
from tests.real_asterisk.scenarios import LOAD_AGENTS, Check, Expect, check_row, refs_of, summary

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(240)]


async def test_core_restart_now_under_load(lab: RealLab) -> None:
    await lab.desk.ready_only(LOAD_AGENTS)
    obs = lab.obs
    calls = []
    for _ in range(16):
        who = lab.caller("load")
        calls.append((await lab.place("8", None, who), who))
        await asyncio.sleep(0.2)

    def state(uid: str) -> str:
        if obs.bridged(uid):
            return "talking"
        if obs.entered(uid, "cti-agent"):
            return "at-agent"
        if obs.entered(uid, "cti-hold"):
            return "hold"
        return "ivr" if obs.entered(uid, "cti-inbound") else "new"

    await wait_until(lambda: sum(state(u) == "talking" for u, _ in calls) >= 2
                     and sum(state(u) == "hold" for u, _ in calls) >= 3, 30, "two calls talking, three in hold")
    for _ in range(2):  # two more, in the IVR when Asterisk goes down
        who = lab.caller("load")
        calls.append((await lab.place("8", None, who), who))
    await wait_until(lambda: all(state(u) != "new" for u, _ in calls), 5, "every caller in the contract")
    states = {u: state(u) for u, _ in calls}
    restart_at = time.time()
    rc, out = await lab.pbx.rx("core restart now")
    for uid, _ in calls:
        await obs.wait_hangup(uid, 30)
    t0 = time.monotonic()
    await lab.pbx.wait_booted(60)
    booted_s = time.monotonic() - t0
    proxy = lab.proxy.proxy if lab.proxy is not None else None
    await wait_until(lambda: bool(obs.logins("ctilp", restart_at))
                     or (proxy is not None and any(t > restart_at for t in proxy.linked)), 60,
                     "the backend's AMI link made again")
    await asyncio.sleep(1.0)
    relogins = obs.logins("ctilp", restart_at)
    relogin = f"+{relogins[0] - restart_at:.2f} s" if relogins else "before the observer was back"

    checks: list[Check] = []
    outcomes: dict[str, int] = {}
    races: list[str] = []  # queued by the IVR as Asterisk went down, before Asterisk ran the IVR's command
    for uid, who in calls:
        r = refs_of(obs.events, uid)
        assert r.ended is not None
        before = r.ended < restart_at  # ended by its agent before the restart: an ordinary answered call
        answered = r.answered is not None and (before or r.answered < r.ended)
        agent = r.at_agent[-1] if answered and r.at_agent else None
        row = await lab.final_row(uid, disposition=answered)
        # queued: it reached hold, or the IVR's CTI_NEXT ran; or, Asterisk going down between the
        # IVR's queueing and its command, the row's queueing is within the shutdown (then taken as is)
        queued_ref = None
        queued = r.queued is not None or r.queue_cmd is not None
        if not queued and row is not None and row.queued_at is not None and row.queued_at >= restart_at - 0.2:
            queued, queued_ref = True, row.queued_at
            lag = f"{(row.queued_at - r.shutdown_at) * 1000:+.0f} ms" if r.shutdown_at else "?"
            races.append(f"{uid}: queued {lag} from its SoftHangupRequest 4")
        exp = Expect("answered" if answered else "system", agent, "load" if queued else None, len(r.at_agent),
                     ("agent" if before else "system"), "hangup" if before else "shutdown", answered=answered,
                     choice="8" if queued else None)
        c = check_row(row, exp, r, who, queued_ref=queued_ref)
        c.call = f"restart/{states[uid]} ({uid})"
        if row is not None:
            outcomes[row.outcome] = outcomes.get(row.outcome, 0) + 1
            if row.outcome == "abandoned":
                c.problems.append("abandoned: a restart is the system's doing")
        if not before and not r.shutdown:
            c.problems.append("scenario: no SoftHangupRequest Cause 4 on this call")
        checks.append(c)
    REPORT.setdefault("lines", []).append(
        f"restart: rx rc={rc} {out.strip()!r}; states at the restart {sorted(states.values())}; Asterisk up again "
        f"after {booted_s:.2f} s, backend logged in {relogin}; outcomes {outcomes}; queued at the shutdown {races}")
    REPORT["lines"].extend(f"{c} {c.deltas_ms}" for c in checks)
    assert not any(c.problems for c in checks), summary(checks)
    # one row per call that entered the contract this session, none for the foreign one
    assert await lab.store.count_calls() == lab.calls_placed
