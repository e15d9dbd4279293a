from __future__ import annotations

import pytest

from acd.stats import StatsFold
from cti.domain import AgentStateChanged, CallAbandoned, CallAnswered, CallEnded, CallOffered, CallQueued


def queued(cid: str, q: str, at: float) -> CallQueued:
    return CallQueued(cid, "u", "ch", q, (q,), 0, "", "", None, (), "", at)


def offered(cid: str, q: str) -> CallOffered:
    return CallOffered(cid, "u", "a1", 1, q, "", "", None, "", "", 0.0)


def test_fold() -> None:
    s = StatsFold(service_level_s=20)
    for ev in [
        queued("c1", "sales", 0.0), queued("c2", "sales", 5.0), queued("c3", "sales", 6.0),
        queued("c4", "support", 50.0),
        offered("c1", "sales"), CallAnswered("c1", "a1", 10.0, 10.0),
        offered("c2", "sales"), CallAnswered("c2", "a2", 30.0, 35.0),
        CallAbandoned("c3", "sales", 4.0, "queue", 10.0), CallEnded("c3", 16, "", "caller", "hangup", 10.0),
        AgentStateChanged("a1", "on_call", "", "c1", 10.0), AgentStateChanged("a2", "on_call", "", "c2", 35.0),
        AgentStateChanged("a1", "wrap_up", "", "c1", 40.0),
    ]:
        s.apply(ev)
    snap = s.snapshot(now=60.0)
    sales, support = snap["queues"]["sales"], snap["queues"]["support"]
    assert (sales["waiting"], sales["offered"], sales["answered"], sales["abandoned"]) == (0, 2, 2, 1)
    assert sales["service_level"] == pytest.approx(1 / 3)
    assert sales["average_wait_s"] == pytest.approx(20.0)
    assert (support["waiting"], support["longest_wait_s"], support["service_level"]) == (1, 10.0, None)
    assert snap["agents_by_state"] == {"wrap_up": 1, "on_call": 1}
