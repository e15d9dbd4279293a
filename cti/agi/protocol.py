"""Sans-I/O FastAGI: the ``agi_*`` environment, command formatting, reply parsing.

Bytes in, events out; no sockets, no asyncio, no logging.  FastAGI uses ``\\n`` only.
Asterisk sends the environment (``agi_key: value`` lines, an empty line), then answers
each command line with ``200 result=...``, ``510 ...``, ``511 ...`` or a multi-line
``520-...`` / ``520 End of proper usage.``; a bare ``HANGUP`` line may arrive at any
time, even between a command and its reply.

Exceptions live in :mod:`cti.agi.errors`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from cti.agi.errors import AgiInjectionError, AgiProtocolError

MAX_LINE = 8192
MAX_ENV_LINES = 512
MAX_USAGE_LINES = 200

ENV_ORDER = (
    "agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language",
    "agi_type", "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname",
    "agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns", "agi_dnid",
    "agi_rdnis", "agi_context", "agi_extension", "agi_priority", "agi_enhanced",
    "agi_accountcode", "agi_threadid",
)


@dataclass(frozen=True, slots=True)
class Environment:
    """The ``agi_*`` variables, in order, plus derived routing data."""

    vars: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str = "") -> str:
        for k, v in self.vars:
            if k == key:
                return v
        return default

    def as_dict(self) -> dict[str, str]:
        return dict(self.vars)

    @property
    def script(self) -> str:
        """``agi_network_script`` without its query string."""
        return self.get("agi_network_script").partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.get("agi_network_script").partition("?")[2]))

    @property
    def args(self) -> list[str]:
        out: list[str] = []
        n = 1
        while True:
            key = f"agi_arg_{n}"
            if not any(k == key for k, _ in self.vars):
                return out
            out.append(self.get(key))
            n += 1


@dataclass(frozen=True, slots=True)
class Reply:
    """A parsed command reply."""

    code: int
    result: str = ""
    data: str | None = None  # the "(...)" part
    extra: dict[str, str] = field(default_factory=dict)  # e.g. endpos
    text: str = ""  # the raw text after the code (for 510/511/520)
    usage: tuple[str, ...] = ()

    @property
    def result_int(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return 0

    @property
    def endpos(self) -> int | None:
        v = self.extra.get("endpos")
        d = v.lstrip("-") if v is not None else ""
        return int(v) if v is not None and d.isascii() and d.isdigit() else None


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """A bare ``HANGUP`` line: the channel hung up or was redirected (AGISIGHUP)."""


HANGUP_NOTICE = HangupNotice()
"""The parser hands out this one instance (all instances are equal anyway)."""

_RESULT_RE = re.compile(r"^result=(\S*)(?:\s+\((.*)\))?((?:\s+\w+=\S*)*)\s*$")
# one environment line as Asterisk writes it (ASCII key; anything else takes the careful path)
_ENV_LINE_RE = re.compile(r"^(agi_[A-Za-z0-9_]*):(?: ([^\n]*))?$", re.M)


def parse_reply_line(line: str) -> Reply:
    """Parse a single-line reply such as ``200 result=1 (value) endpos=123``."""
    code_s, _, rest = line.partition(" ")
    if len(code_s) != 3 or not (code_s.isascii() and code_s.isdigit()):
        raise AgiProtocolError(f"malformed AGI reply {line[:80]!r}")
    code = int(code_s)
    if code != 200:
        return Reply(code=code, text=rest)
    return _parse_200(rest)


def _parse_200(rest: str) -> Reply:
    """``rest`` is what follows ``200 ``."""
    if rest.startswith("result=") and rest.isascii():
        # the common forms without the regex: ``result=0``, ``result= (timeout)``,
        # ``result=0 endpos=11234``; same answers as _RESULT_RE (tests check both ways)
        value = rest[7:]
        head, sp, tail = value.partition(" ")
        if head.isprintable() and (not sp or tail.isprintable()):
            if not sp:
                return Reply(200, head, None, {}, rest)
            if tail[:1] == "(" and tail[-1:] == ")":
                return Reply(200, head, tail[1:-1], {}, rest)
            if " " not in tail and "(" not in tail:
                k, eq, v = tail.partition("=")
                if eq and k and k.replace("_", "a").isalnum():
                    return Reply(200, head, None, {k: v}, rest)
    m = _RESULT_RE.match(rest)
    if not m:
        raise AgiProtocolError(f"malformed AGI 200 reply {('200 ' + rest)[:80]!r}")
    result, data, tail = m.group(1), m.group(2), m.group(3)
    extra: dict[str, str] = {}
    for part in tail.split():
        k, _, v = part.partition("=")
        extra[k] = v
    return Reply(code=200, result=result, data=data, extra=extra, text=rest)


class AgiParser:
    """Incremental parser for what Asterisk sends to a FastAGI server."""

    def __init__(self, *, max_line: int = MAX_LINE, max_env_lines: int = MAX_ENV_LINES) -> None:
        self._buf = bytearray()
        self._env: list[tuple[str, str]] | None = []
        self._usage: list[str] | None = None
        self.max_line = max_line
        self.max_env_lines = max_env_lines
        self.env_done = False

    def feed(self, data: bytes) -> list[Environment | Reply | HangupNotice]:
        if self._buf:
            self._buf += data
            data = bytes(self._buf)
            self._buf.clear()
        out: list[Environment | Reply | HangupNotice] = []
        start = 0
        if not self.env_done and not self._env:
            start = self._whole_env(data, out)
        max_line = self.max_line
        find = data.find
        while True:
            nl = find(b"\n", start)
            if nl < 0:
                break
            if nl - start > max_line:
                raise AgiProtocolError(f"AGI line of {nl - start} bytes exceeds {max_line}")
            raw = data[start:nl]
            start = nl + 1
            if self._usage is None and self.env_done:
                # the usual replies, without the general path (decode, dispatch)
                if raw.startswith(b"200 ") and raw.isascii() and not raw.endswith(b"\r"):
                    out.append(_parse_200(raw[4:].decode("ascii")))
                    continue
                if raw == b"HANGUP":
                    out.append(HANGUP_NOTICE)
                    continue
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode("latin-1")
            ev = self._line(line)
            if ev is not None:
                out.append(ev)
        if start < len(data):
            rest = data[start:]
            if len(rest) > max_line:
                raise AgiProtocolError(f"AGI line exceeds {max_line} bytes without a terminator")
            self._buf += rest
        return out

    def _whole_env(self, data: bytes, out: list[Environment | Reply | HangupNotice]) -> int:
        """A whole, plain environment block at the start of ``data`` in one regex pass.

        Returns where the block ends (0: not taken; the line-by-line path decides, also
        on every error).  Only plain blocks qualify: ASCII keys, UTF-8, LF only, within
        the line and line-count limits (checked conservatively).
        """
        end = data.find(b"\n\n")
        if end <= 0 or end >= self.max_line or b"\r" in data[:end]:
            return 0
        try:
            text = data[:end + 1].decode("utf-8")
        except UnicodeDecodeError:
            return 0
        pairs = _ENV_LINE_RE.findall(text)
        if len(pairs) != text.count("\n") or len(pairs) > self.max_env_lines:
            return 0
        self.env_done = True
        self._env = None
        out.append(Environment(tuple(pairs)))
        return end + 2

    def _line(self, line: str) -> Environment | Reply | HangupNotice | None:
        if not self.env_done:
            assert self._env is not None
            if line == "":
                if not self._env:
                    raise AgiProtocolError("empty AGI environment")
                self.env_done = True
                env = Environment(tuple(self._env))
                self._env = None
                return env
            if line == "HANGUP":
                return HANGUP_NOTICE
            key, sep, value = line.partition(": ")
            if not sep and line.endswith(":"):
                key, sep, value = line[:-1], ":", ""
            if not sep or not key.startswith("agi_") or not key.replace("_", "").isalnum():
                raise AgiProtocolError(f"malformed AGI environment line {line[:80]!r}")
            self._env.append((key, value))
            if len(self._env) > self.max_env_lines:
                raise AgiProtocolError(f"AGI environment exceeds {self.max_env_lines} lines")
            return None
        if self._usage is not None:
            if line.startswith("520 "):
                usage = tuple(self._usage)
                self._usage = None
                return Reply(code=520, text=line[4:], usage=usage)
            self._usage.append(line)
            if len(self._usage) > MAX_USAGE_LINES:
                raise AgiProtocolError("AGI 520 usage text too long")
            return None
        if line == "HANGUP":
            return HANGUP_NOTICE
        if line.startswith("520-"):
            self._usage = [line[4:]]
            return None
        if line == "":
            return None
        return parse_reply_line(line)


# -- commands ---------------------------------------------------------------------------

_NEEDS_QUOTES = re.compile(r'[\s"\\]')
_NEEDS_CARE = re.compile(r'[\s"\\\0]')  # anything that is not a plain token: quote or refuse


def quote_arg(arg: object) -> str:
    """Quote one argument for Asterisk's AGI tokenizer; refuse line breaks and NUL."""
    if arg.__class__ is int:
        return str(arg)
    s = arg if arg.__class__ is str else str(arg)
    if s and _NEEDS_CARE.search(s) is None:  # the usual token: nothing to quote or refuse
        return s
    if "\n" in s or "\r" in s or "\0" in s:
        raise AgiInjectionError(f"AGI argument contains a line break or NUL: {s[:40]!r}")
    if s == "":
        return '""'
    if _NEEDS_QUOTES.search(s):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


