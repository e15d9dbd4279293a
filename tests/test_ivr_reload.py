"""IVR hot reload (ivr/registry.py, callcenter/ivr_reload.py): a call in progress keeps its flow
version while a reload changes the flow and a new call takes the new one (real FastAGI against the
simulator, a real SQLite store); a reload that fails validation changes nothing and reports every
error; SIGHUP on the serving loop reloads."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from callcenter.ivr_reload import install_reload_signal
from crm_core.store import Store
from cti import dialplan as dp
from cti.agi.server import FastAgiServer
from cti.agi.session import AgiSession
from cti.bus import Bus
from cti.domain import CallQueued, IvrEntered, IvrFlowsReloaded
from ivr.errors import FlowErrors
from ivr.registry import FlowRegistry
from ivr.runner import IvrRunner
from simulator import AsteriskSim, Caller, SimConfig


def flow(queue: str, timeout_ms: int = 20000) -> str:
    return f"""start = "menu"
[nodes.menu]
type = "menu"
prompt = "beep"
timeout_ms = {timeout_ms}
retries = 0
fallback = "q"
options = {{ "1" = "q" }}
[nodes.q]
type = "queue"
queue = "{queue}"
skills = ["{queue}"]
"""


BROKEN = 'start = "menu"\n[nodes.menu]\ntype = "menu"\nprompt = "beep"\noptions = { "1" = "nowhere" }\n'


def flows_dir(tmp_path: Path, queue: str) -> Path:
    d = tmp_path / "ivr"
    d.mkdir(exist_ok=True)
    (d / "main.toml").write_text(flow(queue))
    return d


async def until(pred: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_call_in_progress_keeps_its_version_a_new_call_takes_the_new_one(tmp_path: Path) -> None:
    d = flows_dir(tmp_path, "old")
    bus = Bus()
    seen: list[object] = []
    for et in (IvrEntered, CallQueued, IvrFlowsReloaded):
        bus.on(et, seen.append)
    registry = FlowRegistry.load(d, default_flow="main", bus=bus)
    async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}") as store:
        runner = IvrRunner(registry, bus, store)

        async def ivr(session: AgiSession) -> None:
            await runner.run(session, session.environment.script[len(dp.SCRIPT_IVR_PREFIX):] or "main")

        agi = FastAgiServer(host="127.0.0.1", port=0)
        agi.route(dp.SCRIPT_IVR_PREFIX, ivr)
        await agi.start()
        try:
            async with AsteriskSim(SimConfig(agi_port=agi.port, time_factor=0.1)) as sim:
                # call 1 presses 1 three (simulated) seconds into the menu: after the reload
                await sim.place_call(Caller("5551001", "First", digits_plan=((3.0, "1"),)))
                await until(lambda: any(isinstance(e, IvrEntered) for e in seen))
                (d / "main.toml").write_text(flow("new"))
                res = registry.reload("tester")
                assert res.ok and (res.old_version, res.version, res.changed) == (1, 2, ("main",))
                assert not any(isinstance(e, CallQueued) for e in seen), "call 1 must still be in the menu"
                await sim.place_call(Caller("5551002", "Second", digits_plan=((0.5, "1"),)))
                await until(lambda: len([e for e in seen if isinstance(e, CallQueued)]) == 2)
        finally:
            await agi.stop()
    queued = {e.caller_num: e.queue for e in seen if isinstance(e, CallQueued)}
    assert queued == {"5551001": "old", "5551002": "new"}
    reloaded = [e for e in seen if isinstance(e, IvrFlowsReloaded)]
    assert [(e.version, e.old_version, e.changed, e.by) for e in reloaded] == [(2, 1, ("main",), "tester")]


def test_a_broken_reload_changes_nothing_and_reports_every_error(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    d = flows_dir(tmp_path, "old")
    bus = Bus()
    published: list[IvrFlowsReloaded] = []
    bus.on(IvrFlowsReloaded, published.append)
    registry = FlowRegistry.load(d, default_flow="main", bus=bus)
    runner = IvrRunner(registry, bus, object())  # type: ignore[arg-type]
    before = runner.flows
    (d / "main.toml").write_text(flow("new"))
    (d / "other.toml").write_text(BROKEN)
    with caplog.at_level(logging.ERROR, logger="ivr.registry"):
        res = registry.reload("alice")
    assert not res.ok and res.version == res.old_version == 1 == registry.version
    assert runner.flows is before and runner.flows["main"].nodes["q"].queue == "old"  # type: ignore[attr-defined]
    want = [f"{d / 'other.toml'}: node menu: fallback: missing"]
    assert res.lines() == want
    assert res.to_json()["errors"] == want
    logged = [r.getMessage() for r in caplog.records]
    assert f"IVR reload by alice refused: {want[0]}" in logged
    assert published == []
    # the default flow gone: refused too
    (d / "other.toml").unlink()
    (d / "main.toml").rename(d / "renamed.toml")
    res = registry.reload("alice")
    assert not res.ok and "no flow 'main' (ivr.default_flow)" in res.lines()[0] and registry.version == 1
    # fixed: the swap happens, flows added/removed named
    (d / "renamed.toml").rename(d / "main.toml")
    (d / "extra.toml").write_text(flow("x"))
    res = registry.reload("alice")
    assert res.ok and (res.version, res.added, res.removed, res.changed) == (2, ("extra",), (), ("main",))
    assert runner.flows["main"].nodes["q"].queue == "new"  # type: ignore[attr-defined]
    assert [e.version for e in published] == [2]


def test_a_plain_dict_still_runs_and_a_bad_start_raises_every_error(tmp_path: Path) -> None:
    d = flows_dir(tmp_path, "old")
    (d / "other.toml").write_text(BROKEN)
    (d / "third.toml").write_text(BROKEN)
    with pytest.raises(FlowErrors) as ei:
        FlowRegistry.load(d, default_flow="main")
    assert len(ei.value.errors) == 2  # both bad files, not only the first
    runner = IvrRunner({}, Bus(), object())  # type: ignore[arg-type]
    assert dict(runner.flows) == {}


async def test_sighup_reloads(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    d = flows_dir(tmp_path, "old")
    registry = FlowRegistry.load(d, default_flow="main")

    class App:
        def reload_ivr(self, by: str) -> dict[str, object]:
            return registry.reload(by).to_json()

    remove = install_reload_signal(App())
    try:
        (d / "main.toml").write_text(flow("new"))
        with caplog.at_level(logging.INFO, logger="ivr.registry"):
            os.kill(os.getpid(), signal.SIGHUP)
            await until(lambda: registry.version == 2, 5.0)
    finally:
        remove()
    assert "IVR flows reloaded by SIGHUP: version 1 -> 2; added [], removed [], changed ['main']" in [
        r.getMessage() for r in caplog.records]
