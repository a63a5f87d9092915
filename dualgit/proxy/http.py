"""HTTP/1.1 message heads and body framing, as bytes in and bytes out. No I/O here.

The proxy parses heads with llhttp both ways, in its strict mode: request heads here
(`parse_request`, and `check_partial` for a head still arriving, so that a malformed one is refused
at once), response heads too (`response_info`, and `fast.py` on the hot path). What goes on to a
dev server is the head as parsed and rendered anew, never the client's bytes, so the server cannot
read it another way (request smuggling). Bodies are relayed as they come, counted (Content-Length)
or followed through their chunks (`dualgit.chunked`: hex digits and CRLF only), never buffered
whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httptools

MAX_HEAD = 16 * 1024  # larger request heads get 431
# Request headers that stay on the client's hop (X-Forwarded-For is extended, not passed on as is)
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "x-forwarded-for"})
NO_BODY_STATUS = (204, 304)


class BadMessage(Exception):
    """Malformed HTTP: the connection gets 400 and is closed."""


DIGITS = re.compile(r"[0-9]+")


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


class _RequestHead:
    """llhttp's callbacks for one request head."""

    __slots__ = ("url", "headers", "complete")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.rstrip(b" \t").decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.complete = True


def _run(parser: httptools.HttpRequestParser, data: bytes | bytearray, head: bytes | bytearray) -> None:
    """Feed `data` (of the request `head`) to llhttp; what it refuses is a BadMessage."""
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass  # an Upgrade (or CONNECT): the head is whole, what follows is the server's business
    except httptools.HttpParserError as exc:
        first = bytes(head[:80]).split(b"\n", 1)[0]
        raise BadMessage(f"malformed request ({exc}) in {first!r}") from None


def _feed(raw: bytes | bytearray) -> tuple[_RequestHead, httptools.HttpRequestParser]:
    found = _RequestHead()
    parser = httptools.HttpRequestParser(found)
    _run(parser, raw, raw)
    return found, parser


class HeadCheck:
    """A request head checked by llhttp while it arrives (until it has ended), so that a malformed
    one (a bare LF, obsolete line folding, a bad character) is refused at once, not at the timeout.
    Each byte is parsed once, however finely the head is split."""

    __slots__ = ("parser", "fed")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(_RequestHead())
        self.fed = 0

    def feed(self, buf: bytes | bytearray) -> None:
        """`buf`: the head so far, of which what came since the last call is parsed. Raises BadMessage."""
        _run(self.parser, buf[self.fed:], buf)
        self.fed = len(buf)


def check_partial(raw: bytes | bytearray) -> None:
    """Raise BadMessage when `raw` can't begin a valid request head."""
    HeadCheck().feed(raw)


def parse_request(raw: bytes) -> Head:
    """Parse a request head that ends with CRLF CRLF, by llhttp. Raises BadMessage: for what llhttp
    refuses (bare LF, obs-fold, Content-Length with Transfer-Encoding, Content-Lengths that differ,
    a bad length), and for an HTTP version other than 1.0 and 1.1."""
    found, parser = _feed(raw)
    if not found.complete:
        raise BadMessage("the request head does not end where CRLF CRLF is")
    version = parser.get_http_version()
    if version not in ("1.0", "1.1"):
        raise BadMessage(f"unsupported HTTP version {version!r}")
    method = parser.get_method().decode("latin-1")
    target = found.url.decode("latin-1")
    if not target or any(c in target for c in " \x7f") or any(ord(c) < 0x20 for c in target):
        raise BadMessage(f"bad request target {target[:80]!r}")
    return Head((method, target, f"HTTP/{version}"), found.headers)


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


class _ResponseHead:
    """llhttp's callbacks for one response head: the headers that decide framing and the connection."""

    __slots__ = ("found",)

    def __init__(self) -> None:
        self.found: dict[bytes, list[bytes]] = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.lower()
        if key in (b"content-length", b"transfer-encoding", b"connection"):
            self.found.setdefault(key, []).append(value)


def response_info(raw: bytes, request_method: str) -> tuple[int, Framing, bool]:
    """(status, body framing, whether the connection stays open) from one response head, parsed by
    llhttp; the framing rules are RFC 9112's, with the request's method (HEAD has no body)."""
    head = _ResponseHead()
    parser = httptools.HttpResponseParser(head)
    try:
        if not raw.startswith(b"HTTP/1."):
            raise httptools.HttpParserError("not an HTTP/1 response")
        parser.feed_data(raw)
    except httptools.HttpParserUpgrade:
        pass  # a 101 with Upgrade: its head is whole, what follows is another protocol
    except httptools.HttpParserError as exc:
        first = raw.split(b"\r\n", 1)[0][:80]
        raise BadMessage(f"bad response head {first!r} ({exc})") from None
    status, found = parser.get_status_code(), head.found
    tokens = {t.strip().lower() for v in found.get(b"connection", []) for t in v.split(b",")}
    alive = b"close" not in tokens and (parser.get_http_version() == "1.1" or b"keep-alive" in tokens)
    if request_method == "HEAD" or status in NO_BODY_STATUS or 100 <= status < 200:
        return status, Framing("none"), alive
    if b"transfer-encoding" in found:
        chunked = any(b"chunked" in v.lower() for v in found[b"transfer-encoding"])
        return status, Framing("chunked") if chunked else Framing("close"), alive and chunked
    if b"content-length" in found:
        return status, Framing("length", _length(b", ".join(found[b"content-length"]).decode("latin-1"))), alive
    return status, Framing("close"), False


def _length(value: str) -> int:
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or DIGITS.fullmatch(next(iter(values))) is None:  # ASCII digits: "²".isdigit()
        raise BadMessage(f"bad Content-Length {value[:40]!r}")
    return int(values.pop())


def keep_alive(head: Head, tokens: set[str] | None = None) -> bool:
    """Whether the client's connection stays open after this request, by its version and Connection
    header (whose `tokens` the caller may have at hand)."""
    tokens = head.tokens("connection") if tokens is None else tokens
    if "close" in tokens:
        return False
    return head.start[2] == "HTTP/1.1" or "keep-alive" in tokens


def simple_response(status: int, reason: str, body: bytes, content_type: str = "text/html; charset=utf-8",
                    close: bool = False, extra: list[tuple[str, str]] | None = None) -> bytes:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")]
    headers += extra or []
    if close:
        headers.append(("Connection", "close"))
    return render_head(("HTTP/1.1", str(status), reason), headers) + body
