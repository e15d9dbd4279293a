"""Sans-I/O Asterisk Manager Interface framing.

Bytes in, messages out; no sockets, no asyncio, no logging.

* The banner ``Asterisk Call Manager/11.0.0\\r\\n`` is one line with no blank line after
  it; it is returned as :class:`Banner`.
* A message is ``Name: value`` lines ended by an empty line.  Lines end with ``\\r\\n``
  (Asterisk never sends anything else) but a bare ``\\n`` is accepted too.
* Headers are split at the first ``": "``; values may contain ``": "`` and may be empty
  (``AccountCode: ``); names may repeat (``Variable:``).  A line without ``": "`` is kept
  as a header with an empty name (``Command`` output of old versions).
* Every buffer is bounded: a line longer than ``max_line`` or a message with more than
  ``max_headers`` headers / ``max_message`` bytes raises :class:`AmiFramingError`.

Exceptions::

    AmiError
     ├── AmiProtocolError        the peer broke the protocol (remote)
     │    └── AmiFramingError    oversized line/message, bad banner
     └── AmiInjectionError       we were asked to write CR/LF/NUL in a header (local)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

MAX_LINE = 64 * 1024
MAX_MESSAGE = 1024 * 1024
MAX_HEADERS = 4096


class AmiError(Exception):
    """Root of the AMI exceptions."""


class AmiProtocolError(AmiError):
    """The peer sent something the protocol does not allow."""


class AmiFramingError(AmiProtocolError):
    """A line or message exceeded its bound, or the banner was not a banner."""


class AmiInjectionError(AmiError, ValueError):
    """A header name or value would break the framing (CR, LF or NUL)."""


@dataclass(frozen=True, slots=True)
class Banner:
    text: str

    @property
    def version(self) -> str:
        return self.text.rpartition("/")[2]


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI message (action, response or event) with its headers in wire order."""

    headers: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return default

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def get_all(self, name: str) -> list[str]:
        low = name.lower()
        return [v for k, v in self.headers if k.lower() == low]

    def as_dict(self) -> dict[str, str]:
        """First value of each header (names as sent)."""
        d: dict[str, str] = {}
        for k, v in self.headers:
            d.setdefault(k, v)
        return d

    @property
    def first(self) -> tuple[str, str]:
        return self.headers[0] if self.headers else ("", "")

    @property
    def is_event(self) -> bool:
        return self.first[0].lower() == "event"

    @property
    def is_response(self) -> bool:
        return self.first[0].lower() == "response"

    @property
    def is_action(self) -> bool:
        return self.first[0].lower() == "action"

    @property
    def name(self) -> str:
        """The value of the first header: event name, response status or action name."""
        return self.first[1]

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)


class AmiParser:
    """Incremental AMI parser: ``feed(bytes) -> [Banner | Message, ...]``."""

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        max_line: int = MAX_LINE,
        max_message: int = MAX_MESSAGE,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self._buf = bytearray()
        self._need_banner = expect_banner
        self._headers: list[tuple[str, str]] = []
        self._msg_bytes = 0
        self.max_line = max_line
        self.max_message = max_message
        self.max_headers = max_headers
        self.messages_parsed = 0

    def feed(self, data: bytes) -> list[Banner | Message]:
        out: list[Banner | Message] = []
        buf = self._buf
        buf += data
        start = 0
        find = buf.find
        headers = self._headers
        while True:
            nl = find(b"\n", start)
            if nl < 0:
                break
            end = nl
            if end > start and buf[end - 1] == 0x0D:
                end -= 1
            if end - start > self.max_line:
                raise AmiFramingError(f"AMI line of {end - start} bytes exceeds {self.max_line}")
            line = buf[start:end].decode("utf-8", "replace")
            self._msg_bytes += nl + 1 - start
            start = nl + 1
            if self._need_banner:
                self._need_banner = False
                if not line.startswith("Asterisk Call Manager/"):
                    raise AmiFramingError(f"not an AMI banner: {line[:80]!r}")
                out.append(Banner(line))
                self._msg_bytes = 0
                continue
            if not line:
                if headers:
                    out.append(Message(tuple(headers)))
                    self.messages_parsed += 1
                    headers = self._headers = []
                self._msg_bytes = 0
                continue
            k, sep, v = line.partition(": ")
            if not sep:
                if line.endswith(":"):
                    k, v = line[:-1], ""
                else:
                    k, v = "", line
            headers.append((k, v))
            if len(headers) > self.max_headers or self._msg_bytes > self.max_message:
                raise AmiFramingError(
                    f"AMI message exceeds {self.max_headers} headers / {self.max_message} bytes"
                )
        if start:
            del buf[:start]
        if len(buf) > self.max_line:
            raise AmiFramingError(f"AMI line exceeds {self.max_line} bytes without a terminator")
        return out

    @property
    def buffered(self) -> int:
        return len(self._buf)


_BAD = ("\r", "\n", "\0")


def check_value(name: str, value: str) -> None:
    """Refuse anything that would end a line or message early (header injection)."""
    for ch in _BAD:
        if ch in value or ch in name:
            raise AmiInjectionError(f"AMI header {name!r} contains {ch!r}: refused")
    if not name or ": " in name or name != name.strip():
        raise AmiInjectionError(f"invalid AMI header name {name!r}")


def format_message(headers: Iterable[tuple[str, str]]) -> bytes:
    """Serialise headers as one CRLF-framed message; every name/value is checked."""
    parts: list[str] = []
    for k, v in headers:
        v = str(v)
        check_value(k, v)
        parts.append(f"{k}: {v}\r\n")
    if not parts:
        raise AmiInjectionError("empty AMI message")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


Fields = Mapping[str, object] | Iterable[tuple[str, object]]


def _pairs(fields: Fields | None) -> list[tuple[str, str]]:
    if fields is None:
        return []
    items = fields.items() if isinstance(fields, Mapping) else fields
    out: list[tuple[str, str]] = []
    for k, v in items:
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        if isinstance(v, (list, tuple)):
            out.extend((k, str(x)) for x in v)  # repeated header, e.g. Variable
        else:
            out.append((k, str(v)))
    return out


def format_action(action: str, action_id: str | None = None, fields: Fields | None = None) -> bytes:
    """``Action: X`` + ``ActionID`` + fields, framed and injection-checked."""
    headers: list[tuple[str, str]] = [("Action", action)]
    if action_id is not None:
        headers.append(("ActionID", action_id))
    headers.extend(_pairs(fields))
    return format_message(headers)
