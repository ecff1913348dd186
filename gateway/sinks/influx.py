"""The only module that speaks HTTP to InfluxDB.

A thin writer on aiohttp rather than influxdb-client: the gateway already builds line protocol
and batches itself, and needs exactly one request per batch with the status classified by us.
influxdb-client's async API adds a second batching layer, pulls in reactivex for its batching
writer, and its error type hides the Retry-After handling we need; its sync writer would need a
thread. The v1 (`/write`) and v2 (`/api/v2/write`) APIs differ only in URL and credentials.
"""

from __future__ import annotations

import base64
import logging
import ssl
from urllib.parse import quote

import aiohttp
import orjson

from gateway.config import InfluxSettings
from gateway.errors import ConfigError, SinkError

log = logging.getLogger(__name__)


class InfluxSink:
    def __init__(self, settings: InfluxSettings) -> None:
        self._settings = settings
        self._base = settings.url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **self._auth_header()}
        self._known_databases: set[str] = set()
        self._ssl = _tls_context(settings)

    def _auth_header(self) -> dict[str, str]:
        settings = self._settings
        if settings.api == "v2" and settings.token is not None:
            return {"Authorization": f"Token {settings.token.get_secret_value()}"}
        if settings.api == "v1" and settings.username:
            secret = settings.password.get_secret_value() if settings.password else ""
            pair = base64.b64encode(f"{settings.username}:{secret}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        return {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
            connector = aiohttp.TCPConnector(ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                timeout=timeout, headers=self._headers, connector=connector
            )
        return self._session

    def _write_url(self, database: str | None, rp: str | None) -> str:
        settings = self._settings
        if settings.api == "v2":
            bucket = database or settings.bucket or ""
            return (
                f"{self._base}/api/v2/write?org={quote(settings.org or '')}"
                f"&bucket={quote(bucket)}&precision=ns"
            )
        url = f"{self._base}/write?db={quote(database or settings.database)}&precision=ns"
        rp = rp or settings.retention_policy
        return f"{url}&rp={quote(rp)}" if rp else url

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        """POST one batch; returns when InfluxDB accepted it, raises SinkError otherwise."""
        body = "\n".join(lines).encode()
        status, text, retry_after = await self._post(self._write_url(database, rp), body)
        error = classify(status, text, retry_after)
        if error is None:
            return
        if status == 404 and "database not found" in text and self._settings.create_database:
            await self.create_database(database or self._settings.database)
            status, text, retry_after = await self._post(self._write_url(database, rp), body)
            error = classify(status, text, retry_after)
            if error is None:
                return
        raise error

    async def _post(self, url: str, body: bytes) -> tuple[int, str, str | None]:
        try:
            async with self._client().post(url, data=body) as response:
                return response.status, await response.text(), response.headers.get("Retry-After")
        except aiohttp.ClientConnectorCertificateError as exc:
            raise SinkError(
                f"InfluxDB's TLS certificate was refused ({exc.certificate_error}); it must be "
                "signed by a CA in [influx] ca_file (or the system store) and be valid for "
                f"{exc.host}",
                retryable=True,  # a renewed certificate or CA file must not cost readings
            ) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SinkError(
                f"InfluxDB unreachable: {exc or type(exc).__name__}", retryable=True
            ) from exc

    async def create_database(self, name: str) -> None:
        """v1 only: CREATE DATABASE is idempotent in InfluxDB 1.x."""
        if self._settings.api != "v1" or name in self._known_databases:
            return
        query = f'CREATE DATABASE "{name.replace(chr(34), "")}"'
        status, text, retry_after = await self._post(f"{self._base}/query?q={quote(query)}", b"")
        error = classify(status, text, retry_after)
        if error is not None:
            raise error
        self._known_databases.add(name)
        log.info("created InfluxDB database %s", name)

    async def ping(self) -> bool:
        try:
            async with self._client().get(f"{self._base}/ping") as response:
                return response.status in (200, 204)
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def server_version(self) -> str:
        """`gateway doctor`: GET /ping (no credentials needed in 1.x and 2.x); the version the
        server announces. Raises SinkError when InfluxDB is unreachable or is not InfluxDB."""
        try:
            async with self._client().get(f"{self._base}/ping") as response:
                status = response.status
                version = response.headers.get("X-Influxdb-Version", "")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SinkError(
                f"InfluxDB unreachable: {exc or type(exc).__name__}", retryable=True
            ) from exc
        if status not in (200, 204):
            raise SinkError(
                f"{self._base}/ping answered HTTP {status}: is this InfluxDB?",
                retryable=True,
                status=status,
            )
        return version or "unknown version"

    async def check_write(self, database: str | None, rp: str | None) -> SinkError | None:
        """`gateway doctor`: POST an empty body to the write endpoint. InfluxDB checks the
        credentials (401), the write permission (403) and the database (404 "database not
        found") before the body, and an empty body stores nothing (1.x answers 204), so this
        proves a write would be accepted without writing a point."""
        status, text, retry_after = await self._post(self._write_url(database, rp), b"")
        return classify(status, text, retry_after)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _tls_context(settings: InfluxSettings) -> ssl.SSLContext | bool:
    """Verification is always on (chain, dates, name); `ca_file` only says whom to trust.

    True is aiohttp's default context (the system's CA store)."""
    if settings.ca_file is None:
        return True
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
