"""The only module that speaks HTTP to InfluxDB (and to engines with its write API).

A thin HTTP/1.1 writer: asyncio streams for the I/O, the sans-I/O library h11 for the protocol
(framing by Content-Length, chunks or the end of the connection; 1xx answers such as
`100 Continue`; keep-alive rules), rather than influxdb-client or aiohttp. The gateway builds
line protocol and batches itself, and needs exactly one request per batch with the status
classified by us. influxdb-client's async API adds a second batching layer, pulls in reactivex
for its batching writer, and its error type hides the Retry-After handling we need; its sync
writer would need a thread. aiohttp did the job, but importing it costs 11 MB of the gateway's
64 MB budget (Speed issue); h11 is one small pure-Python package (pinned >=0.16: earlier
versions accepted malformed chunked bodies, a request-smuggling issue).

Write APIs, chosen by `[influx] api`: v1 `/write` (InfluxDB 1.x; VictoriaMetrics; InfluxDB 3's
compatibility endpoint), v2 `/api/v2/write` (InfluxDB 2.x; VictoriaMetrics; InfluxDB 3), v3
`/api/v3/write_lp` (InfluxDB 3 Core/Enterprise). Credentials as each server documents them:
v1 Basic user:password, or `Bearer <token>` (InfluxDB 3 takes a token on its v1 endpoints);
v2 `Token <token>` (InfluxDB 2.x and 3); v3 `Bearer <token>`.

With `[influx] engine = "victoriametrics"` the writer sends no string fields and reports the
lines VictoriaMetrics drops after answering 204 (see victoria.py); for InfluxDB nothing of that
runs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import h11
import orjson

from gateway.config import InfluxSettings
from gateway.errors import ConfigError, SinkError
from gateway.operations.counters import Metrics
from gateway.reasons import DropReason
from gateway.stages.sinks import RefusedLinesError
from gateway.stages.sinks.refusals import named_refusals
from gateway.stages.sinks.victoria import INVALID_ROWS_METRIC, InvalidRows, NumbersOnly

log = logging.getLogger(__name__)

_USER_AGENT = "mh-gateway"
_MAX_IDLE_CONNECTIONS = 4  # the live writer and the spool replay write concurrently
_MAX_ERROR_BODY_BYTES = 1024**2  # an error answer longer than this is cut, not buffered
_READ_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """What `gateway doctor` found at [influx] url."""

    engine: str  # "InfluxDB 1.x", "InfluxDB 2.x", "InfluxDB 3 Core", "VictoriaMetrics"...
    version: str
    write_apis: tuple[str, ...]  # the [influx] api values it serves

    def __str__(self) -> str:
        return f"{self.engine} {self.version}".strip()


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


class _StaleConnectionError(Exception):
    """A kept-alive connection the server closed while it was idle: nothing was answered."""


class _Connection:
    """One HTTP/1.1 connection: asyncio streams for the bytes, h11 for the protocol."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT)

    @property
    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    async def exchange(self, request: h11.Request, body: bytes | None) -> _Answer:
        """Send one request and read its answer. The body goes to the transport as it is
        (send_with_data_passthrough): a batch of a megabyte is not copied again."""
        self.writer.write(self.protocol.send(request))
        if body:
            # None only for a ConnectionClosed event, which this never sends.
            for part in self.protocol.send_with_data_passthrough(h11.Data(data=body)) or ():
                self.writer.write(part)
        self.writer.write(self.protocol.send(h11.EndOfMessage()))
        await self.writer.drain()
        return await self._read_answer()

    async def _read_answer(self) -> _Answer:
        response: h11.Response | None = None
        body = bytearray()
        while True:
            event = self.protocol.next_event()
            if event is h11.NEED_DATA:
                data = await self.reader.read(_READ_BYTES)
                if not data and response is None:
                    raise _StaleConnectionError("connection closed before any answer")
                self.protocol.receive_data(data)
            elif isinstance(event, h11.InformationalResponse):
                continue  # `100 Continue` and friends precede the real answer (RFC 9110 15.2)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                if len(body) + len(event.data) > _MAX_ERROR_BODY_BYTES:
                    raise _MalformedAnswerError("answer far longer than expected")
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and response is not None:
                headers = {
                    name.decode("latin-1"): value.decode("latin-1")
                    for name, value in response.headers
                }
                return _Answer(response.status_code, body.decode("utf-8", "replace"), headers)
            else:
                raise _MalformedAnswerError(f"unexpected {type(event).__name__} in an answer")

    def reusable(self) -> bool:
        """After a complete exchange: may the next request use this connection? h11 knows
        `Connection: close`, HTTP/1.0 and answers delimited by the end of the connection."""
        if self.protocol.our_state is h11.DONE and self.protocol.their_state is h11.DONE:
            self.protocol.start_next_cycle()
            return self.usable
        return False

    def close(self) -> None:
        self.writer.close()


