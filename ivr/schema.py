"""Reading one node's table: every field checked for type and range, every problem collected.

:func:`parse_node` returns the node (or None when it cannot be built) and appends a
:class:`FlowError` naming file, node id and field for each problem; it never stops at the first.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from ivr.errors import FlowError
from ivr.nodes import (
    BranchNode,
    CallbackNode,
    CollectNode,
    Condition,
    GotoNode,
    HangupNode,
    HoursNode,
    LookupNode,
    MenuNode,
    Node,
    PlayNode,
    QueueNode,
    SayNode,
    SetNode,
    TransferNode,
    VoicemailNode,
)

DIGITS = re.compile(r"^[0-9*#]+$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NUMBER = re.compile(r"^\+?[0-9]{2,20}$")
AGENT = re.compile(r"^[0-9]+$")
RANGE = re.compile(r"^([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "set", "unset")
CUSTOMER_FIELDS = ("id", "tier", "churn_risk", "account_no", "account_manager", "name")
QUEUE_FIGURES = ("ewt_s", "waiting", "agents_ready")
_MISSING = object()


class Fields:
    """One node's table: typed getters that record a problem and return None instead of raising."""

    def __init__(self, file: str, node: str, data: Mapping[str, Any], errors: list[FlowError]) -> None:
        self.file, self.node, self.data, self.errors = file, node, data, errors
        self.used: set[str] = {"type", "kind"}

    def fail(self, fld: str, reason: str) -> None:
        self.errors.append(FlowError(self.file, fld, reason, node=self.node))

    def raw(self, key: str, required: bool) -> Any:
        self.used.add(key)
        v = self.data.get(key, _MISSING)
        if v is _MISSING and required:
            self.fail(key, "missing")
        return v

    def str_(self, key: str, required: bool = True, pattern: re.Pattern[str] | None = None,
             what: str = "a non-empty string") -> str | None:
        v = self.raw(key, required)
        if v is _MISSING:
            return None
        if not isinstance(v, str) or not v or (pattern is not None and not pattern.match(v)):
            self.fail(key, f"must be {what}, got {v!r}")
            return None
        return v

    def exit(self, key: str, required: bool = True) -> str | None:
        return self.str_(key, required, NAME, "a node id")

    def int_(self, key: str, default: int, lo: int, hi: int) -> int:
        v = self.raw(key, False)
        if v is _MISSING:
            return default
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            self.fail(key, f"must be an integer in {lo}..{hi}, got {v!r}")
            return default
        return v

    def bool_(self, key: str, default: bool = False) -> bool:
        v = self.raw(key, False)
        if v is _MISSING:
            return default
        if not isinstance(v, bool):
            self.fail(key, f"must be true or false, got {v!r}")
            return default
        return v

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        v = self.raw(key, False)
        if v is _MISSING:
            return default
        if v not in choices:
            self.fail(key, f"must be one of {', '.join(choices)}, got {v!r}")
            return default
        return str(v)

    def finish(self) -> None:
        for k in self.data:
            if k not in self.used:
                self.fail(k, "unknown field for this node type")


def _str_list(f: Fields, key: str) -> tuple[str, ...] | None:
    v = f.raw(key, False)
    if v is _MISSING:
        return None
    if isinstance(v, str) and v:
        return (v,)
    if not isinstance(v, list) or not v or not all(isinstance(s, str) and s for s in v):
        f.fail(key, "must be a non-empty list of names")
        return None
    return tuple(v)


def _play(f: Fields) -> Node | None:
    ps = _str_list(f, "prompts")
    one = f.str_("prompt", False)
    if ps is None and one is None and "prompts" not in f.data:
        f.fail("prompts", "missing")
    nxt, barge = f.exit("next"), f.bool_("barge_in")
    prompts = ps or ((one,) if one else ())
    return PlayNode(f.node, prompts, nxt, barge) if prompts and nxt else None


