"""HTTP/1.1 message heads and body framing, as bytes in and bytes out. No I/O here.

The proxy parses heads only; bodies are relayed as they come, counted (Content-Length) or tracked
through their chunk framing (Transfer-Encoding: chunked), never buffered whole.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD = 16 * 1024  # larger request heads get 431
TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
NO_BODY_STATUS = (204, 304)


class BadMessage(Exception):
    """Malformed HTTP: the connection gets 400 and is closed."""


@dataclass
class Head:
    start: tuple[str, str, str]  # request: method, target, version; response: version, status, reason
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        name = name.lower()
        found = [v for k, v in self.headers if k.lower() == name]
        return ", ".join(found) if found else None

    def tokens(self, name: str) -> set[str]:
        value = self.get(name) or ""
        return {t.strip().lower() for t in value.split(",") if t.strip()}


def parse_head(raw: bytes, request: bool) -> Head:
    """Parse a head that ends with CRLF CRLF. Raises BadMessage."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # latin-1 decodes anything; kept for clarity
        raise BadMessage(str(exc)) from None
    lines = text[:-4].split("\r\n") if text.endswith("\r\n\r\n") else text.rstrip("\r\n").split("\r\n")
    first = lines[0]
    parts = first.split(" ", 2)
    if request:
        if len(parts) != 3 or not parts[0] or not set(parts[0].encode()) <= TOKEN:
            raise BadMessage(f"bad request line {first[:80]!r}")
        if parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1] or " " in parts[1]:
            raise BadMessage(f"bad request line {first[:80]!r}")
        start = (parts[0], parts[1], parts[2])
    else:
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (len(parts[1]) == 3 and parts[1].isdigit()):
            raise BadMessage(f"bad status line {first[:80]!r}")
        start = (parts[0], parts[1], parts[2] if len(parts) == 3 else "")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or not set(name.encode("latin-1")) <= TOKEN:
            raise BadMessage(f"bad header line {line[:80]!r}")
        if any(c in value for c in "\r\n\0"):
            raise BadMessage("control character in a header value")
        headers.append((name, value.strip(" \t")))
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


def keep_alive(head: Head) -> bool:
    """Whether the connection stays open after this message, by its version and Connection header."""
    tokens = head.tokens("connection")
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
