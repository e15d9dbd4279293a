"""IvrRunner against a fake AGI session (implements AgiSessionLike, scripted like the v3 traces)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cti.agi.errors import AgiHangup
from cti.bus import Bus
from cti.domain import CallQueued, DomainEvent, IvrStep
from ivr.flow import load_flows
from ivr.runner import IvrRunner

ROOT = Path(__file__).resolve().parents[1]


class FakeSession:
    def __init__(self, digits: list[str | None], hangup_at: str | None = None) -> None:
        self.env = {
            "agi_uniqueid": "1700000000.1", "agi_channel": "Local/talk@callers-00000000;2",
            "agi_callerid": "5551234", "agi_calleridname": "Grace", "agi_extension": "5551000",
            "agi_network_script": "ivr/main",
        }
        self.digits = list(digits)
        self.hangup_at = hangup_at
        self.log: list[tuple[Any, ...]] = []

    def _cmd(self, *c: Any) -> None:
        self.log.append(c)
        if self.hangup_at == c[0]:
            raise AgiHangup("200 result=-1")

    async def answer(self) -> None:
        self._cmd("answer")

    async def set_variable(self, name: str, value: str) -> None:
        self._cmd("set_variable", name, value)

    async def stream_file(self, filename: str, escape_digits: str = "") -> str:
        self._cmd("stream_file", filename)
        return ""

    async def get_data(self, filename: str, timeout_ms: int, max_digits: int) -> str | None:
        self._cmd("get_data", filename, timeout_ms, max_digits)
        return self.digits.pop(0)

    async def hangup(self) -> None:
        self._cmd("hangup")


@dataclass(frozen=True)
class Customer:
    id: int
    value_tier: str


class FakeLookup:
    def __init__(self, fail: bool = False) -> None:
        self.asked: list[str] = []
        self.fail = fail

    async def find_customer_by_phone(self, raw: str) -> Customer | None:
        self.asked.append(raw)
        if self.fail:
            raise OSError("db down")
        return Customer(42, "gold") if raw == "5551234" else None


def make(lookup: FakeLookup | None = None) -> tuple[IvrRunner, list[DomainEvent]]:
    bus = Bus()
    seen: list[DomainEvent] = []
    bus.on(IvrStep, seen.append)
    bus.on(CallQueued, seen.append)
    runner = IvrRunner(load_flows(ROOT / "config" / "ivr"), bus, lookup or FakeLookup(), clock=lambda: 5.0,
                       new_cti_call_id=lambda: "2004af97-33c2-4717-b38b-5ee76bb675a7")
    return runner, seen


async def test_timeout_path_like_v3_01() -> None:
    runner, seen = make()
    s = FakeSession([None])
    st = await runner.run(s, "main")
    assert st is not None and st.done
    assert s.log == [
        ("answer",), ("set_variable", "CTI_CALL_ID", "2004af97-33c2-4717-b38b-5ee76bb675a7"),
        ("stream_file", "hello-world"), ("get_data", "beep", 3000, 1), ("set_variable", "CTI_NEXT", "queue"),
    ]
    steps = [e for e in seen if isinstance(e, IvrStep)]
    assert [x.node for x in steps] == ["greeting", "lookup", "menu", "support"]
    q = seen[-1]
    assert isinstance(q, CallQueued)
    assert (q.call_id, q.cti_call_id, q.queue, q.skills, q.customer_id) == (
        "1700000000.1", "2004af97-33c2-4717-b38b-5ee76bb675a7", "support", ("support",), 42)
    assert (q.channel, q.caller_num, q.caller_name, q.ivr_choice) == (
        "Local/talk@callers-00000000;2", "5551234", "Grace", "")
    assert q.ivr_path == ("greeting", "lookup", "menu", "support")


async def test_invalid_then_sales() -> None:
    runner, seen = make()
    s = FakeSession(["9", "1"])
    await runner.run(s, "main")
    q = seen[-1]
    assert isinstance(q, CallQueued) and q.queue == "sales" and q.ivr_choice == "1"
    assert [e.digits for e in seen if isinstance(e, IvrStep) and e.node == "menu"] == ["9", "1"]


async def test_hangup_mid_flow_is_quiet() -> None:
    runner, seen = make()
    s = FakeSession([], hangup_at="stream_file")  # v3-04: caller leaves during the greeting
    assert await runner.run(s, "main") is None
    assert s.log[1][:2] == ("set_variable", "CTI_CALL_ID")
    assert not any(isinstance(e, CallQueued) for e in seen)
    last = seen[-1]
    assert isinstance(last, IvrStep) and last.node == "hangup"


async def test_lookup_failure_continues_as_unknown() -> None:
    runner, seen = make(FakeLookup(fail=True))
    await runner.run(FakeSession(["2"]), "main")
    q = seen[-1]
    assert isinstance(q, CallQueued) and q.customer_id is None and q.queue == "support"


async def test_unknown_flow_falls_back_to_a_queue() -> None:
    runner, seen = make()
    s = FakeSession([])
    await runner.run(s, "nope")
    assert s.log[-1] == ("set_variable", "CTI_NEXT", "queue")
    q = seen[-1]
    assert isinstance(q, CallQueued) and q.queue == "support"