def _menu(f: Fields) -> Node | None:
    prompt, max_digits = f.str_("prompt"), f.int_("max_digits", 1, 1, 32)
    opts = f.raw("options", True)
    options: dict[str, str] = {}
    if isinstance(opts, dict) and opts:
        for digit, target in opts.items():
            key = f"options.{digit}"
            if not DIGITS.match(digit) or len(digit) > max_digits:
                f.fail(key, f"bad digits {digit!r} (0-9, *, #; at most max_digits = {max_digits} long)")
                continue
            t = target.get("goto", target.get("next")) if isinstance(target, dict) else target
            if not isinstance(t, str) or not NAME.match(t):
                f.fail(key, "must be a node id (or a table with next = node id)")
                continue
            options[digit] = t
    elif opts is not _MISSING:
        f.fail("options", "must be a table of digits = node id, with at least one option")
    on_timeout, on_invalid = f.exit("on_timeout", False), f.exit("on_invalid", False)
    fallback, on_fail = f.exit("fallback", False), f.exit("on_fail", False)  # on_fail: the 1.0 name
    fallback = fallback or on_fail or on_timeout
    if fallback is None and "fallback" not in f.data and "on_fail" not in f.data:
        f.fail("fallback", "missing")
    node = MenuNode(
        f.node, prompt or "", options, fallback or "",
        timeout_ms=f.int_("timeout_ms", 3000, 100, 120_000), max_digits=max_digits,
        retries=f.int_("retries", 2, 0, 20), invalid_prompt=f.str_("invalid_prompt", False),
        no_input_prompt=f.str_("no_input_prompt", False), on_timeout=on_timeout, on_invalid=on_invalid)
    return node if prompt and options and fallback else None


def _collect(f: Fields) -> Node | None:
    prompt, var = f.str_("prompt"), f.str_("var", True, VAR, "a variable name")
    nxt, fallback = f.exit("next"), f.exit("fallback")
    lo, hi = f.int_("min_digits", 1, 1, 64), f.int_("max_digits", 16, 1, 64)
    if lo > hi:
        f.fail("min_digits", f"must not exceed max_digits ({lo} > {hi})")
    term = f.str_("terminator", False, re.compile(r"^[0-9*#]$"), "one key (0-9, *, #)") or "#"
    pattern = f.str_("pattern", False)
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            f.fail("pattern", f"bad regular expression: {exc}")
            pattern = None
    node = CollectNode(
        f.node, prompt or "", var or "", nxt or "", fallback or "", lo, hi, term, pattern,
        retries=f.int_("retries", 2, 0, 20), timeout_ms=f.int_("timeout_ms", 5000, 100, 120_000),
        sensitive=f.bool_("sensitive"), invalid_prompt=f.str_("invalid_prompt", False))
    return node if prompt and var and nxt and fallback else None


def _lookup(f: Fields) -> Node | None:
    by = f.choice("by", ("ani", "digits"), "ani")
    var = f.str_("var", by == "digits", VAR, "a variable name")
    legacy = f.exit("next", False)  # 1.0 format: one exit for every outcome
    found = f.exit("found", legacy is None) or legacy
    not_found = f.exit("not_found", legacy is None) or legacy
    several = f.exit("several", False) or not_found
    tiers = f.raw("if_tier", False)
    if_tier: dict[str, str] = {}
    if tiers is not _MISSING:
        if isinstance(tiers, dict) and all(isinstance(v, str) and NAME.match(v) for v in tiers.values()):
            if_tier = dict(tiers)
        else:
            f.fail("if_tier", "must be a table of tier = node id")
    if found and not_found and several:
        return LookupNode(f.node, found, not_found, several, by, var, if_tier)
    return None


def _minutes(hh: str, mm: str) -> int:
    return int(hh) * 60 + int(mm)