class InfluxSink:
    def __init__(self, settings: InfluxSettings, metrics: Metrics | None = None) -> None:
        """`metrics` counts what the engine loses on the way (VictoriaMetrics only)."""
        self._settings = settings
        self._metrics = metrics
        self._numbers_only = NumbersOnly() if settings.engine == "victoriametrics" else None
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
        self._path = url.path  # a reverse proxy or vminsert serves the API under a prefix
        default_port = self._port == (443 if self._https else 80)
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._host_header = host if default_port else f"{host}:{self._port}"
        self._headers = [
            ("Host", self._host_header),
            ("User-Agent", _USER_AGENT),
            ("Content-Type", "text/plain; charset=utf-8"),
            *self._auth_header(),
        ]
        self._known_databases: set[str] = set()
        self._ssl = _tls_context(settings) if self._https else None
        self._idle: list[_Connection] = []

    def _auth_header(self) -> list[tuple[str, str]]:
        settings = self._settings
        token = settings.token.get_secret_value() if settings.token is not None else None
        if settings.api == "v2" and token is not None:
            return [("Authorization", f"Token {token}")]
        if settings.api == "v3" and token is not None:
            return [("Authorization", f"Bearer {token}")]
        if settings.api == "v1" and settings.username:
            secret = settings.password.get_secret_value() if settings.password else ""
            pair = base64.b64encode(f"{settings.username}:{secret}".encode()).decode()
            return [("Authorization", f"Basic {pair}")]
        if settings.api == "v1" and token is not None:
            return [("Authorization", f"Bearer {token}")]  # InfluxDB 3's /write
        return []

    def _write_target(self, database: str | None, rp: str | None) -> str:
        settings = self._settings
        if settings.api == "v2":
            bucket = database or settings.bucket or ""
            return (
                f"{self._path}/api/v2/write?org={quote(settings.org or '')}"
                f"&bucket={quote(bucket)}&precision=ns"
            )
        database = quote(database or settings.database)
        if settings.api == "v3":
            # accept_partial: the lines InfluxDB 3 refuses are named in its answer and the
            # others stored, so one bad line costs one request, not a search.
            target = (
                f"{self._path}/api/v3/write_lp?db={database}"
                "&precision=nanosecond&accept_partial=true"
            )
            return f"{target}&no_sync=true" if settings.no_sync else target
        target = f"{self._path}/write?db={database}&precision=ns"
        rp = rp or settings.retention_policy
        return f"{target}&rp={quote(rp)}" if rp else target

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        """POST one batch; returns when InfluxDB accepted it, raises SinkError otherwise
        (RefusedLinesError when the answer names the refused lines)."""
        numbers_only = self._numbers_only
        if numbers_only is None:
            await self._write_lines(lines, database, rp)
            return
        # VictoriaMetrics: the lines without string fields. The dropped fields are counted once
        # the rest is accepted, so a batch retried or spooled and replayed counts once.
        batch = numbers_only.strip(lines)
        if batch.lines:
            try:
                await self._write_lines(batch.lines, database, rp)
            except RefusedLinesError as error:
                if batch.origin is not None:  # indexes into the batch as given
                    error.refused = {batch.origin[i]: why for i, why in error.refused.items()}
                raise
        if batch.dropped:
            numbers_only.warn(batch.dropped)
            if self._metrics is not None:
                self._metrics.fields_dropped[DropReason.STRING_UNSUPPORTED] += len(batch.dropped)

    async def _write_lines(self, lines: list[str], database: str | None, rp: str | None) -> None:
        body = "\n".join(lines).encode()
        answer = await self._post(self._write_target(database, rp), body)
        error = classify(answer.status, answer.text, answer.retry_after, lines)
        if error is None:
            return
        status, text = answer.status, answer.text
        if status == 404 and "database not found" in text and self._settings.create_database:
            await self.create_database(database or self._settings.database)
            answer = await self._post(self._write_target(database, rp), body)
            error = classify(answer.status, answer.text, answer.retry_after, lines)
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
        # h11.ProtocolError: what came back is not HTTP/1.x (or broke its framing).
        except (
            OSError,
            TimeoutError,
            h11.ProtocolError,
            _MalformedAnswerError,
            _StaleConnectionError,
        ) as exc:
            raise SinkError(
                f"InfluxDB unreachable: {exc or type(exc).__name__}", retryable=True
            ) from exc

    async def _exchange(self, method: str, target: str, body: bytes | None) -> _Answer:
        """Send on a kept-alive connection if there is one. One the server closed meanwhile
        fails before any answer, and the request goes again on the next or a new connection:
        every request here is idempotent (InfluxDB stores the same points again, not twice;
        CREATE DATABASE of an existing database changes nothing)."""
        headers = self._headers
        if body is not None:
            headers = [*headers, ("Content-Length", str(len(body)))]
        request = h11.Request(method=method, target=target, headers=headers)
        while self._idle:
            connection = self._idle.pop()
            if not connection.usable:
                connection.close()
                continue
            with contextlib.suppress(ConnectionError, _StaleConnectionError):
                return await self._send(connection, request, body)
        reader, writer = await asyncio.open_connection(
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl is not None else None,
        )
        return await self._send(_Connection(reader, writer), request, body)

    async def _send(
        self, connection: _Connection, request: h11.Request, body: bytes | None
    ) -> _Answer:
        kept = False
        try:
            answer = await connection.exchange(request, body)
            if connection.reusable() and len(self._idle) < _MAX_IDLE_CONNECTIONS:
                self._idle.append(connection)
                kept = True
            return answer
        finally:  # an error, a cancellation or a timeout leaves the connection unusable
            if not kept:
                connection.close()

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

    async def identify(self) -> ServerIdentity:
        """`gateway doctor`: which engine answers and which write APIs it serves. GET /ping
        (with our credentials: InfluxDB 3 wants a token everywhere) names InfluxDB's version
        and build; VictoriaMetrics answers /ping as well, with a version header but no build
        header, and is told apart by its own /metrics. Raises SinkError when nothing that
        speaks this protocol answers."""
        answer = await self._request("GET", f"{self._path}/ping")
        if answer.status in (401, 403):
            raise SinkError(
                f"{self._base}/ping answered HTTP {answer.status}: InfluxDB 3 wants a token on "
                "every endpoint; check [influx] token (or token_file)",
                retryable=True,
                status=answer.status,
            )
        if answer.status not in (200, 204):
            raise SinkError(
                f"{self._base}/ping answered HTTP {answer.status}: is this InfluxDB?",
                retryable=True,
                status=answer.status,
            )
        version = answer.headers.get("x-influxdb-version") or _json_version(answer.text)
        build = answer.headers.get("x-influxdb-build", "")
        if not build and await self._is_victoria_metrics():
            return ServerIdentity("VictoriaMetrics", "", ("v1", "v2"))
        return _influxdb_identity(version or "unknown version", build)

    async def _is_victoria_metrics(self) -> bool:
        try:
            answer = await self._request("GET", "/metrics")  # at the root, also for vminsert
        except SinkError:
            return False
        return answer.status == 200 and "vm_app_version" in answer.text

    async def watch_invalid_rows(self, interval_s: float) -> None:
        """VictoriaMetrics: every `interval_s`, read its invalid-row counter from /metrics (at
        the root, also for vminsert) and report the increase, counted in
        `engine_lines_dropped` and logged: each such line was answered 204 and is lost."""
        invalid = InvalidRows()
        unreadable_logged = False
        while True:
            try:
                answer: _Answer | None = await self._request("GET", "/metrics")
            except SinkError:
                answer = None  # VictoriaMetrics down: the writer reports that
            if answer is not None:
                watching = invalid.watching
                increase = invalid.increase(answer.text) if answer.status == 200 else None
                if increase is None and not unreadable_logged:
                    unreadable_logged = True
                    log.warning(
                        "cannot read VictoriaMetrics' %s at %s://%s/metrics (HTTP %d): "
                        "lines it drops after answering 204 go unreported",
                        INVALID_ROWS_METRIC,
                        "https" if self._https else "http",
                        self._host_header,
                        answer.status,
                    )
                elif increase is not None and not watching:
                    log.info(
                        "watching VictoriaMetrics' %s every %g s for lines it drops unparsed",
                        INVALID_ROWS_METRIC,
                        interval_s,
                    )
                if increase:
                    self._report_invalid_rows(increase)
            await asyncio.sleep(interval_s)

    def _report_invalid_rows(self, increase: int) -> None:
        if self._metrics is not None:
            self._metrics.engine_lines_dropped += increase
        log.warning(
            "VictoriaMetrics answered 204 but dropped %d line(s) it could not parse since the "
            "last look (%s): they are lost; its log names each one ('cannot unmarshal InfluxDB "
            "line')",
            increase,
            INVALID_ROWS_METRIC,
        )

    async def check_write(self, database: str | None, rp: str | None) -> SinkError | None:
        """`gateway doctor`: POST an empty body to the write endpoint. InfluxDB checks the
        credentials (401), the write permission (403) and the database (404 "database not
        found") before the body, and an empty body stores nothing (1.x answers 204), so this
        proves a write would be accepted without writing a point."""
        answer = await self._post(self._write_target(database, rp), b"")
        return classify(answer.status, answer.text, answer.retry_after)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        for connection in idle:
            with contextlib.suppress(OSError, ssl.SSLError):
                await connection.writer.wait_closed()


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


