"""Pure ACD cores: the state table and the routing decision."""

from __future__ import annotations

import random

import pytest

from acd.errors import AcdError, InvalidTransition
from acd.model import Agent, AgentState, Assignment, WaitingCall
from acd.routing import route
from acd.states import TRANSITIONS, AgentEvent, transition

S, E = AgentState, AgentEvent


def test_happy_path_through_the_table() -> None:
    s = S.LOGGED_OUT
    for ev, want in [
        (E.LOGIN, S.NOT_READY), (E.SET_READY, S.READY), (E.RESERVE, S.RESERVED), (E.OFFER, S.RINGING),
        (E.ANSWER, S.ON_CALL), (E.CALL_END, S.WRAP_UP), (E.WRAP_DONE, S.READY), (E.LOGOUT, S.LOGGED_OUT),
    ]:
        s = transition(s, ev)
        assert s is want


def test_rona_and_release() -> None:
    assert transition(S.RINGING, E.NO_ANSWER) is S.NOT_READY
    assert transition(S.RINGING, E.RELEASE) is S.READY
    assert transition(S.RESERVED, E.RELEASE) is S.READY


@pytest.mark.parametrize(
    "state,event",
    [(S.LOGGED_OUT, E.SET_READY), (S.ON_CALL, E.LOGOUT), (S.RINGING, E.SET_NOT_READY),
     (S.NOT_READY, E.RESERVE), (S.READY, E.ANSWER), (S.ON_CALL, E.RESERVE), (S.READY, E.LOGIN)],
)
def test_illegal_transitions_raise_typed_error(state: AgentState, event: AgentEvent) -> None:
    with pytest.raises(InvalidTransition) as ei:
        transition(state, event)
    assert isinstance(ei.value, AcdError)
    assert state.value in str(ei.value) and event.value in str(ei.value)


def test_table_only_targets_known_states() -> None:
    assert all(isinstance(v, AgentState) for v in TRANSITIONS.values())


def agent(aid: str, idle: float, skills: dict[str, int] | None = None, state: AgentState = S.READY) -> Agent:
    return Agent(aid, aid, "1" + aid, skills if skills is not None else {"sales": 1}, state, idle_since=idle)


def call(cid: str, at: float, prio: int = 0, skills: tuple[str, ...] = ("sales",), held: bool = True) -> WaitingCall:
    return WaitingCall(cid, "u-" + cid, "ch-" + cid, "q", skills, prio, at, held=held)


def test_longest_waiting_call_gets_longest_idle_agent() -> None:
    agents = [agent("a", 5.0), agent("b", 1.0)]
    calls = [call("c2", 20.0), call("c1", 10.0)]
    assert route(agents, calls, 100.0) == [Assignment("c1", "b"), Assignment("c2", "a")]


def test_priority_beats_wait() -> None:
    out = route([agent("a", 0.0)], [call("old", 1.0), call("vip", 50.0, prio=5)], 100.0)
    assert out == [Assignment("vip", "a")]


def test_only_held_calls_and_ready_skilled_agents() -> None:
    agents = [agent("a", 0.0, state=S.NOT_READY), agent("b", 0.0, {"support": 3}), agent("c", 9.0)]
    calls = [call("unheld", 1.0, held=False), call("c1", 2.0)]
    assert route(agents, calls, 100.0) == [Assignment("c1", "c")]


def test_all_skills_required_and_proficiency_tiebreak() -> None:
    agents = [agent("a", 1.0, {"sales": 1, "fr": 1}), agent("b", 1.0, {"sales": 5, "fr": 5}),
              agent("c", 0.0, {"sales": 9})]
    assert route(agents, [call("c1", 1.0, skills=("sales", "fr"))], 10.0) == [Assignment("c1", "b")]


def test_agent_id_breaks_last_tie_and_offered_calls_skipped() -> None:
    agents = [agent("z", 1.0), agent("m", 1.0)]
    busy = call("c0", 0.5)
    busy.offer_agent = "x"
    assert route(agents, [busy, call("c1", 1.0)], 10.0) == [Assignment("c1", "m")]


def test_deterministic_regardless_of_input_order() -> None:
    rng = random.Random(7)
    agents = [agent(f"a{i}", float(rng.randint(0, 5)), {"sales": rng.randint(1, 3)}) for i in range(20)]
    calls = [call(f"c{i}", float(rng.randint(0, 50)), prio=rng.randint(0, 2)) for i in range(30)]
    first = route(agents, calls, 100.0)
    for _ in range(10):
        rng.shuffle(agents)
        rng.shuffle(calls)
        assert route(agents, calls, 100.0) == first
    assert len(first) == 20 and len({a.agent_id for a in first}) == 20