def _hours(f: Fields) -> Node | None:
    tz = f.str_("timezone")
    if tz is not None:
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            f.fail("timezone", f"unknown time zone {tz!r} (an IANA name such as 'Europe/Paris')")
            tz = None
    week: dict[int, tuple[tuple[int, int], ...]] = {}
    raw = f.raw("week", True)
    if isinstance(raw, dict):
        for day, spans in raw.items():
            key = f"week.{day}"
            if day not in WEEKDAYS:
                f.fail(key, f"unknown weekday (one of {', '.join(WEEKDAYS)})")
                continue
            if not isinstance(spans, list) or not all(isinstance(s, str) for s in spans):
                f.fail(key, 'must be a list of "HH:MM-HH:MM" ranges ([] = closed all day)')
                continue
            out = []
            for s in spans:
                m = RANGE.match(s)
                a, b = (_minutes(m[1], m[2]), _minutes(m[3], m[4])) if m else (0, 0)
                if not m or int(m[2]) > 59 or int(m[4]) > 59 or not 0 <= a < b <= 24 * 60:
                    f.fail(key, f'bad range {s!r} (want "HH:MM-HH:MM", from before to, within 00:00-24:00)')
                    continue
                out.append((a, b))
            week[WEEKDAYS.index(day)] = tuple(sorted(out))
    elif raw is not _MISSING:
        f.fail("week", 'must be a table of weekday = ["HH:MM-HH:MM", ...]')
    holidays: set[date] = set()
    hol = f.raw("holidays", False)
    if hol is not _MISSING:
        if not isinstance(hol, list):
            f.fail("holidays", "must be a list of dates (YYYY-MM-DD)")
        else:
            for i, d in enumerate(hol):
                if isinstance(d, date):
                    holidays.add(d)
                    continue
                try:
                    holidays.add(date.fromisoformat(d) if isinstance(d, str) else date.fromisoformat(""))
                except ValueError:
                    f.fail(f"holidays.{i}", f"bad date {d!r} (want YYYY-MM-DD)")
    o, c = f.exit("open"), f.exit("closed")
    h = f.exit("holiday", False) or c
    if tz and o and c and h:
        return HoursNode(f.node, tz, week, frozenset(holidays), o, c, h)
    return None


