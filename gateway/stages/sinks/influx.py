"""The only module that speaks HTTP to InfluxDB.

A thin HTTP/1.1 writer on asyncio streams rather than influxdb-client or aiohttp. The gateway
builds line protocol and batches itself, and needs exactly one request per batch with the
status classified by us. influxdb-client's async API adds a second batching layer, pulls in
reactivex for its batching writer, and its error type hides the Retry-After handling we need;
its sync writer would need a thread. aiohttp did the job, but importing it costs 11 MB of the
gateway's 64 MB budget (measured after everything else `gateway run` imports; Speed issue),
for the one request shape this module sends: a POST or GET with a body of known length,
answered with a status, a few headers and a short body. The v1 (`/write`) and v2
(`/api/v2/write`) APIs differ only in URL and credentials.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import orjson

from gateway.config import InfluxSettings
from gateway.errors import ConfigError, SinkError

log = logging.getLogger(__name__)

_USER_AGENT = "mh-gateway"
_MAX_IDLE_CONNECTIONS = 4  # the live writer and the spool replay write concurrently
_MAX_ERROR_BODY_BYTES = 1024**2  # an error answer longer than this is cut, not buffered


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    text: str
    headers: dict[str, str]  # names in lower case

    @property
    def retry_after(self) -> str | None:
        return self.headers.get("retry-after")


class _MalformedAnswerError(Exception):
    """What came back is not an HTTP/1.1 answer we can read."""


class InfluxSink:
    def __init__(self, settings: InfluxSettings) -> None:
        self._settings = settings
        self._base = settings.url.rstrip("/")
        url = urlsplit(self._base)
        self._https = url.scheme.lower() == "https"
        self._url_problem = (
            None
            if url.scheme.lower() in ("http", "https") and url.hostname
            else f"[influx] url {settings.url!r} is not an http:// or https:// URL"
        )
        self._host = url.hostname or ""
        self._port = url.port or (443 if self._https else 80)
        self._path = url.path  # a reverse proxy may serve InfluxDB under a prefix
        default_port = self._port == (443 if self._https else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **self._auth_header()}
        self._known_databases: set[str] = set()
        self._ssl = _tls_context(settings) if self._https else None
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    def _auth_header(self) -> dict[str, str]:
        settings = self._settings
        if settings.api == "v2" and settings.token is not None:
            return {"Authorization": f"Token {settings.token.get_secret_value()}"}
        if settings.api == "v1" and settings.username:
            secret = settings.password.get_secret_value() if settings.password else ""
            pair = base64.b64encode(f"{settings.username}:{secret}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        return {}

    def _write_target(self, database: str | None, rp: str | None) -> str:
        settings = self._settings
        if settings.api == "v2":
            bucket = database or settings.bucket or ""
            return (
                f"{self._path}/api/v2/write?org={quote(settings.org or '')}"
                f"&bucket={quote(bucket)}&precision=ns"
            )
        target = f"{self._path}/write?db={quote(database or settings.database)}&precision=ns"
        rp = rp or settings.retention_policy
        return f"{target}&rp={quote(rp)}" if rp else target

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        """POST one batch; returns when InfluxDB accepted it, raises SinkError otherwise."""
        body = "\n".join(lines).encode()
        answer = await self._post(self._write_target(database, rp), body)
        error = classify(answer.status, answer.text, answer.retry_after)
        if error is None:
            return
        status, text = answer.status, answer.text
        if status == 404 and "database not found" in text and self._settings.create_database:
            await self.create_database(database or self._settings.database)
            answer = await self._post(self._write_target(database, rp), body)
            error = classify(answer.status, answer.text, answer.retry_after)
            if error is None:
                return
        raise error

    async def _post(self, target: str, body: bytes) -> _Answer:
        return await self._request("POST", target, body)

    async def _request(self, method: str, target: str, body: bytes | None = None) -> _Answer:
        """One request with [influx] timeout_s for all of it (connect, send, answer)."""
        if self._url_problem is not None:
            raise SinkError(f"InfluxDB unreachable: {self._url_problem}", retryable=True)
        try:
            async with asyncio.timeout(self._settings.timeout_s):
                return await self._exchange(method, target, body)
        except ssl.SSLCertVerificationError as exc:
            raise SinkError(
                f"InfluxDB's TLS certificate was refused ({exc}); it must be signed by a CA in "
                f"[influx] ca_file (or the system store) and be valid for {self._host}",
                retryable=True,  # a renewed certificate or CA file must not cost readings
            ) from exc
        # EOFError: asyncio.IncompleteReadError; ValueError: a number that is none in the
        # status line, Content-Length or a chunk size.
        except (
            OSError,
            TimeoutError,
            EOFError,
            ValueError,
            asyncio.LimitOverrunError,
            _MalformedAnswerError,
        ) as exc:
            raise SinkError(
                f"InfluxDB unreachable: {exc or type(exc).__name__}", retryable=True
            ) from exc

    async def _exchange(self, method: str, target: str, body: bytes | None) -> _Answer:
        """Send on a kept-alive connection if there is one. One the server closed meanwhile
        fails, and the request goes again on the next or a new connection: every request
        here is idempotent (InfluxDB stores the same points again, not twice; CREATE
        DATABASE of an existing database changes nothing)."""
        request = (self._request_head(method, target, body), body or b"")
        while self._idle:
            reader, writer = self._idle.pop()
            if writer.is_closing() or reader.at_eof():
                writer.close()
                continue
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                return await self._send(reader, writer, request, method)
        reader, writer = await asyncio.open_connection(
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl is not None else None,
        )
        return await self._send(reader, writer, request, method)

    def _request_head(self, method: str, target: str, body: bytes | None) -> bytes:
        headers = {"Host": self._host_header, "User-Agent": _USER_AGENT, **self._headers}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        return head.encode("latin-1") + b"\r\n"

    async def _send(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request: tuple[bytes, bytes],
        method: str,
    ) -> _Answer:
        """`request` is (head, body), written one after the other rather than joined: the
        batch's body is not copied into a second buffer of its size (nor by writelines, which
        joins its arguments in Python 3.11's transports)."""
        kept = False
        try:
            for part in request:
                writer.write(part)
            await writer.drain()
            answer, keep_alive = await _read_answer(reader, method)
            if keep_alive and len(self._idle) < _MAX_IDLE_CONNECTIONS:
                self._idle.append((reader, writer))
                kept = True
            return answer
        finally:  # an error, a cancellation or a timeout leaves the connection unusable
            if not kept:
                writer.close()

    async def create_database(self, name: str) -> None:
        """v1 only: CREATE DATABASE is idempotent in InfluxDB 1.x."""
        if self._settings.api != "v1" or name in self._known_databases:
            return
        query = f'CREATE DATABASE "{name.replace(chr(34), "")}"'
        answer = await self._post(f"{self._path}/query?q={quote(query)}", b"")
        error = classify(answer.status, answer.text, answer.retry_after)
        if error is not None:
            raise error
        self._known_databases.add(name)
        log.info("created InfluxDB database %s", name)

    async def ping(self) -> bool:
        try:
            answer = await self._request("GET", f"{self._path}/ping")
        except SinkError:
            return False
        return answer.status in (200, 204)

    async def server_version(self) -> str:
        """`gateway doctor`: GET /ping (no credentials needed in 1.x and 2.x); the version the
        server announces. Raises SinkError when InfluxDB is unreachable or is not InfluxDB."""
        answer = await self._request("GET", f"{self._path}/ping")
        if answer.status not in (200, 204):
            raise SinkError(
                f"{self._base}/ping answered HTTP {answer.status}: is this InfluxDB?",
                retryable=True,
                status=answer.status,
            )
        return answer.headers.get("x-influxdb-version") or "unknown version"

    async def check_write(self, database: str | None, rp: str | None) -> SinkError | None:
        """`gateway doctor`: POST an empty body to the write endpoint. InfluxDB checks the
        credentials (401), the write permission (403) and the database (404 "database not
        found") before the body, and an empty body stores nothing (1.x answers 204), so this
        proves a write would be accepted without writing a point."""
        answer = await self._post(self._write_target(database, rp), b"")
        return classify(answer.status, answer.text, answer.retry_after)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        for _, writer in idle:
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader, method: str) -> tuple[_Answer, bool]:
    """(the answer, whether the connection may be used again), per RFC 9112: the body is
    delimited by Content-Length, by chunks, or (HTTP/1.0 style) by the end of the
    connection."""
    status_line = await reader.readuntil(b"\r\n")
    version, _, rest = status_line.decode("latin-1").partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise _MalformedAnswerError(f"not an HTTP/1.x answer: {status_line[:80]!r}")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise _MalformedAnswerError(f"not an HTTP header: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunks(reader)
    elif "content-length" in headers:
        length = int(headers["content-length"])
        if length > _MAX_ERROR_BODY_BYTES:
            raise _MalformedAnswerError(f"answer of {length} bytes, far more than expected")
        body = await reader.readexactly(length)
    else:
        body = await reader.read(_MAX_ERROR_BODY_BYTES)
        keep_alive = False
    return _Answer(status, body.decode("utf-8", "replace"), headers), keep_alive


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields
                pass
            return bytes(body)
        if len(body) + size > _MAX_ERROR_BODY_BYTES:
            raise _MalformedAnswerError("chunked answer far longer than expected")
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # the CRLF after each chunk


def _tls_context(settings: InfluxSettings) -> ssl.SSLContext:
    """Verification is always on (chain, dates, name); `ca_file` only says whom to trust
    (without it: the system's CA store)."""
    if settings.ca_file is None:
        return ssl.create_default_context()
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load influx.ca_file {settings.ca_file}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def classify(status: int, body: str, retry_after: str | None) -> SinkError | None:
    """The one place that decides what an InfluxDB answer means for the data.

    2xx accepted; 429/5xx retry later (honouring Retry-After); 401/403 keep the data and alarm
    (retryable: an operator fixing the credentials must not cost readings); 400/413/422 and other
    4xx are about this batch's content and will never succeed as they are.
    """
    if 200 <= status < 300:
        return None
    message = _error_text(body)
    if status == 429 or status >= 500:
        return SinkError(
            f"InfluxDB busy or failing (HTTP {status}): {message}",
            retryable=True,
            retry_after_s=_retry_after_s(retry_after),
            status=status,
        )
    if status in (401, 403):
        return SinkError(
            f"InfluxDB refused our credentials (HTTP {status}): {message}; "
            "check [influx] username/password or token",
            retryable=True,
            status=status,
        )
    return SinkError(
        f"InfluxDB rejected the batch (HTTP {status}): {message}", retryable=False, status=status
    )


def _error_text(body: str) -> str:
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.strip()[:500]
    if isinstance(decoded, dict):
        return str(decoded.get("error") or decoded.get("message") or decoded)[:500]
    return str(decoded)[:500]


def _retry_after_s(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; the backoff schedule is a fine substitute
