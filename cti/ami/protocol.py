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


class Message:
    """One AMI message (action, response or event) with its headers in wire order.

    Parsed lazily: the parser keeps the message's text, and the headers are split only when
    first read (the name alone needs only the first line).  Most events a client receives
    are looked at by name and dropped, so this is where a fast AMI reader saves its time.
    """

    __slots__ = ("_first", "_headers", "_index", "_text")

    def __init__(self, headers: Iterable[tuple[str, str]] | None = None, *, text: str | None = None) -> None:
        self._text = text
        self._headers: tuple[tuple[str, str], ...] | None = None if headers is None else tuple(headers)
        self._index: dict[str, str] | None = None
        self._first: tuple[str, str] | None = None

    @property
    def headers(self) -> tuple[tuple[str, str], ...]:
        h = self._headers
        if h is None:
            h = self._headers = tuple(_header(line) for line in _lines(self._text or ""))
        return h

    def index(self) -> dict[str, str]:
        """Lower-cased header name -> first value (built once, straight from the text)."""
        idx = self._index
        if idx is None:
            if self._headers is not None:
                pairs = [(k, ": ", v) for k, v in reversed(self._headers)]
            else:
                text = self._text or ""
                if "\r" in text:
                    text = text.replace("\r\n", "\n")
                pairs = [ln.partition(": ") for ln in text.split("\n")]
                pairs.reverse()
            idx = {}
            for name, sep, value in pairs:  # last to first: the first value of a name wins
                key, val = (name, value) if sep else _header(name)
                idx[key.lower()] = val
            self._index = idx
        return idx

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case).  Before the header dict exists, a
        header spelled as asked is cut straight out of the text (one ``str.find``)."""
        if self._index is None and (t := self._text) is not None:
            if t.startswith(name + ": "):  # the first line first: the first value always wins
                i = len(name) + 2
            else:
                i = t.find("\n" + name + ": ")
                if i >= 0:
                    i += len(name) + 3
            if i >= 0:
                j = t.find("\n", i)
                v = t[i:] if j < 0 else t[i:j]
                return v[:-1] if v.endswith("\r") else v
        return self.index().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        v = self.get(name)
        if v is None:
            raise KeyError(name)
        return v

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and self.headers == other.headers

    def __hash__(self) -> int:
        return hash(self.headers)

    def __repr__(self) -> str:
        return f"Message({self.headers!r})"

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
        f = self._first
        if f is None:
            if self._headers is not None or self._text is None:
                f = self.headers[0] if self.headers else ("", "")
            else:
                t = self._text
                nl = t.find("\n")
                line = t if nl < 0 else t[:nl].rstrip("\r")
                k, sep, v = line.partition(": ")
                f = (k, v) if sep and k else _header(line)
            self._first = f
        return f

    @property
    def is_event(self) -> bool:
        f = self._first
        k = (f if f is not None else self.first)[0]
        return k == "Event" or k.lower() == "event"

    @property
    def is_response(self) -> bool:
        return self.first[0].lower() == "response"

    @property
    def is_action(self) -> bool:
        return self.first[0].lower() == "action"

    @property
    def name(self) -> str:
        """The value of the first header: event name, response status or action name."""
        f = self._first
        return (f if f is not None else self.first)[1]

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers)


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if "\r" in text:
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    return lines


def _header(line: str) -> tuple[str, str]:
    k, sep, v = line.partition(": ")
    if sep:
        return k, v
    if line.endswith(":"):
        return line[:-1], ""
    return "", line


class AmiParser:
    """Incremental AMI parser: ``feed(bytes) -> [Banner | Message, ...]``.

    Messages are cut at the blank line with ``bytes.find`` (in C) and decoded once; their
    headers are split only when read (:class:`Message`).
    """

    def __init__(
        self,
        *,
        expect_banner: bool = True,
        max_line: int = MAX_LINE,
        max_message: int = MAX_MESSAGE,
        max_headers: int = MAX_HEADERS,
    ) -> None:
        self._buf = bytearray()
        # where the search for the unfinished message's end resumes: the bytes before it hold no
        # terminator, so a message trickled in byte by byte is scanned once (linear, not quadratic)
        self._scan_from = 0
        self._need_banner = expect_banner
        self.max_line = max_line
        self.max_message = max_message
        self.max_headers = max_headers
        self.messages_parsed = 0

    def feed(self, data: bytes) -> list[Banner | Message]:
        out: list[Banner | Message] = []
        buf = self._buf
        buf += data
        start = 0
        n = len(buf)
        if self._need_banner:
            nl = buf.find(b"\n")
            if nl < 0:
                if n > self.max_line:
                    raise AmiFramingError(f"AMI line exceeds {self.max_line} bytes without a terminator")
                return out
            line = buf[:nl].rstrip(b"\r").decode("utf-8", "replace")
            if not line.startswith("Asterisk Call Manager/"):
                raise AmiFramingError(f"not an AMI banner: {line[:80]!r}")
            self._need_banner = False
            out.append(Banner(line))
            start = nl + 1
        find = buf.find
        # next "\n\r\n" / "\n\n" at or after start (-1: none in this buffer): each is searched
        # again only once start has passed it, so a feed stays linear in its size; the first search
        # resumes where the last feed's ended (a terminator may straddle the two feeds: back 2 bytes)
        na = nb = -2
        resume = self._scan_from
        while start < n:
            c = buf[start]
            if c == 0x0A:  # an empty line between messages
                start += 1
                continue
            if c == 0x0D and start + 1 < n and buf[start + 1] == 0x0A:
                start += 2
                continue
            if na != -1 and na < start:
                na = find(b"\n\r\n", max(start, resume))
            if nb != -1 and nb < start:
                nb = find(b"\n\n", max(start, resume))
            a, b = na, nb
            if a < 0 and b < 0:
                resume = max(start, n - 2)  # no terminator before this: the next feed starts here
                break
            if a < 0 or (0 <= b < a):
                end, nxt = b, b + 2
            else:
                end, nxt = a, a + 3
            size = end - start
            if size > self.max_message:
                raise AmiFramingError(f"AMI message of {size} bytes exceeds {self.max_message}")
            block = buf[start:end]
            if block.count(b"\n") >= self.max_headers:
                raise AmiFramingError(f"AMI message exceeds {self.max_headers} headers")
            if size > self.max_line:
                for ln in block.split(b"\n"):
                    if len(ln.rstrip(b"\r")) > self.max_line:
                        raise AmiFramingError(f"AMI line of {len(ln)} bytes exceeds {self.max_line}")
            if block.endswith(b"\r"):
                block = block[:-1]
            out.append(Message(text=block.decode("utf-8", "replace")))
            self.messages_parsed += 1
            start = nxt
        else:
            resume = max(start, n - 2)
        self._scan_from = max(resume - start, 0)
        if start:
            del buf[:start]
        rest = len(buf)
        if rest > self.max_line:
            last = buf.rfind(b"\n")
            if rest - last - 1 > self.max_line:
                raise AmiFramingError(f"AMI line exceeds {self.max_line} bytes without a terminator")
            if rest > self.max_message:
                raise AmiFramingError(f"AMI message exceeds {self.max_message} bytes")
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
    for k, value in headers:
        v = str(value)
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
            out.append((k, "true" if v else "false"))
        elif isinstance(v, (list, tuple)):
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