def _condition(f: Fields, i: int, c: Any) -> Condition | None:
    key = f"when.{i}"
    if not isinstance(c, dict):
        f.fail(key, "must be a table with var, op, value, next")
        return None
    for k in c:
        if k not in ("var", "op", "value", "next"):
            f.fail(f"{key}.{k}", "unknown field of a condition")
    var, op, value, nxt = c.get("var"), c.get("op", "eq"), c.get("value"), c.get("next")
    ok = True
    parts = var.split(".") if isinstance(var, str) else []
    if not (
        (len(parts) == 2 and parts[0] == "call" and VAR.match(parts[1]))
        or (len(parts) == 2 and parts[0] == "customer" and parts[1] in CUSTOMER_FIELDS)
        or (len(parts) == 3 and parts[0] == "queue" and NAME.match(parts[1]) and parts[2] in QUEUE_FIGURES)
    ):
        f.fail(f"{key}.var", f"must be call.NAME, customer.({'|'.join(CUSTOMER_FIELDS)}) or "
                             f"queue.NAME.({'|'.join(QUEUE_FIGURES)}), got {var!r}")
        ok = False
    if op not in OPS:
        f.fail(f"{key}.op", f"must be one of {', '.join(OPS)}, got {op!r}")
        return None
    val: str | float | tuple[str, ...] | None = None
    if op in ("lt", "le", "gt", "ge"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            f.fail(f"{key}.value", f"must be a number for op {op}, got {value!r}")
            ok = False
        else:
            val = float(value)
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            f.fail(f"{key}.value", f"must be a list for op {op}, got {value!r}")
            ok = False
        else:
            val = tuple(str(v) for v in value)
    elif op in ("eq", "ne"):
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            f.fail(f"{key}.value", f"must be a string or a number for op {op}, got {value!r}")
            ok = False
        else:
            val = str(value)
    elif value is not None:
        f.fail(f"{key}.value", f"op {op} takes no value")
    if not isinstance(nxt, str) or not NAME.match(nxt):
        f.fail(f"{key}.next", "missing" if nxt is None else f"must be a node id, got {nxt!r}")
        ok = False
    return Condition(str(var), str(op), val, str(nxt)) if ok else None


def _branch(f: Fields) -> Node | None:
    raw = f.raw("when", True)
    conds: list[Condition] = []
    bad = raw is _MISSING
    if isinstance(raw, list) and raw:
        for i, c in enumerate(raw):
            cond = _condition(f, i, c)
            bad = bad or cond is None
            if cond is not None:
                conds.append(cond)
    elif raw is not _MISSING:
        f.fail("when", "must be a non-empty list of conditions ([[nodes.ID.when]])")
        bad = True
    default = f.exit("default")
    return BranchNode(f.node, tuple(conds), default) if default and not bad else None


def _set(f: Fields) -> Node | None:
    raw, nxt = f.raw("vars", True), f.exit("next")
    vars_: dict[str, str] = {}
    if isinstance(raw, dict) and raw:
        for k, v in raw.items():
            if not VAR.match(k):
                f.fail(f"vars.{k}", "bad variable name")
            elif not isinstance(v, (str, int)) or isinstance(v, bool):
                f.fail(f"vars.{k}", f"must be a string or an integer, got {v!r}")
            else:
                vars_[k] = str(v)
    elif raw is not _MISSING:
        f.fail("vars", "must be a non-empty table of name = value")
    return SetNode(f.node, vars_, nxt) if nxt and vars_ else None


def _queue(f: Fields) -> Node | None:
    queue = f.str_("queue", True, NAME, "a queue name")
    raw = f.raw("skills", True)
    skills: tuple[str, ...] = ()
    levels: dict[str, int] = {}
    if isinstance(raw, list) and raw and all(isinstance(s, str) and s for s in raw):
        skills = tuple(raw)
    elif isinstance(raw, dict) and raw:
        for k, v in raw.items():
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 10:
                f.fail(f"skills.{k}", f"minimum level must be an integer in 1..10, got {v!r}")
            else:
                levels[k] = v
        skills = tuple(raw)
    elif raw is not _MISSING:
        f.fail("skills", "must be a non-empty list of skills, or a table of skill = minimum level (1..10)")
    pref = f.raw("preferred_agent", False)
    if pref is not _MISSING and not (isinstance(pref, str) and (pref == "account_manager" or AGENT.match(pref))):
        f.fail("preferred_agent", f'must be an agent id or "account_manager", got {pref!r}')
    preferred = pref if isinstance(pref, str) and pref else None
    prio = f.int_("priority", 0, -1000, 1000)
    return QueueNode(f.node, queue, skills, prio, levels, preferred) if queue and skills else None


def _callback(f: Fields) -> Node | None:
    queue, prompt, confirm = f.str_("queue", True, NAME, "a queue name"), f.str_("prompt"), f.str_("confirm_prompt")
    declined = f.exit("declined")
    node = CallbackNode(f.node, queue or "", prompt or "", confirm or "", declined or "",
                        f.str_("done_prompt", False), f.int_("timeout_ms", 5000, 100, 120_000))
    return node if queue and prompt and confirm and declined else None


def _voicemail(f: Fields) -> Node | None:
    prompt, nxt, max_s = f.str_("prompt"), f.exit("next"), f.int_("max_s", 120, 5, 3600)
    return VoicemailNode(f.node, prompt, nxt, max_s) if prompt and nxt else None


def _transfer(f: Fields) -> Node | None:
    number, flow = f.str_("number", False, NUMBER, "a phone number"), f.str_("flow", False, NAME, "a flow name")
    if ("number" in f.data) == ("flow" in f.data):
        f.fail("number", "give exactly one of number or flow")
    return TransferNode(f.node, number, flow) if bool(number) != bool(flow) else None


def _say(f: Fields) -> Node | None:
    var, nxt = f.str_("var", True, VAR, "a variable name"), f.exit("next")
    say_as = f.choice("as", ("digits", "number"), "digits")
    return SayNode(f.node, var, nxt, say_as) if var and nxt else None


def _hangup(f: Fields) -> Node | None:
    return HangupNode(f.node, f.str_("prompt", False))


def _goto(f: Fields) -> Node | None:
    flow = f.str_("flow", True, NAME, "a flow name")
    return GotoNode(f.node, flow) if flow else None


PARSERS: dict[str, Callable[[Fields], Node | None]] = {
    "play": _play, "menu": _menu, "collect": _collect, "lookup": _lookup, "hours": _hours, "branch": _branch,
    "set": _set, "queue": _queue, "callback": _callback, "voicemail": _voicemail, "transfer": _transfer,
    "say": _say, "hangup": _hangup, "goto": _goto,
}


def parse_node(file: str, name: str, data: Any, errors: list[FlowError]) -> Node | None:
    if not NAME.match(name):
        errors.append(FlowError(file, "", "bad node id (letters, digits, _ and -)", node=name))
        return None
    if not isinstance(data, dict):
        errors.append(FlowError(file, "", "must be a table", node=name))
        return None
    key = "type" if "type" in data or "kind" not in data else "kind"
    kind = data.get(key)
    if kind not in PARSERS:
        reason = "missing" if kind is None else f"unknown node type {kind!r}"
        errors.append(FlowError(file, key, f"{reason} (one of {', '.join(PARSERS)})", node=name))
        return None
    f = Fields(file, name, data, errors)
    node = PARSERS[kind](f)
    f.finish()
    return node
