"""The gateway's HTTP endpoint: liveness, readiness, Prometheus metrics, stale devices.

The only module that serves HTTP. The hot path never calls it: it bumps plain ints in
gateway.operations.counters.Metrics, and `_stats_families` reads them when Prometheus
scrapes, through the same `read_stats` list the InfluxDB self-metrics use
(gateway/operations/figures.py).

The server is asyncio's own (`asyncio.start_server`) with a small HTTP/1.1 reader: four GET
endpoints, one answer per connection. aiohttp.web served them before, but aiohttp costs 11 MB
of the gateway's 64 MB memory budget (Speed issue), and a scrape every few seconds needs none
of it. `gateway status` still reads the endpoints with aiohttp's client (`fetch_endpoint`,
imported only by that command).

/metrics writes the Prometheus text format 0.0.4 itself, exactly as prometheus-client 0.26's
`generate_latest` did with its process and platform collectors (tests/test_health.py compares
the two): importing prometheus-client cost another 3.7 MB (its exposition module brings
http.server, wsgiref and email). `gateway status` parses the text with prometheus-client.

    GET /healthz        200 "ok" while the event loop answers (a wedged loop times out)
    GET /readyz         200 or 503, JSON {"ready": bool, "reasons": [...]}
    GET /metrics        Prometheus text format 0.0.4
    GET /devices/stale  JSON list of silent or offline devices (only with a liveness tracker)

No authentication: listen on loopback or a management network only.

Hostile or broken clients cost bounded memory and no event-loop time worth noticing: at most
`[http] max_connections` at once (more are closed unanswered and counted), a request must
arrive within `_REQUEST_TIMEOUT_S` and an answer be taken within `_WRITE_TIMEOUT_S` (a client
that never reads is cut, its buffer freed), /devices/stale is built at most once a second,
at most `_STALE_LIST_LIMIT` devices (`?limit=`, default `_STALE_LIST_DEFAULT`), and the two
answers that cost something, /metrics and /devices/stale, go out at most
`_HEAVY_ANSWERS_PER_S` a second: a client looping on them waits its turn on one of the few
connection slots (8 clients looping on a 1,000-device list halved acked ingest).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import platform
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.config import HttpSettings
from gateway.errors import ConfigError
from gateway.operations.counters import Metrics
from gateway.operations.figures import Sources, read_stats

log = logging.getLogger(__name__)

PROMETHEUS_PREFIX = "mh_gateway_"
# generate_latest() writes the classic text format whatever the client version's default
# content type is (0.26 announces 1.0.0 as "latest"), so say exactly what the body is.
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
_STALE_LIST_LIMIT = 1000
_STALE_LIST_DEFAULT = 100
_HEAVY_ANSWERS_PER_S = 10.0  # a scrape every few seconds needs a fraction of this
_STALE_CACHE_NS = 1_000_000_000  # the stale list is rebuilt at most this often
# Scrapes take milliseconds; do not let a slow client hold up the gateway's own shutdown.
_SHUTDOWN_TIMEOUT_S = 1.0
# A client that sends its request this slowly, or this much of it, is no scraper.
_REQUEST_TIMEOUT_S = 5.0
# A client that takes an answer this slowly (or never reads it) is cut: its buffer is freed.
_WRITE_TIMEOUT_S = 5.0
_WRITE_BUFFER_BYTES = 64 * 1024
_MAX_REQUEST_HEAD_BYTES = 16 * 1024
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS |= {503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Readiness:
    ok: bool
    reasons: tuple[str, ...] = ()


def assess_readiness(
    metrics: Metrics,
    *,
    mqtt_connected: bool,
    spool_usable: bool,
    stopping: bool = False,
    disk_full: Iterable[str | None] = (),
) -> Readiness:
    """Ready = connected to the broker AND (InfluxDB takes writes OR the spool can hold them)
    AND the state directory takes writes.

    `spool_usable`: the spool is enabled and opened without error; a full spool counts as not
    usable here whatever the caller says. `stopping`: SIGTERM received, intake stopped.
    `disk_full`: each store's `storage.disk_full` (gateway/stages/storage.py), None when fine.
    """
    reasons: list[str] = ["gateway: stopping"] if stopping else []
    reasons.extend(
        f"{problem}; not acknowledging, intake paused until there is space"
        for problem in disk_full
        if problem is not None
    )
    if not mqtt_connected:
        reasons.append("mqtt: not connected to the broker")
    if not metrics.influx_writable:
        spool_ok = spool_usable and not metrics.spool_full
        if not spool_ok:
            error = metrics.last_write_error or "no detail"
            reasons.append(f"influxdb: writes failing ({error})")
            reasons.append(
                "spool: full, intake paused" if metrics.spool_full else "spool: not available"
            )
    return Readiness(not reasons, tuple(reasons))


Sample = tuple[str, dict[str, str], float]
"""(sample name, labels, value)."""


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """One metric of the exposition: `# HELP`, `# TYPE` and its samples."""

    name: str  # as exposed: counters end in `_total`
    kind: str  # counter, gauge or histogram
    help: str
    samples: list[Sample]


def _counter(name: str, help_text: str, value: float | None = None) -> MetricFamily:
    name = name if name.endswith("_total") else name + "_total"
    return MetricFamily(name, "counter", help_text, [] if value is None else [(name, {}, value)])


def _gauge(
    name: str, help_text: str, value: float, labels: dict[str, str] | None = None
) -> MetricFamily:
    return MetricFamily(name, "gauge", help_text, [(name, labels or {}, value)])


def _stats_families(sources: Sources, ready: bool, now_ns: int) -> list[MetricFamily]:
    """The gateway's figures at scrape time."""
    stats = read_stats(sources, now_ns)
    split = {breakdown.name for breakdown in stats.breakdowns}
    families = [
        _counter(PROMETHEUS_PREFIX + scalar.name, scalar.help, scalar.value)
        if scalar.kind == "counter"
        else _gauge(PROMETHEUS_PREFIX + scalar.name, scalar.help, scalar.value)
        for scalar in stats.scalars
        if scalar.name not in split  # exported below with its label; sum() gives this total
    ]
    for breakdown in stats.breakdowns:
        counter = _counter(PROMETHEUS_PREFIX + breakdown.name, breakdown.help)
        counter.samples.extend(
            (counter.name, {breakdown.label: key}, count)
            for key, count in sorted(breakdown.counts.items())
        )
        families.append(counter)
    name = PROMETHEUS_PREFIX + "write_latency_seconds"
    latency = MetricFamily(name, "histogram", "Duration of successful InfluxDB write requests.", [])
    latency.samples.extend(
        (name + "_bucket", {"le": "+Inf" if math.isinf(bound) else repr(bound)}, count)
        for bound, count in stats.write_latency
    )
    if stats.write_latency:
        latency.samples.append((name + "_count", {}, stats.write_latency[-1][1]))
    latency.samples.append((name + "_sum", {}, stats.write_latency_sum_s))
    families.append(latency)
    families.append(_gauge(PROMETHEUS_PREFIX + "ready", "1 if /readyz says ready.", int(ready)))
    return families


