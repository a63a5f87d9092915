"""HTTP/1.1 message heads and body framing, as bytes in and bytes out. No I/O here.

The proxy parses heads only; bodies are relayed as they come, counted (Content-Length) or tracked
through their chunk framing (Transfer-Encoding: chunked), never buffered whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 16 * 1024  # larger request heads get 431
# Request headers that stay on the client's hop (X-Forwarded-For is extended, not passed on as is)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "x-forwarded-for"})
NO_BODY_STATUS = (204, 304)


class BadMessage(Exception):
    """Malformed HTTP: the connection gets 400 and is closed."""


REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^ \x00-\x1f\x7f]+) (HTTP/1\.[01])")
STATUS_LINE = re.compile(r"(HTTP/1\.[0-9]) ([0-9]{3})(?: ([^\x00\r\n]*))?")
HEADER_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\x00\r\n]*?)[ \t]*")


class Head:
    """A parsed head: the start line's three parts and the headers in order, with a lowercase index."""

    __slots__ = ("start", "headers", "index")

    def __init__(self, start: tuple[str, str, str], headers: list[tuple[str, str]]) -> None:
        self.start = start
        self.headers = headers
        self.index: dict[str, str] = {}
        for name, value in headers:
            key = name.lower()
            self.index[key] = f"{self.index[key]}, {value}" if key in self.index else value

    def get(self, name: str) -> str | None:
        return self.index.get(name)  # names are asked for in lowercase

    def tokens(self, name: str) -> set[str]:
        value = self.index.get(name)
        return {t.strip().lower() for t in value.split(",") if t.strip()} if value else set()


def parse_head(raw: bytes, request: bool) -> Head:
    """Parse a head that ends with CRLF CRLF. Raises BadMessage."""
    lines = raw.decode("latin-1").split("\r\n")
    if lines[-2:] == ["", ""]:
        del lines[-2:]
    first = REQUEST_LINE.fullmatch(lines[0]) if request else STATUS_LINE.fullmatch(lines[0])
    if first is None:
        raise BadMessage(f"bad {'request' if request else 'status'} line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        match = HEADER_LINE.fullmatch(line)
        if match is None:
            raise BadMessage(f"bad header line {line[:80]!r}")
        headers.append((match[1], match[2]))
    start = (first[1], first[2], first[3] or "")
    return Head(start, headers)


def render_head(start: tuple[str, str, str], headers: list[tuple[str, str]]) -> bytes:
    lines = [" ".join(start)]
    lines.extend(f"{k}: {v}" for k, v in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Framing:
    kind: str  # "none", "length", "chunked", "close"
    length: int = 0


def request_framing(head: Head) -> Framing:
    te = head.get("transfer-encoding")
    cl = head.get("content-length")
    if te is not None:
        if cl is not None:
            raise BadMessage("both Transfer-Encoding and Content-Length")  # request smuggling
        if head.tokens("transfer-encoding") != {"chunked"}:
            raise BadMessage(f"unsupported Transfer-Encoding {te!r}")
        return Framing("chunked")
    if cl is not None:
        return Framing("length", _length(cl))
    return Framing("none")


FRAMING_HEADERS = re.compile(rb"\r\n(content-length|transfer-encoding|connection)[ \t]*:[ \t]*([^\r\n]*?)[ \t]*(?=\r\n)",
                             re.IGNORECASE)


def response_info(raw: bytes, request_method: str) -> tuple[int, Framing, bool]:
    """(status, body framing, whether the connection stays open) from a response head, reading only
    the status line and the three headers that decide them: the proxy's per-response hot path."""
    if raw[:7] != b"HTTP/1." or raw[8:9] != b" " or not raw[9:12].isdigit() or raw[12:13] not in (b" ", b"\r"):
        first = raw.split(b"\r\n", 1)[0][:80]
        raise BadMessage(f"bad status line {first!r}")
    status = int(raw[9:12])
    found: dict[bytes, list[bytes]] = {}
    for name, value in FRAMING_HEADERS.findall(raw):
        found.setdefault(name.lower(), []).append(value)
    tokens = {t.strip().lower() for v in found.get(b"connection", []) for t in v.split(b",")}
    alive = b"close" not in tokens and (raw[7:8] == b"1" or b"keep-alive" in tokens)
    if request_method == "HEAD" or status in NO_BODY_STATUS or 100 <= status < 200:
        return status, Framing("none"), alive
    if b"transfer-encoding" in found:
        chunked = any(b"chunked" in v.lower() for v in found[b"transfer-encoding"])
        return status, Framing("chunked") if chunked else Framing("close"), alive and chunked
    if b"content-length" in found:
        return status, Framing("length", _length(b", ".join(found[b"content-length"]).decode("latin-1"))), alive
    return status, Framing("close"), False


def response_framing(head: Head, request_method: str) -> Framing:
    status = int(head.start[1])
    if request_method == "HEAD" or status in NO_BODY_STATUS or 100 <= status < 200:
        return Framing("none")
    if head.get("transfer-encoding") is not None:
        return Framing("chunked") if "chunked" in head.tokens("transfer-encoding") else Framing("close")
    cl = head.get("content-length")
    if cl is not None:
        return Framing("length", _length(cl))
    return Framing("close")


def _length(value: str) -> int:
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not next(iter(values)).isdigit():
        raise BadMessage(f"bad Content-Length {value!r}")
    return int(values.pop())


def keep_alive(head: Head, tokens: set[str] | None = None) -> bool:
    """Whether the connection stays open after this message, by its version and Connection header
    (whose `tokens` the caller may have at hand)."""
    tokens = head.tokens("connection") if tokens is None else tokens
    version = head.start[0] if head.start[0].startswith("HTTP/") else head.start[2]  # response or request
    if "close" in tokens:
        return False
    return version == "HTTP/1.1" or "keep-alive" in tokens


class ChunkTracker:
    """Follows chunked framing through the bytes it is fed, to find where the message ends.
    The bytes themselves pass on unchanged."""

    def __init__(self) -> None:
        self.state = "size"  # size, data, data-crlf, trailer
        self.line = bytearray()
        self.remaining = 0

    def feed(self, data: bytes | bytearray | memoryview) -> tuple[int, bool]:
        """(bytes of `data` that belong to this message, whether the message ended there)."""
        view = memoryview(data)
        pos = 0
        n = len(view)
        while pos < n:
            if self.state == "data":
                take = min(self.remaining, n - pos)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "data-crlf"
                continue
            byte = view[pos]
            pos += 1
            if byte != 0x0A:
                self.line.append(byte)
                if len(self.line) > 4096:
                    raise BadMessage("chunk framing line too long")
                continue
            line = bytes(self.line).rstrip(b"\r")
            self.line.clear()
            if self.state == "size":
                size_text = line.split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise BadMessage(f"bad chunk size {size_text[:20]!r}") from None
                if size < 0:
                    raise BadMessage("negative chunk size")
                if size == 0:
                    self.state = "trailer"
                else:
                    self.remaining = size
                    self.state = "data"
            elif self.state == "data-crlf":
                if line:
                    raise BadMessage("chunk data longer than its size")
                self.state = "size"
            elif self.state == "trailer" and not line:
                return pos, True
        return pos, False


def simple_response(status: int, reason: str, body: bytes, content_type: str = "text/html; charset=utf-8",
                    close: bool = False, extra: list[tuple[str, str]] | None = None) -> bytes:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    headers += extra or []
    if close:
        headers.append(("Connection", "close"))
    return render_head(("HTTP/1.1", str(status), reason), headers) + body