def _influxdb_identity(version: str, build: str) -> ServerIdentity:
    major = version.lstrip("v").split(".", 1)[0]
    if major == "3" or build.lower() in ("core", "enterprise"):
        return ServerIdentity(f"InfluxDB 3 {build}".strip(), version, ("v3", "v2", "v1"))
    if major == "2":
        return ServerIdentity("InfluxDB 2.x", version, ("v2", "v1"))
    if major == "1":
        # /api/v2/write came to 1.x in 1.8 (a compatibility endpoint for 2.x clients).
        minor = version.split(".")[1] if version.count(".") else "0"
        v2 = ("v2",) if minor.isdigit() and int(minor) >= 8 else ()
        return ServerIdentity("InfluxDB 1.x", version, ("v1", *v2))
    return ServerIdentity("an unknown server", version, ())


def _json_version(body: str) -> str | None:
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    version = decoded.get("version") if isinstance(decoded, dict) else None
    return str(version) if version else None


def classify(
    status: int, body: str, retry_after: str | None, lines: list[str] | None = None
) -> SinkError | None:
    """The one place that decides what an InfluxDB answer means for the data.

    2xx accepted; 429/5xx retry later (honouring Retry-After); 401/403 keep the data and alarm
    (retryable: an operator fixing the credentials must not cost readings); 400/413/422 and other
    4xx are about this batch's content and will never succeed as they are. When the answer
    names the refused lines of `lines` (InfluxDB 3's partial write, 1.x/2.x's "partial write:"
    and "unable to parse" texts), a RefusedLinesError says which (see refusals.py).
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
    refusal = named_refusals(body, lines) if lines and status in (400, 422) else None
    if refusal is not None:
        return RefusedLinesError(
            f"InfluxDB refused {len(refusal.refused)} of {len(lines or ())} lines "
            f"(HTTP {status}): {message}",
            refused=refusal.refused,
            others_written=refusal.others_written,
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
