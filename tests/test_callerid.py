"""One place cleans caller-controlled numbers: the AMI and AGI spellings of "no caller ID" agree."""

from __future__ import annotations

import pytest

from cti.callerid import clean_caller
from ivr.runner import _caller


@pytest.mark.parametrize(("raw", "clean"), [
    (None, ""), ("", ""), ("<unknown>", ""), ("unknown", ""), ("Unknown", ""), (" <unknown> ", ""),
    ("+33612345678", "+33612345678"), ("0612 34", "0612 34"),
    ("Alice\r\nAction: Hangup", "AliceAction: Hangup"), ("<b>x</b>", "<b>x</b>"),
])
def test_clean_caller(raw: str | None, clean: str) -> None:
    assert clean_caller(raw) == clean


@pytest.mark.parametrize("absent", ["unknown", "<unknown>", ""])
def test_ivr_and_tracker_agree_on_absent_callerid(absent: str) -> None:
    assert _caller({"agi_callerid": absent}, "agi_callerid") == clean_caller(absent) == ""