_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _process_families() -> list[MetricFamily]:
    """prometheus-client's process collector: memory, CPU, start time and file descriptors
    from /proc (Linux); nothing where /proc cannot be read."""
    families = []
    try:
        with open("/proc/self/stat", "rb") as file:
            fields = file.read().rsplit(b")", 1)[-1].split()
        start_s = float(fields[19]) / _TICKS_PER_S + _boot_time_s()
        families += [
            _gauge(
                "process_virtual_memory_bytes", "Virtual memory size in bytes.", float(fields[20])
            ),
            _gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                float(fields[21]) * _PAGE_BYTES,
            ),
            _gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                start_s,
            ),
            _counter(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                (float(fields[11]) + float(fields[12])) / _TICKS_PER_S,
            ),
        ]
        open_fds = len(os.listdir("/proc/self/fd"))
        with open("/proc/self/limits", "rb") as file:
            max_fds = next(
                float(line.split()[3]) for line in file if line.startswith(b"Max open file")
            )
        families += [
            _gauge("process_open_fds", "Number of open file descriptors.", open_fds),
            _gauge("process_max_fds", "Maximum number of open file descriptors.", max_fds),
        ]
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    return families


def _boot_time_s() -> float:
    with open("/proc/stat", "rb") as file:
        return next(float(line.split()[1]) for line in file if line.startswith(b"btime "))


def _python_info() -> MetricFamily:
    major, minor, patchlevel = platform.python_version_tuple()
    labels = {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "major": major,
        "minor": minor,
        "patchlevel": patchlevel,
    }
    return _gauge("python_info", "Python platform information", 1, labels)


def exposition(families: Iterable[MetricFamily]) -> bytes:
    """Prometheus text format 0.0.4, as prometheus-client's generate_latest writes it."""
    lines = []
    for family in families:
        help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {family.name} {help_text}\n# TYPE {family.name} {family.kind}\n")
        for name, labels, value in family.samples:
            pairs = ",".join(f'{key}="{_label_value(labels[key])}"' for key in sorted(labels))
            series = f"{name}{{{pairs}}}" if pairs else name
            lines.append(f"{series} {_go_float(value)}\n")
    return "".join(lines).encode()


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _go_float(value: float) -> str:
    """A sample value as Go's strconv writes it (prometheus-client's floatToGoString)."""
    number = float(value)
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if math.isnan(number):
        return "NaN"
    text = repr(number)
    dot = text.find(".")
    if number > 0 and dot > 6:  # Go switches to an exponent sooner than Python
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