MAX_COMMAND_LINE = 2048  # res_agi.c AGI_BUF_LEN, terminator included


def format_command(verb: str, *args: object) -> bytes:
    """``VERB arg1 arg2\\n`` with each argument quoted as needed."""
    if "\n" in verb or "\r" in verb or "\0" in verb:
        raise AgiInjectionError("AGI verb contains a line break")
    if not args:
        line = (verb + "\n").encode("utf-8")
    else:
        line = (verb + " " + " ".join([quote_arg(a) for a in args]) + "\n").encode("utf-8")
    if len(line) >= MAX_COMMAND_LINE:
        # Asterisk reads commands into a 2048-byte buffer: the rest of a longer line would
        # run as a command of its own (and its reply answer the next one)
        raise AgiInjectionError(
            f"AGI command line of {len(line)} bytes (Asterisk takes at most {MAX_COMMAND_LINE - 1})")
    return line


def split_command(line: str) -> list[str]:
    """Asterisk's AGI argument tokenizer (whitespace separates, quotes group, ``\\`` escapes)."""
    out: list[str] = []
    cur: list[str] = []
    in_arg = quoted = escaped = False
    for ch in line:
        if escaped:
            cur.append(ch)
            escaped = False
            in_arg = True
            continue
        if ch == "\\":
            escaped = True
            in_arg = True
            continue
        if ch == '"':
            quoted = not quoted
            in_arg = True
            continue
        if ch in " \t" and not quoted:
            if in_arg:
                out.append("".join(cur))
                cur = []
                in_arg = False
            continue
        cur.append(ch)
        in_arg = True
    if in_arg:
        out.append("".join(cur))
    return out


def format_env(env: Mapping[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """The environment block as Asterisk writes it (for the simulator)."""
    items = env.items() if isinstance(env, Mapping) else env
    lines = []
    for k, v in items:
        if "\n" in v or "\r" in v:
            raise AgiInjectionError(f"AGI environment value for {k} contains a line break")
        lines.append(f"{k}: {v}\n")
    lines.append("\n")
    return "".join(lines).encode("utf-8")


def format_reply(code: int, result: str | int | None = None, data: str | None = None,
                 **extra: object) -> bytes:
    """A ``200 result=...`` reply (for the simulator)."""
    if code != 200:
        raise ValueError("format_reply builds 200 replies only")
    s = f"200 result={'' if result is None else result}"
    if data is not None:
        s += f" ({data})"
    for k, v in extra.items():
        s += f" {k}={v}"
    return (s + "\n").encode("utf-8")
