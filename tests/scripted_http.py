"""A scripted HTTP server on loopback: it answers each request with the exact bytes a test gives.

For the InfluxDB writer's tests (tests/test_http_writer.py, tests/test_influx_contract.py):
real servers never send a `100 Continue` unasked, a chunked error, an answer delimited by the
end of the connection or a kept-alive connection dropped while idle on demand, and the
documented answers of InfluxDB 2.x and 3 have no server here to send them. The requests are
read with a deliberately small parser (head, then Content-Length bytes) so a test sees what
went over the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Step:
    """What the server does with one request.

    `answer` is written as is (None: write nothing). `close` closes the connection afterwards.
    `hold` never answers: the server waits until the test ends (a slow InfluxDB).
    """

    answer: bytes | None = b"HTTP/1.1 204 No Content\r\n\r\n"
    close: bool = False
    hold: bool = False


@dataclass(frozen=True, slots=True)
class Request:
    connection: int  # 1 for the first connection the server accepted, and so on
    method: str
    target: str
    headers: dict[str, str]  # names in lower case
    body: bytes


def answer(status: int, reason: str, body: bytes = b"", **headers: str) -> bytes:
    """A Content-Length-framed HTTP/1.1 answer; header names from keywords (Retry_After)."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class ScriptedServer:
    steps: list[Step] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # set at each server close
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while (request := await _read_request(reader, number)) is not None:
                self.requests.append(request)
                step = self.steps.pop(0) if self.steps else Step()
                if step.hold:
                    await self._release.wait()
                    return
                if step.answer is not None:
                    writer.write(step.answer)
                    await writer.drain()
                if step.close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.closed.set()

    def release(self) -> None:
        self._release.set()


async def _read_request(reader: asyncio.StreamReader, connection: int) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection between requests
    request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(connection, method, target, headers, body)


@contextlib.asynccontextmanager
async def scripted_server(*steps: Step) -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer(list(steps))
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        server.release()
        listener.close()
        await listener.wait_closed()
