"""HTTP/1.1's chunked transfer coding: the one decoder, for the engine client and the proxy alike.

`Chunked.feed` follows the framing through the bytes it is given and says where the message ends;
strictly, as RFC 9112 writes it: a size is hex digits alone, and every line ends with CRLF (no
`0x5`, `+5`, `0_5` or bare LF, which a server behind the proxy might read another way);
with `keep=True` it also collects the payload (the engine client wants the data, the proxy relays
the bytes unchanged). Standard library only: `git dual exec`'s path reads the engine through it.
"""

from __future__ import annotations

import re

HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
# after the size: chunk extensions (`;name=value`), with optional whitespace; no control characters
TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
QUOTED = rb'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*"'
EXTENSION = re.compile(rb"(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + TOKEN + rb"|" + QUOTED + rb"))?)*[ \t]*")
MAX_LINE = 4096  # a size or trailer line longer than this is malformed


class BadChunk(ValueError):
    """Malformed chunk framing."""


class Chunked:
    __slots__ = ("state", "line", "remaining", "payload")

    def __init__(self, keep: bool = False) -> None:
        self.state = "size"  # size, data, data-crlf, trailer, end
        self.line = bytearray()
        self.remaining = 0
        self.payload: bytearray | None = bytearray() if keep else None

    @property
    def ended(self) -> bool:
        return self.state == "end"

    def feed(self, data: bytes | bytearray | memoryview) -> int:
        """How many leading bytes of `data` belong to this message (all of them, unless it ended
        within them: see `ended`). Raises BadChunk."""
        view = memoryview(data)
        pos, n = 0, len(view)
        while pos < n and self.state != "end":
            if self.state == "data":
                take = min(self.remaining, n - pos)
                if self.payload is not None:
                    self.payload += view[pos:pos + take]
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "data-crlf"
                continue
            end = bytes(view[pos:min(n, pos + MAX_LINE + 1)]).find(b"\n")
            if end < 0:
                self.line += view[pos:n]
                if len(self.line) > MAX_LINE:
                    raise BadChunk("chunk framing line too long")
                return n
            self.line += view[pos:pos + end]
            pos += end + 1
            line = bytes(self.line)
            self.line.clear()
            if len(line) > MAX_LINE:
                raise BadChunk("chunk framing line too long")
            if not line.endswith(b"\r"):
                raise BadChunk("a chunk framing line ends with a bare LF, not CRLF")
            self._line(line[:-1])
        return pos

    def take(self) -> bytes:
        """The payload collected so far, handed over (`keep=True` only)."""
        assert self.payload is not None
        out = bytes(self.payload)
        self.payload.clear()
        return out

    def _line(self, line: bytes) -> None:
        if self.state == "size":
            digits = HEX.match(line)
            if digits is None or EXTENSION.fullmatch(line, digits.end()) is None:
                raise BadChunk(f"bad chunk size line {line[:20]!r}")
            size = int(digits[0], 16)
            self.state, self.remaining = ("trailer", 0) if size == 0 else ("data", size)
        elif self.state == "data-crlf":
            if line:
                raise BadChunk("chunk data longer than its size")
            self.state = "size"
        elif self.state == "trailer":
            if not line:
                self.state = "end"
            elif b"\r" in line or b"\x00" in line or b":" not in line or line[:1] in b" \t":
                raise BadChunk(f"bad trailer line {line[:20]!r}")


def decode(raw: bytes) -> bytes:
    """A whole chunked body's payload (what follows its end is ignored). Raises BadChunk."""
    chunks = Chunked(keep=True)
    chunks.feed(raw)
    if not chunks.ended:
        raise BadChunk("the chunked body ends early")
    return chunks.take()
