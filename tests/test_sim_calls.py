"""Traffic API and ground-truth record: IVR digits, abandon, answered by an agent."""

from __future__ import annotations

import asyncio

from cti.sim import AsteriskSim, Caller, SimConfig
from cti.sim.record import AgiConn, ScriptedAgi, Transcript


async def test_traffic_record_digits_abandon_and_answer() -> None:
    async def script(c: AgiConn) -> None:
        s = c.env["agi_network_script"]
        if s == "ivr/main":
            await c.cmd("ANSWER")
            await c.cmd("SET VARIABLE CTI_CALL_ID cid-" + c.env["agi_uniqueid"])
            await c.cmd("GET DATA beep 3000 1")
            await c.cmd("SET VARIABLE CTI_NEXT queue")
        elif s == "hold":
            await c.cmd('STREAM FILE beep ""')
        elif s.startswith("offer/"):
            await c.cmd("SET VARIABLE CTI_AGENT_DEVICE Local/1001@agent-phones")
            await c.cmd("SET VARIABLE CTI_RING_TIMEOUT 5")

    agi = ScriptedAgi(Transcript(), script)
    port = await agi.start()
    async with AsteriskSim(SimConfig(agi_port=port, time_factor=0.02)) as sim:
        recs = await sim.run_traffic(3, 50, lambda i: Caller(f"55500{i}", f"C{i}", digits_plan=((0.1, str(i)),),
                                                             patience_s=20))
        assert all(r.abandoned and r.cause == 16 and r.answered_by is None for r in recs)
        assert [r.ivr_digits for r in recs] == ["0", "1", "2"]
        assert all(r.call_id == "cid-" + r.linkedid for r in recs)
        lid = await sim.place_call(Caller("5559999", "Zed", patience_s=30))
        for _ in range(200):
            ch = sim.find(sim.record[lid].channel)
            if ch is not None and ch.app == "MusicOnHold":
                break
            await asyncio.sleep(0.01)
        assert ch is not None
        sim.redirect(ch, "cti-agent", "1001", 1)
        rec = await sim.wait_ended(lid, 10)
        assert rec.answered_by == "1001" and rec.cause == 16 and not rec.abandoned
    await agi.stop()
