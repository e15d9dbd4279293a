"""Traffic API and ground-truth record: IVR digits, abandon, answered by an agent."""

from __future__ import annotations

from simulator import AsteriskSim, Caller, SimConfig
from simulator.record import ScriptedAgi, Transcript, contract_script


async def test_traffic_record_digits_abandon_and_answer() -> None:
    script = contract_script(ivr=("GET DATA beep 3000 1", "SET VARIABLE CTI_NEXT queue"))

    agi = ScriptedAgi(Transcript(), script)
    port = await agi.start()
    async with AsteriskSim(SimConfig(agi_port=port, time_factor=0.02)) as sim:
        recs = await sim.run_traffic(3, 50, lambda i: Caller(f"55500{i}", f"C{i}", digits_plan=((0.1, str(i)),),
                                                             patience_s=20))
        assert all(r.abandoned and r.cause == 16 and r.answered_by is None for r in recs)
        assert [r.ivr_digits for r in recs] == ["0", "1", "2"]
        assert all(r.call_id == "cid-" + r.linkedid for r in recs)
        lid = await sim.place_call(Caller("5559999", "Zed", patience_s=30))
        ch = await sim.wait_in_app(lid)
        sim.redirect(ch, "cti-agent", "1001", 1)
        rec = await sim.wait_ended(lid, 10)
        assert rec.answered_by == "1001" and rec.cause == 16 and not rec.abandoned
    await agi.stop()
