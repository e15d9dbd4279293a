"""AMI users as Asterisk 22 reads them from ``manager.conf``, and its per-session event filters.

``eventfilter`` semantics (Asterisk 22 ``main/manager.c``, reimplemented):

* ``eventfilter = <regex>`` includes, ``eventfilter = !<regex>`` excludes; the regex is searched in
  the whole event text (``Event: X\\r\\nPrivilege: ...\\r\\n...``).
* ``eventfilter(action(include|exclude),name(<Event>),header(<Header>),method(<m>)) = <pattern>``:
  ``name`` limits the filter to one event name, ``header`` matches the pattern against the value of
  each line that starts with ``<Header>:`` instead of the whole text; ``method`` is ``regex``
  (default of the legacy form), ``exact``, ``starts_with``, ``ends_with``, ``contains`` or ``none``
  (default of the advanced form: the filter matches on ``name``/``header`` alone, with no pattern).
  A leading ``!`` in the pattern still means exclude unless ``action(...)`` says otherwise.
* No filters: every event is sent. Include filters only: an event must match one. Exclude filters
  only: an event matching one is dropped. Both: it must match an include and no exclude.

The same parser serves the ``Filter`` action (``Operation: Add``, ``Filter``, ``MatchCriteria``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENT_CLASSES = frozenset({"system", "call", "log", "verbose", "command", "agent", "user", "config", "dtmf",
                           "reporting", "cdr", "dialplan", "originate", "agi", "cc", "aoc", "test",
                           "security", "message"})
log = logging.getLogger(__name__)
METHODS = ("regex", "exact", "starts_with", "ends_with", "contains", "none")


class FilterError(ValueError):
    """``kind``: ``format`` (badly formed criteria/pattern) or ``compile`` (the regex)."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


@dataclass(frozen=True)
class EventFilter:
    exclude: bool
    method: str
    pattern: str
    event: str | None = None
    header: str | None = None  # with its trailing ':'
    rx: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, criteria: str, pattern: str) -> EventFilter:
        """``criteria`` is the manager.conf key (``eventfilter`` or ``eventfilter(...)``)."""
        exclude = pattern.startswith("!")
        if exclude:
            pattern = pattern[1:]
        method, event, header = "regex", None, None
        start = criteria.find("(")
        if start < 0:
            if not pattern:
                raise FilterError("format", f"{criteria} = {pattern}: legacy filter without a pattern")
        else:
            opts = criteria[start + 1:].strip()
            if not opts or not opts.endswith(")"):
                raise FilterError("format", f"{criteria}: filter options not formatted correctly")
            method = "none"
            found: set[str] = set()
            for opt in (o for o in re.split(r"[ ,)]+", opts) if o):
                kind, paren, value = opt.partition("(")
                value = value.strip()
                if kind not in ("action", "name", "header", "method") or not paren or not value:
                    raise FilterError("format", f"{criteria}: option {opt!r} is unknown or empty")
                if kind == "action":
                    if value not in ("include", "exclude"):
                        raise FilterError("format", f"{criteria}: action {value!r} is unknown")
                    exclude = value == "exclude"
                elif kind == "name":
                    event = value
                elif kind == "header":
                    header = value if value.endswith(":") else value + ":"
                else:
                    if value not in METHODS:
                        raise FilterError("format", f"{criteria}: method {value!r} is unknown")
                    method = value
                found.add(kind)
            if not found:
                raise FilterError("format", f"{criteria}: no action, name, header or method option")
            if not pattern and method != "none":
                raise FilterError("format", f"{criteria}: method {method} needs a pattern")
            if pattern and method == "none":
                raise FilterError("format", f"{criteria}: method none takes no pattern")
            if method == "none" and event is None and header is None:
                raise FilterError("format", f"{criteria}: no name or header option and no pattern")
        rx = None
        if pattern and method == "regex":
            try:
                rx = re.compile(pattern)
            except re.error as e:
                raise FilterError("compile", f"{pattern!r}: {e}") from None
        return cls(exclude, method, pattern, event, header, rx)

    def _match(self, value: str) -> bool:
        m, p = self.method, self.pattern
        if m == "regex":
            return self.rx is not None and self.rx.search(value) is not None
        if m == "exact":
            return value == p
        if m == "starts_with":
            return value.startswith(p)
        if m == "ends_with":
            return value.endswith(p)
        if m == "contains":
            return p in value
        return True  # none

    def matches(self, name: str, text: str) -> bool:
        if self.event is not None and name != self.event:
            return False
        if self.header is None:
            return self._match(text)
        for line in text.split("\r\n"):
            if line.startswith(self.header):
                value = line[len(self.header):].lstrip(" \t")
                if value and self._match(value):
                    return True
        return False


