"""The proxy's hot path: the common request and response, checked in C (a regular expression, llhttp)
with as little Python per request as can be.

Most requests on a kept-alive connection are a plain bodiless GET to the same host as the one
before; most responses are framed by Content-Length or chunks and keep the connection.
`plain_get(host)` is a pattern that matches such a request whole; `ResponseEnd` follows such a
response (to any request but HEAD) through its body and says when it ended. Anything else they
decline, having changed nothing, and the general path (`http.py`, in Python) takes it. Once a
connection is pinned to its upstream, `ResponseCount` follows the responses coming back, all in C
but for one call per response.
"""

from __future__ import annotations

import functools
import re

import httptools

from dualgit.proxy.http import HOP_BY_HOP

# Request headers that change framing, the connection, forwarding or the backend: requests with them
# take the general path, which drops the hop-by-hop ones. X-Forwarded-* go by their prefix.
SPECIAL = sorted(HOP_BY_HOP | {"content-length", "transfer-encoding", "expect", "host"})
TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # a header name, as the general path reads one
_FIRST = "".join(sorted({c for name in [*SPECIAL, "x-forwarded-"] for c in (name[0], name[0].upper())})).encode()
_NAMES = b"|".join(re.escape(name.encode()) for name in SPECIAL)
# A header line carried as it is: not a special one (the class in front only makes the check quick),
# and its value in the characters the general path takes (visible, space, tab, and non-ASCII).
PLAIN_LINE = rb"(?!(?=[" + _FIRST + rb"])(?i:(?:" + _NAMES + rb"):|x-forwarded-))" + TOKEN + rb":[\t -~\x80-\xff]*\r\n"
ParserError = httptools.HttpParserError
DECLINED = (httptools.HttpParserError, httptools.HttpParserUpgrade)  # the second is not a kind of the first


@functools.lru_cache(maxsize=1024)  # one per Host seen: the client's to choose, so bounded
def plain_get(host: bytes) -> re.Pattern[bytes]:
    """A pattern for one whole request head and nothing after it: a GET in origin form over HTTP/1.1,
    one `Host: <host>` line and otherwise plain header lines (see PLAIN_LINE). Its fullmatch is the
    whole check: the request goes out as it came, plus X-Forwarded-*. Host first, as browsers and
    most clients send it, is tried first: the engine goes straight to it (60 ns of 290 for wrk's GET)."""
    host = re.escape(host)
    return re.compile(rb"GET /[!-~]* HTTP/1\.1\r\n(?:Host: %s\r\n(?:%s)*|(?:%s)+Host: %s\r\n(?:%s)*)\r\n"
                      % (host, PLAIN_LINE, PLAIN_LINE, host, PLAIN_LINE))


class ResponseEnd:
    """Follows one response through its body, as its bytes arrive (not for HEAD: llhttp would wait
    for the body its head announces). One llhttp parser per upstream connection, made again after a
    decline, so that a declined message never leaves it mid-way."""

    __slots__ = ("parser", "begun", "ended", "kept")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.begun = 0  # messages begun in the bytes fed since `start`
        self.ended = False
        self.kept = False  # whether the ended message kept the connection

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_message_complete(self) -> None:
        self.ended = True
        self.kept = self.parser.should_keep_alive()  # llhttp clears what decides this once we return

    def start(self, data: bytes) -> bool | None:
        """Feed the first bytes of a response. None: declined, take the general path with these
        bytes. Else whether the response ended in them. Taken: one final head, whole in `data`,
        keeping the connection, with a body framed by length or chunks (else llhttp's keep-alive
        is false), and nothing after the end."""
        if data.find(b"\r\n\r\n") < 0:
            return None  # the head is not whole: the general path waits for the rest
        self.begun, self.ended = 0, False
        parser = self.parser
        try:
            parser.feed_data(data)
        except DECLINED:
            self.parser = httptools.HttpResponseParser(self)
            return None
        if self.begun == 1 and parser.get_status_code() >= 200 and (
                self.kept if self.ended else parser.should_keep_alive()):
            return self.ended
        self.parser = httptools.HttpResponseParser(self)  # 1xx, not kept, or more than one message
        return None

    def more(self, data: bytes) -> bool:
        """Feed more of the body: whether the response ended. Raises ParserError on bad framing, or
        when bytes follow the response's end (nothing may come before the next request; llhttp
        passes over empty lines between messages, so those alone are relayed)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise ParserError("a protocol switch in the middle of a body") from None
        if self.begun != 1:
            raise ParserError("bytes after the end of the response")
        return self.ended


class ResponseCount:
    """Counts the final responses that end in a stream of them, relayed as they come: the responses
    to the requests sent on a pinned connection (`Upstream.pin`)."""

    __slots__ = ("parser", "finals")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.finals = 0

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() >= 200:  # an interim (1xx) response comes before its final one
            self.finals += 1
