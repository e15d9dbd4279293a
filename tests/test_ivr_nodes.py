"""Stepping each node type (pure: no I/O, time injected) on the shipped telecom flow and small flows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ivr.engine import (
    MASK,
    DigitsInput,
    Enqueue,
    GetDigits,
    GetQueueFigures,
    GetTime,
    GotoFlow,
    Hangup,
    Lookup,
    LookupResult,
    Play,
    PlayDone,
    QueueFigures,
    Record,
    Recorded,
    RequestCallback,
    Say,
    TimeIs,
    Transfer,
    start,
    step,
)
from ivr.flow import Flow, load_flow, parse_flow

ROOT = Path(__file__).resolve().parents[1]
TELECOM = load_flow(ROOT / "config" / "ivr" / "telecom.toml")
PARIS = ZoneInfo("Europe/Paris")


def at(*args: int) -> TimeIs:
    return TimeIs(datetime(*args, tzinfo=PARIS).timestamp())  # type: ignore[misc]


def flow(nodes: dict[str, Any], first: str) -> Flow:
    return parse_flow({"start": first, "nodes": nodes}, "t.toml", known_flows={"other"})


def test_hours_open_closed_holiday() -> None:
    st, cmd = start(TELECOM, {"ani": "5551234"})
    assert cmd == GetTime()
    _, cmd = step(TELECOM, st, at(2026, 3, 2, 9, 0))  # a Monday, open
    assert cmd == Play("hello-world")
    st2, cmd = step(TELECOM, st, at(2026, 3, 1, 9, 0))  # Sunday: closed
    assert st2.node == "after_hours" and isinstance(cmd, GetDigits)
    st3, _ = step(TELECOM, st, at(2026, 5, 1, 9, 0))  # holiday
    assert st3.node == "after_hours" and st3.path[-1] == "after_hours"
    st4, _ = step(TELECOM, st, at(2026, 3, 2, 20, 0))  # 20:00 is past 08:00-20:00
    assert st4.node == "after_hours"


def to_identify() -> Any:
    st, _ = start(TELECOM, {"ani": "5551234"})
    st, _ = step(TELECOM, st, at(2026, 3, 2, 9, 0))
    st, cmd = step(TELECOM, st, PlayDone())
    assert cmd == Lookup("ani")
    return st


def test_key_account_fast_lane_prefers_the_account_manager() -> None:
    st, cmd = step(TELECOM, to_identify(), LookupResult(7, "key", fields=(("account_manager", "1002"),)))
    assert cmd == Enqueue("key_accounts", ("key_accounts",), 10, (("key_accounts", 3),), "1002")
    assert st.done and st.path[-2:] == ("fast_lane", "key_account")


def test_branch_on_churn_risk_then_default() -> None:
    _, cmd = step(TELECOM, to_identify(), LookupResult(7, "silver", fields=(("churn_risk", "0.8"),)))
    assert cmd == Enqueue("support", ("support",), 5, (("support", 5),))
    st, cmd = step(TELECOM, to_identify(), LookupResult(7, "silver", fields=(("churn_risk", "0.1"),)))
    assert st.node == "main_menu" and cmd == GetDigits("beep", 4000, 1)


def test_not_found_collects_a_sensitive_account_number_and_looks_it_up() -> None:
    st, cmd = step(TELECOM, to_identify(), LookupResult())
    assert cmd == GetDigits("beep", 5000, 10, sensitive=True) and st.node == "ask_account"
    st, cmd = step(TELECOM, st, DigitsInput("12"))  # too short: asked again
    assert isinstance(cmd, GetDigits) and st.node == "ask_account" and st.last_digits == MASK
    st, cmd = step(TELECOM, st, DigitsInput("1234567#"))
    assert cmd == Lookup("digits", "1234567")
    assert st.masked()["account"] == MASK and st.var("account") == "1234567"
    st, cmd = step(TELECOM, st, LookupResult(None, several=True))
    assert st.node == "main_menu"


def test_menu_replays_with_its_no_input_prompt_then_falls_back() -> None:
    f = flow({"m": {"type": "menu", "prompt": "p", "options": {"1": "bye"}, "retries": 1,
                    "no_input_prompt": "nothing", "invalid_prompt": "wrong", "fallback": "q"},
              "q": {"type": "queue", "queue": "s", "skills": ["s"]}, "bye": {"type": "hangup"}}, "m")
    st, _ = start(f)
    st, cmd = step(f, st, DigitsInput(None))
    assert cmd == GetDigits("p", 3000, 1, ("nothing",))
    st, cmd = step(f, st, DigitsInput("7"))
    assert cmd == Enqueue("s", ("s",), 0)


def test_tech_busy_branch_asks_queue_figures_then_offers_a_callback() -> None:
    st, _ = step(TELECOM, to_identify(), LookupResult())
    st, _ = step(TELECOM, st, DigitsInput(None))
    st, _ = step(TELECOM, st, DigitsInput(None))  # retries = 1: to main_menu
    st, _ = step(TELECOM, st, DigitsInput("2"))
    st, cmd = step(TELECOM, st, DigitsInput("1"))
    assert cmd == GetQueueFigures(("technical",))
    busy, cmd = step(TELECOM, st, QueueFigures({"technical": {"ewt_s": 600.0}}))
    assert busy.node == "offer_callback" and cmd == GetDigits("beep", 5000, 1)
    _, cmd = step(TELECOM, st, QueueFigures({}))  # unknown figure: the condition is false
    assert cmd == Enqueue("technical", ("technical",), 0)
    # callback: accept (1), confirm the ANI (1)
    st, cmd = step(TELECOM, busy, DigitsInput("1"))
    assert cmd == GetDigits("beep", 5000, 20)
    done, cmd = step(TELECOM, st, DigitsInput("1"))
    assert cmd == RequestCallback("technical", "5551234", "vm-goodbye") and done.done
    _, cmd = step(TELECOM, st, DigitsInput("0612345678"))  # another number
    assert cmd == RequestCallback("technical", "0612345678", "vm-goodbye")
    _, cmd = step(TELECOM, busy, DigitsInput("2"))  # declined: into the queue
    assert cmd == Enqueue("technical", ("technical",), 0)


def test_after_hours_voicemail_then_goodbye() -> None:
    st, _ = start(TELECOM, {"ani": "5551234"})
    st, _ = step(TELECOM, st, at(2026, 3, 1, 9, 0))
    st, cmd = step(TELECOM, st, DigitsInput("2"))
    assert cmd == Record("vm-intro", 180)
    st, cmd = step(TELECOM, st, Recorded("/var/spool/x.wav"))
    assert cmd == Hangup("vm-goodbye") and st.recording == "/var/spool/x.wav"


def test_set_say_transfer_goto_and_barge_in() -> None:
    f = flow({"s": {"type": "set", "vars": {"n": 42}, "next": "p"},
              "p": {"type": "play", "prompts": ["a", "b"], "barge_in": True, "next": "say"},
              "say": {"type": "say", "var": "n", "as": "number", "next": "b"},
              "b": {"type": "branch", "default": "t",
                    "when": [{"var": "call.n", "op": "eq", "value": 42, "next": "g"}]},
              "g": {"type": "goto", "flow": "other"},
              "t": {"type": "transfer", "number": "+33123456789"}}, "s")
    st, cmd = start(f)
    assert cmd == Play("a", True, ("b",)) and st.var("n") == "42"
    st, cmd = step(f, st, PlayDone("5"))
    assert cmd == Say("42", "number") and st.last_digits == "5"
    st, cmd = step(f, st, PlayDone())
    assert cmd == GotoFlow("other") and st.done and st.path == ("s", "p", "say", "b", "g")
    f2 = flow({"t": {"type": "transfer", "number": "+33123456789"}}, "t")
    assert start(f2)[1] == Transfer("+33123456789")