@dataclass
class Filters:
    include: list[EventFilter]
    exclude: list[EventFilter]

    @classmethod
    def build(cls, lines: Iterable[tuple[str, str]]) -> Filters:
        """As Asterisk does at login, a filter that does not parse is logged and left out."""
        f = cls([], [])
        for criteria, pattern in lines:
            try:
                f.add(EventFilter.parse(criteria, pattern))
            except FilterError as e:
                log.warning("eventfilter ignored: %s", e)
        return f

    def add(self, flt: EventFilter) -> None:
        (self.exclude if flt.exclude else self.include).append(flt)

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)

    def allows(self, name: str, text: str) -> bool:
        if self.include and not any(f.matches(name, text) for f in self.include):
            return False
        return not any(f.matches(name, text) for f in self.exclude)


@dataclass(frozen=True)
class AmiUser:
    """One ``manager.conf`` user section (the parts the simulator honours)."""

    secret: str
    read: frozenset[str]
    write: frozenset[str]
    eventfilters: tuple[tuple[str, str], ...] = ()  # (key, value) as written: ("eventfilter", "!Event: CEL")
    writetimeout_ms: int | None = None

    def filters(self) -> Filters:
        return Filters.build(self.eventfilters)


UserSpec = AmiUser | tuple[Any, ...]  # also (secret, read, write) or (secret, read, write, eventfilters)


def as_user(spec: UserSpec) -> AmiUser:
    if isinstance(spec, AmiUser):
        return spec
    secret, read, write, *rest = spec
    lines = tuple(rest[0]) if rest else ()
    return AmiUser(secret, frozenset(c.lower() for c in read), frozenset(c.lower() for c in write),
                   tuple(("eventfilter", x) if isinstance(x, str) else tuple(x) for x in lines))


def perms(value: str) -> frozenset[str]:
    got = {c.strip().lower() for c in value.split(",") if c.strip()}
    if "all" in got:
        return EVENT_CLASSES
    return frozenset(got & EVENT_CLASSES)


def _strip_comment(line: str) -> str:
    out, i = [], 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line) and line[i + 1] == ";":
            out.append(";")
            i += 2
            continue
        if line[i] == ";":
            break
        out.append(line[i])
        i += 1
    return "".join(out).strip()


def parse_manager_conf(text: str) -> dict[str, AmiUser]:
    """The user sections of a manager.conf text (``[general]`` and templates skipped)."""
    users: dict[str, AmiUser] = {}
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = _strip_comment(raw)
        if not line:
            continue
        if line.startswith("["):
            name, _, rest = line[1:].partition("]")
            sections.append((name.strip(), [] if "!" not in rest else [("__template__", "")]))
            continue
        if not sections:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        sections[-1][1].append((key.strip(), value.lstrip(">").strip()))
    for name, items in sections:
        if name.lower() == "general" or any(k == "__template__" for k, _ in items):
            continue
        d = {k.lower(): v for k, v in items}
        if "secret" not in d:
            continue
        wt = d.get("writetimeout", "")
        users[name] = AmiUser(d["secret"], perms(d.get("read", "")), perms(d.get("write", "")),
                              tuple((k, v) for k, v in items if k.lower().startswith("eventfilter")),
                              int(wt) if wt.isdigit() else None)
    return users


def load_manager_conf(path: str | Path) -> dict[str, AmiUser]:
    return parse_manager_conf(Path(path).read_text())
