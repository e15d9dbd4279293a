"""The shipped Asterisk files match cti/dialplan.py (parsed with pyst2's asterisk.config)."""

from __future__ import annotations

import re
from pathlib import Path

from asterisk.config import Config

from cti import dialplan as dp

ASTERISK = Path(__file__).resolve().parent.parent / "asterisk"


def test_extensions_contract_names_and_priorities() -> None:
    text = (ASTERISK / "extensions_cti.conf").read_text()
    cfg = Config(str(ASTERISK / "extensions_cti.conf"))
    names = [c.name for c in cfg.categories]
    assert names == [dp.CTX_INBOUND, dp.CTX_HOLD, dp.CTX_AGENT, dp.CTX_END]
    for var in (dp.VAR_CALL_ID, dp.VAR_NEXT, dp.VAR_AGENT_DEVICE, dp.VAR_RING_TIMEOUT, dp.VAR_RECORD_FILE):
        assert var in text, var
    for ue in (dp.UE_DIAL_RESULT, dp.UE_CALL_END, dp.DIAL_NODEVICE):
        assert ue in text
    assert "AGIEXITONHANGUP=yes" in text

    def prios(ctx: str) -> list[str]:
        body = text.split(f"[{ctx}]", 1)[1].split("\n[", 1)[0]
        return [ln.strip() for ln in body.splitlines() if re.match(r"\s*(exten|same)\s*=>", ln)]

    inbound = prios(dp.CTX_INBOUND)
    assert "AGI(agi://" in inbound[dp.PRIO_INBOUND_AGI - 1] and "/ivr/main" in inbound[dp.PRIO_INBOUND_AGI - 1]
    agent = prios(dp.CTX_AGENT)
    assert f"/{dp.SCRIPT_OFFER_PREFIX}" in agent[dp.PRIO_AGENT_OFFER_AGI - 1]
    assert "Dial(" in agent[dp.PRIO_AGENT_DIAL - 1]
    assert "(nodev)" in agent[dp.PRIO_AGENT_NODEV - 1] and dp.DIAL_NODEVICE in agent[dp.PRIO_AGENT_NODEV - 1]
    assert f"/{dp.SCRIPT_HOLD})" in prios(dp.CTX_HOLD)[0]


def test_manager_user_is_least_privilege() -> None:
    cfg = Config(str(ASTERISK / "manager.conf"))
    user = next(c for c in cfg.categories if c.name == "ctilp")
    items = {i.name: i.value.split(";")[0].strip() for i in user.items}
    write = {w.strip() for w in items["write"].split(",")}
    assert write == {"call", "originate", "reporting"}
    assert not write & {"system", "command", "config", "all"}