@dataclass(frozen=True, slots=True)
class _Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def _text(text: str, status: int = 200) -> _Response:
    return _Response(status, text.encode())


def _json(body: object, status: int = 200) -> _Response:
    return _Response(status, json.dumps(body).encode(), "application/json; charset=utf-8")


class HealthServer:
    """Serves the endpoints on `[http] listen:port` from `start()` until `stop()`."""

    def __init__(
        self,
        settings: HttpSettings,
        sources: Sources,
        readiness: Callable[[], Readiness],
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        failing: Callable[[], list[str]] = list,
    ) -> None:
        """`failing`: what makes /healthz fail (a pipeline task died or is stuck; see
        gateway/operations/watchdog.py); the health server itself runs outside the pipeline's
        tasks, so answering is no proof they run."""
        self._settings = settings
        self._failing = failing
        self._sources = sources
        self._readiness = readiness
        self._clock_ns = clock_ns
        self._python_info = _python_info()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.refused_connections = 0  # over [http] max_connections, closed unanswered
        self.cut_connections = 0  # too slow to send a request or to read the answer
        # (built at ns, the stale-list fields, the JSON body for `_stale_body_limit`)
        self._stale: tuple[int, dict[str, Any], bytes] | None = None
        self._stale_body_limit = -1
        self._next_heavy_answer_s = 0.0
        self._routes: dict[str, Callable[[dict[str, list[str]]], Awaitable[_Response]]] = {
            "/": self._index,
            "/healthz": self._healthz,
            "/readyz": self._readyz,
            "/metrics": self._metrics,
        }
        if sources.liveness is not None:
            self._routes["/devices/stale"] = self._stale_devices

    @property
    def port(self) -> int:
        """The bound port (useful with `port = 0`); 0 before start()."""
        if self._server is None or not self._server.sockets:
            return 0
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Bind and serve; raises ConfigError if the address cannot be used."""
        host, port = self._settings.listen, self._settings.port
        try:
            self._server = await asyncio.start_server(self._serve, host, port)
        except OSError as exc:
            raise ConfigError(
                f"http: cannot listen on {_host_port(host, port)} ({exc.strerror or exc}): "
                "change [http] listen/port, or set [http] enabled = false"
            ) from exc
        log.info("health endpoint on http://%s/", _host_port(host, self.port))

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        if self._connections:  # a scrape in progress gets a moment, then is cut
            _, pending = await asyncio.wait(self._connections, timeout=_SHUTDOWN_TIMEOUT_S)
            for task in pending:
                task.cancel()
        await server.wait_closed()

    # ---- HTTP/1.1, one request per connection ----------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self._settings.max_connections:
            self.refused_connections += 1
            writer.transport.abort()  # no answer, no buffer: the cheapest refusal
            return
        task = asyncio.current_task()
        assert task is not None  # start_server runs each connection in a task
        self._connections.add(task)
        writer.transport.set_write_buffer_limits(high=_WRITE_BUFFER_BYTES)
        try:
            with contextlib.suppress(OSError, EOFError, asyncio.LimitOverrunError):
                async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                    method, target = await _read_request(reader)
                response = await self._answer(method, target)
                writer.write(_response_bytes(response, head_only=method == "HEAD"))
                async with asyncio.timeout(_WRITE_TIMEOUT_S):
                    await writer.drain()
        except TimeoutError:
            self.cut_connections += 1
            writer.transport.abort()  # close() would wait to flush what the client never reads
        finally:
            self._connections.discard(task)
            writer.close()

    async def _answer(self, method: str, target: str) -> _Response:
        if not method:
            return _text("malformed request\n", 400)
        url = urlsplit(target)
        route = self._routes.get(url.path)
        if route is None:
            return _text("404: Not Found", 404)
        if method not in ("GET", "HEAD"):
            response = _text("405: Method Not Allowed", 405)
            response.headers["Allow"] = "GET,HEAD"
            return response
        return await route(parse_qs(url.query))

    # ---- handlers ----------------------------------------------------------------------------

    async def _index(self, _: dict[str, list[str]]) -> _Response:
        paths = ["/healthz", "/readyz", "/metrics"]
        if self._sources.liveness is not None:
            paths.append("/devices/stale")
        return _text("mh-gateway\n" + "".join(f"  {path}\n" for path in paths))

    async def _healthz(self, _: dict[str, list[str]]) -> _Response:
        problems = self._failing()
        if problems:
            return _text("".join(f"{problem}\n" for problem in problems), 503)
        return _text("ok\n")

    async def _readyz(self, _: dict[str, list[str]]) -> _Response:
        readiness = self._readiness()
        body = {"ready": readiness.ok, "reasons": list(readiness.reasons)}
        return _json(body, status=200 if readiness.ok else 503)

    async def _take_turn(self) -> None:
        """Wait for the next heavy answer's turn (see the module docstring)."""
        now = time.monotonic()
        turn = max(now, self._next_heavy_answer_s)
        self._next_heavy_answer_s = turn + 1 / _HEAVY_ANSWERS_PER_S
        if turn > now:
            await asyncio.sleep(turn - now)

    async def _metrics(self, _: dict[str, list[str]]) -> _Response:
        await self._take_turn()
        families = _stats_families(self._sources, self._readiness().ok, self._clock_ns())
        families += _process_families()
        families.append(self._python_info)
        return _Response(200, exposition(families), _TEXT_FORMAT)

    async def _stale_devices(self, query: dict[str, list[str]]) -> _Response:
        try:
            limit = int(query.get("limit", [_STALE_LIST_DEFAULT])[0])
        except ValueError:
            return _text("limit must be an integer\n", 400)
        limit = min(max(0, limit), _STALE_LIST_LIMIT)
        await self._take_turn()
        now_ns = self._clock_ns()
        if self._stale is None or now_ns - self._stale[0] >= _STALE_CACHE_NS:
            self._stale = (now_ns, self._stale_fields(now_ns), b"")
            self._stale_body_limit = -1
        built_ns, fields, body = self._stale
        if limit != self._stale_body_limit:  # one body kept: the last limit asked for
            devices = fields["devices"]
            body = json.dumps({**fields, "devices": devices[:limit]}).encode()
            self._stale, self._stale_body_limit = (built_ns, fields, body), limit
        return _Response(200, body, "application/json; charset=utf-8")

    def _stale_fields(self, now_ns: int) -> dict[str, Any]:
        tracker = self._sources.liveness
        assert tracker is not None  # the route exists only with a tracker
        stale = tracker.stale(now_ns, limit=_STALE_LIST_LIMIT)
        return {
            "count": tracker.stale_count(now_ns),
            "tracked": tracker.tracked,
            "overflow_reports": tracker.overflow_reports,
            "stale_after_intervals": tracker.stale_after_intervals,
            "devices": [
                {
                    "profile_id": device.profile_id,
                    "device_id": device.device_id,
                    "reason": device.reason,
                    "last_seen_ns": device.last_seen_ns,
                    "silent_s": round(device.silent_s, 3),
                    "expected_interval_s": device.expected_interval_s,
                }
                for device in stale
            ],
        }


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    """(method, target) of the request; ("", "") when it is not HTTP/1.x. The headers are read
    and ignored: every answer closes the connection, and a GET has no body."""
    request_line = await reader.readuntil(b"\r\n")
    size = len(request_line)
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        size += len(line)
        if size > _MAX_REQUEST_HEAD_BYTES:
            return "", ""
    parts = request_line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return "", ""
    return parts[0], parts[1]


