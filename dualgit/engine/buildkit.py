"""BuildKit's progress, as the engine's build API streams it (`moby.buildkit.trace`: a base64
`SolveStatus` protobuf in each message's `aux`), turned into lines like `docker build
--progress=plain` prints: `#N [2/3] RUN ...`, then the step's output. Pure: no engine, no I/O.

Only the fields dualgit prints are read (the wire format, by hand: varints and length-delimited
fields): SolveStatus.vertexes (1) and .logs (3); Vertex.digest (1), .name (3), .cached (4), .error (7);
VertexLog.vertex (1), .msg (4)."""

from __future__ import annotations

import base64
from collections.abc import Iterator


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a protobuf message: ints for varints, bytes for length-delimited."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, at = _varint(data, at)
            yield number, value
        elif kind == 2:
            size, at = _varint(data, at)
            yield number, data[at: at + size]
            at += size
        elif kind == 1:
            at += 8
        elif kind == 5:
            at += 4
        else:
            return  # a wire type this reader doesn't know: the rest is skipped


class Progress:
    """Follows one build's trace messages; `lines` gives what to print for each."""

    def __init__(self) -> None:
        self.numbers: dict[bytes, int] = {}  # a vertex's digest -> its #N
        self.named: set[bytes] = set()
        self.failed: str | None = None  # the name of the step that failed, as `[2/3] RUN false`

    def lines(self, aux: str) -> list[str]:
        out = []
        for number, value in fields(base64.b64decode(aux)):
            if number == 1 and isinstance(value, bytes):
                out += self._vertex(value)
            elif number == 3 and isinstance(value, bytes):
                out += self._log(value)
        return out

    def _read(self, data: bytes, text_field: int) -> tuple[dict[int, int | bytes], bytes, bytes, int]:
        """A vertex's or a log's fields, its digest, its text (a name, a message) and its #N."""
        found = dict(fields(data))
        digest, text = found.get(1, b""), found.get(text_field, b"")
        assert isinstance(digest, bytes) and isinstance(text, bytes)
        return found, digest, text, self.numbers.setdefault(digest, len(self.numbers) + 1)

    def _vertex(self, data: bytes) -> list[str]:
        found, digest, name, number = self._read(data, 3)
        out = []
        if digest not in self.named and name:
            self.named.add(digest)
            out.append(f"#{number} {name.decode(errors='replace')}\n")
        if found.get(4):
            out.append(f"#{number} CACHED\n")
        error = found.get(7)
        if isinstance(error, bytes) and error:
            self.failed = name.decode(errors="replace")
            out.append(f"#{number} ERROR: {error.decode(errors='replace')}\n")
        return out

    def _log(self, data: bytes) -> list[str]:
        _found, _digest, message, number = self._read(data, 4)
        text = message.decode(errors="replace")
        return [f"#{number} {line}\n" for line in text.splitlines()]
