"""The one place that cleans caller-controlled numbers and names (CallerID, connected line).

Asterisk says "no caller ID" in two spellings: ``<unknown>`` in AMI events and ``unknown`` in the AGI
environment. Both become ``""`` here, so the pop, the IVR and the call log agree on who called. Control
characters (a CR/LF smuggled into a CallerID name) are dropped; the value is otherwise kept as sent.
"""

from __future__ import annotations

import re

_ABSENT = frozenset({"", "unknown", "<unknown>"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean_caller(value: str | None) -> str:
    """A CallerID number or name as the rest of the system should see it: ``""`` when Asterisk has none."""
    if value is None:
        return ""
    text = _CONTROL.sub("", value).strip()
    return "" if text.lower() in _ABSENT else text