def _response_bytes(response: _Response, *, head_only: bool) -> bytes:
    headers = {
        "Content-Type": response.content_type,
        "Content-Length": str(len(response.body)),
        "Connection": "close",
        **response.headers,
    }
    head = f"HTTP/1.1 {response.status} {_REASONS.get(response.status, '')}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    return head.encode("latin-1") + b"\r\n" + (b"" if head_only else response.body)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---- the client side, for `gateway status` -----------------------------------------------------

Samples = dict[str, list[tuple[dict[str, str], float]]]
"""Prometheus sample name (with `_total`, `_bucket`, ...) -> (labels, value) per series."""


async def fetch_endpoint(base_url: str, path: str, timeout_s: float) -> tuple[int, str]:
    """GET one endpoint of a running gateway: (HTTP status, body). Raises ConfigError naming
    the address when nothing answers there."""
    import aiohttp  # noqa: PLC0415  # `gateway status` only: the server above does without it

    url = base_url.rstrip("/") + path
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url) as response,
        ):
            return response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise ConfigError(
            f"no gateway answers at {base_url} ({exc or type(exc).__name__}): is it running "
            "(systemctl status mh-gateway)? Check [http] listen and port, or pass --url"
        ) from exc


def parse_metrics(text: str) -> Samples:
    """The samples of a /metrics answer; ConfigError if it is not Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415  # status only

    samples: Samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    except ValueError as exc:
        raise ConfigError(f"/metrics is not Prometheus text: {exc}") from exc
    return samples
