"""The proxy's hot path, parsed by llhttp (httptools) instead of Python.

Most requests on a kept-alive connection are a plain bodiless GET to the same host as the one
before; most responses are framed by Content-Length or chunks and keep the connection.
`PlainGet` recognises such a request whole and gives its Host; `ResponseEnd` follows such a
response (to any request but HEAD) through its body and says when it ended. Anything else they
decline, having changed nothing, and the general path (`http.py`, in Python) takes it. Both keep one llhttp parser per
connection, made again after a decline so that a declined message never leaves it mid-way.
"""

from __future__ import annotations

import re

import httptools

from dualgit.proxy.http import HOP_BY_HOP

# Request headers that change framing, the connection, or forwarding (and X-Forwarded-*, by their
# prefix): their requests take the general path, which drops the hop-by-hop ones.
SPECIAL = frozenset(name.encode() for name in HOP_BY_HOP) | {b"content-length", b"transfer-encoding", b"expect"}
ParserError = httptools.HttpParserError
DECLINED = (httptools.HttpParserError, httptools.HttpParserUpgrade)  # the second is not a kind of the first
# llhttp takes request lines that the general path refuses (two spaces, say): the request line is
# held to the general path's rule first, in its origin form.
REQUEST_LINE = re.compile(rb"GET /[!-~]* HTTP/1\.1\r\n")


class PlainGet:
    """Recognises one complete bodiless GET head with one Host and no special headers."""

    __slots__ = ("parser", "host", "plain")

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.host: bytes | None = None
        self.plain = True

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"host" and self.host is None:
            self.host = value.rstrip(b" \t")
        elif name == b"host" or name in SPECIAL or name.startswith(b"x-forwarded-"):
            self.plain = False

    def host_of(self, data: bytes) -> bytes | None:
        """The Host when `data` is exactly such a request, else None."""
        if data.find(b"\r\n\r\n") != len(data) - 4 or REQUEST_LINE.match(data) is None:
            return None  # not one whole head (a part, pipelined requests, a body), or not a plain GET
        self.host, self.plain = None, True
        parser = self.parser
        try:
            parser.feed_data(data)
        except DECLINED:
            self.parser = httptools.HttpRequestParser(self)
            return None
        if self.plain and parser.get_method() == b"GET" and parser.get_http_version() == "1.1":
            return self.host  # one whole head, no framing headers: llhttp completed the message there
        self.parser = httptools.HttpRequestParser(self)
        return None


class ResponseEnd:
    """Follows one response through its body, as its bytes arrive (not for HEAD: llhttp would wait
    for the body its head announces)."""

    __slots__ = ("parser", "final", "finals", "kept", "ended", "extra")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.final = False  # the head being read is a final one (not 1xx)
        self.finals = 0  # final response heads seen
        self.kept = False  # that head keeps the connection, with a body framed by length or chunks
        self.ended = False
        self.extra = False  # bytes came after the end

    def on_message_begin(self) -> None:
        if self.ended:
            self.extra = True

    def on_headers_complete(self) -> None:
        self.final = self.parser.get_status_code() >= 200
        if self.final:
            self.finals += 1
            self.kept = self.parser.should_keep_alive()  # false too when the body runs to the connection's end

    def on_message_complete(self) -> None:
        if self.final:
            self.ended = True

    def start(self, data: bytes) -> bool | None:
        """Feed the first bytes of a response. None: declined, take the general path with these
        bytes. Else whether the response ended in them."""
        self.finals, self.kept, self.ended, self.extra = 0, False, False, False
        try:
            self.parser.feed_data(data)
        except DECLINED:
            self.parser = httptools.HttpResponseParser(self)
            return None
        if self.finals == 1 and self.kept and not self.extra:
            return self.ended
        self.parser = httptools.HttpResponseParser(self)  # no whole head yet, not kept, or bytes past the end
        return None

    def more(self, data: bytes) -> bool:
        """Feed more of the body: whether the response ended. Raises ParserError on bad framing, or
        when bytes follow the response's end (nothing may come before the next request; llhttp
        passes over empty lines between messages, so those alone are relayed)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            raise ParserError("a protocol switch in the middle of a body") from None
        if self.extra:
            raise ParserError("bytes after the end of the response")
        return self.ended
