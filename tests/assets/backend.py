"""A test backend that runs inside a dualgit container (python3 from dualgit/debian:bookworm).

    python3 backend.py NAME HTTP_PORT [TCP_PORT]

GET /            "page NAME"
GET /headers     the request's headers, as JSON
GET /sse         three server-sent events, 0.5 s apart (chunked)
GET /big?n=N     N bytes (Content-Length), or chunked with &chunked=1
POST /echo       the request body back (Content-Length)
GET /ws          101 Switching Protocols, then echoes bytes
GET /slow        "slow", after 0.1 s
GET /bye         "bye" with Connection: close, then closes
GET /cut         a head announcing 100 bytes, 10 of them, then closes
GET /drop-next   "ok", then closes its connection when the next request on it arrives, unanswered
TCP_PORT         echoes bytes
"""

import asyncio
import json
import sys
from urllib.parse import parse_qs, urlsplit

NAME = sys.argv[1]
drop_next = set()  # connections whose next request is dropped


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return method, target, version, headers


async def read_body(reader, headers):
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return body
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    return await reader.readexactly(int(headers.get("content-length", "0")))


def response(status, body, ctype="text/plain", extra=""):
    return (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n{extra}\r\n").encode() + body


async def http(reader, writer):
    try:
        while True:
            try:
                method, target, version, headers = await read_head(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if writer in drop_next:
                drop_next.discard(writer)
                return  # as a server does whose keep-alive timeout ran out just as the request came
            url = urlsplit(target)
            query = parse_qs(url.query)
            body = await read_body(reader, headers)
            if url.path == "/":
                writer.write(response("200 OK", f"page {NAME}\n".encode()))
            elif url.path == "/headers":
                writer.write(response("200 OK", json.dumps(headers).encode(), "application/json"))
            elif url.path == "/echo":
                writer.write(response("200 OK", body, "application/octet-stream"))
            elif url.path == "/sse":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                for i in range(3):
                    event = f"data: {NAME} {i}\n\n".encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                    await asyncio.sleep(0.5)
                writer.write(b"0\r\n\r\n")
            elif url.path == "/big":
                n = int(query["n"][0])
                block = b"x" * 65536
                if query.get("chunked"):
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
                while n > 0:
                    piece = block[: min(n, len(block))]
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if query.get("chunked") else piece)
                    n -= len(piece)
                    await writer.drain()
                if query.get("chunked"):
                    writer.write(b"0\r\n\r\n")
            elif url.path == "/ws":
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                await writer.drain()
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    writer.write(data)
                    await writer.drain()
                return
            elif url.path == "/slow":
                await asyncio.sleep(0.1)
                writer.write(response("200 OK", b"slow\n"))
            elif url.path == "/bye":
                writer.write(response("200 OK", b"bye\n", extra="Connection: close\r\n"))
                return
            elif url.path == "/cut":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 10)
                return
            elif url.path == "/drop-next":
                writer.write(response("200 OK", b"ok\n"))
                drop_next.add(writer)
            else:
                writer.write(response("404 Not Found", b"no\n"))
            await writer.drain()
            if version == "HTTP/1.0" or headers.get("connection", "").lower() == "close":
                return
    finally:
        writer.close()


async def echo(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main():
    servers = [await asyncio.start_server(http, "0.0.0.0", int(sys.argv[2]))]
    if len(sys.argv) > 3:
        servers.append(await asyncio.start_server(echo, "0.0.0.0", int(sys.argv[3])))
    await asyncio.gather(*(s.serve_forever() for s in servers))


asyncio.run(main())
