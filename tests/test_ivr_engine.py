from __future__ import annotations

from pathlib import Path

import pytest

from ivr.engine import (
    DigitsInput,
    Enqueue,
    GetDigits,
    Lookup,
    LookupResult,
    Play,
    PlayDone,
    start,
    step,
)
from ivr.errors import StepError
from ivr.flow import Flow, load_flow, parse_flow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def main() -> Flow:
    return load_flow(ROOT / "config" / "ivr" / "main.toml")


def to_menu(flow: Flow):  # type: ignore[no-untyped-def]
    st, cmd = start(flow)
    assert cmd == Play("hello-world")
    st, cmd = step(flow, st, PlayDone())
    assert cmd == Lookup()
    st, cmd = step(flow, st, LookupResult(42, "gold"))
    assert cmd == GetDigits("beep", 3000, 1)
    return st


def test_choice_1_goes_to_sales(main: Flow) -> None:
    st, cmd = step(main, to_menu(main), DigitsInput("1"))
    assert cmd == Enqueue("sales", ("sales",), 0)
    assert st.done and st.choice == "1" and st.customer_id == 42
    assert st.path == ("greeting", "lookup", "menu", "sales")
    with pytest.raises(StepError):
        step(main, st, PlayDone())


def test_timeout_goes_to_support(main: Flow) -> None:
    st, cmd = step(main, to_menu(main), DigitsInput(None))
    assert cmd == Enqueue("support", ("support",), 0) and st.choice == ""


def test_invalid_replays_menu_twice_then_support(main: Flow) -> None:
    st = to_menu(main)
    for _ in range(2):
        st, cmd = step(main, st, DigitsInput("7"))
        assert isinstance(cmd, GetDigits) and st.node == "menu"
    st, cmd = step(main, st, DigitsInput("9"))
    assert cmd == Enqueue("support", ("support",), 0)
    assert st.path.count("menu") == 3


def test_invalid_then_valid(main: Flow) -> None:
    st, _ = step(main, to_menu(main), DigitsInput("5"))
    st, cmd = step(main, st, DigitsInput("2"))
    assert cmd == Enqueue("support", ("support",), 0) and st.choice == "2"


def test_wrong_input_for_node_raises(main: Flow) -> None:
    st, _ = start(main)
    with pytest.raises(StepError, match=r"node greeting: "):
        step(main, st, DigitsInput("1"))


def test_tier_routing_and_hangup() -> None:
    flow = parse_flow(
        {
            "start": "lk",
            "nodes": {
                "lk": {"kind": "lookup", "next": "bye", "if_tier": {"key": "vip"}},
                "vip": {"kind": "queue", "queue": "vip", "skills": ["vip"], "priority": 5},
                "bye": {"kind": "hangup", "prompt": "vm-goodbye"},
            },
        },
        "inline.toml",
    )
    st, _ = start(flow)
    assert step(flow, st, LookupResult(1, "key"))[1] == Enqueue("vip", ("vip",), 5)
    st2, cmd = step(flow, st, LookupResult(None, None))
    assert cmd.__class__.__name__ == "Hangup" and st2.done
