"""The gateway's HTTP endpoint: liveness, readiness, Prometheus metrics, stale devices.

The only module that serves HTTP (aiohttp.web) and the only user of prometheus-client. The hot
path never calls either: it bumps plain ints in gateway.metrics.Metrics, and `_StatsCollector`
reads them when Prometheus scrapes, through the same `read_stats` list the InfluxDB
self-metrics use (gateway/selfmetrics.py).

    GET /healthz        200 "ok" while the event loop answers (a wedged loop times out)
    GET /readyz         200 or 503, JSON {"ready": bool, "reasons": [...]}
    GET /metrics        Prometheus text format 0.0.4
    GET /devices/stale  JSON list of silent or offline devices (only with a liveness tracker)

No authentication: listen on loopback or a management network only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from gateway.config import HttpSettings
from gateway.errors import ConfigError
from gateway.metrics import Metrics
from gateway.selfmetrics import Sources, read_stats

log = logging.getLogger(__name__)

PROMETHEUS_PREFIX = "mh_gateway_"
# generate_latest() writes the classic text format whatever the client version's default
# content type is (0.26 announces 1.0.0 as "latest"), so say exactly what the body is.
_TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
_STALE_LIST_LIMIT = 1000
# Scrapes take milliseconds; do not let a slow client hold up the gateway's own shutdown.
_SHUTDOWN_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class Readiness:
    ok: bool
    reasons: tuple[str, ...] = ()


def assess_readiness(
    metrics: Metrics, *, mqtt_connected: bool, spool_usable: bool, stopping: bool = False
) -> Readiness:
    """Ready = connected to the broker AND (InfluxDB takes writes OR the spool can hold them).

    `spool_usable`: the spool is enabled and opened without error; a full spool counts as not
    usable here whatever the caller says. `stopping`: SIGTERM received, intake stopped.
    """
    reasons: list[str] = ["gateway: stopping"] if stopping else []
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


class _StatsCollector:
    """A prometheus_client custom collector: reads the gateway's figures at scrape time."""

    def __init__(
        self, sources: Sources, readiness: Callable[[], Readiness], clock_ns: Callable[[], int]
    ) -> None:
        self._sources = sources
        self._readiness = readiness
        self._clock_ns = clock_ns

    def collect(self) -> Iterable[Metric]:
        stats = read_stats(self._sources, self._clock_ns())
        split = {breakdown.name for breakdown in stats.breakdowns}
        for scalar in stats.scalars:
            if scalar.name in split:
                continue  # exported below with its label; sum() over it gives this total
            family = CounterMetricFamily if scalar.kind == "counter" else GaugeMetricFamily
            yield family(PROMETHEUS_PREFIX + scalar.name, scalar.help, value=scalar.value)
        for breakdown in stats.breakdowns:
            counter = CounterMetricFamily(
                PROMETHEUS_PREFIX + breakdown.name, breakdown.help, labels=[breakdown.label]
            )
            for key, count in sorted(breakdown.counts.items()):
                counter.add_metric([key], count)
            yield counter
        yield HistogramMetricFamily(
            PROMETHEUS_PREFIX + "write_latency_seconds",
            "Duration of successful InfluxDB write requests.",
            buckets=[
                ("+Inf" if math.isinf(bound) else repr(bound), count)
                for bound, count in stats.write_latency
            ],
            sum_value=stats.write_latency_sum_s,
        )
        ready = self._readiness().ok
        yield GaugeMetricFamily(PROMETHEUS_PREFIX + "ready", "1 if /readyz says ready.", int(ready))


class HealthServer:
    """Serves the endpoints on `[http] listen:port` from `start()` until `stop()`.

    One CollectorRegistry per server (never prometheus-client's global one), so tests and
    several gateways in one process do not collide.
    """

    def __init__(
        self,
        settings: HttpSettings,
        sources: Sources,
        readiness: Callable[[], Readiness],
        *,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._settings = settings
        self._sources = sources
        self._readiness = readiness
        self._clock_ns = clock_ns
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(sources, readiness, clock_ns))
        ProcessCollector(registry=self.registry)  # memory, CPU, open files (Linux /proc)
        PlatformCollector(registry=self.registry)
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with `port = 0`); 0 before start()."""
        if self._runner is None or not self._runner.addresses:
            return 0
        port: int = self._runner.addresses[0][1]
        return port

    async def start(self) -> None:
        """Bind and serve; raises ConfigError if the address cannot be used."""
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        if self._sources.liveness is not None:
            app.router.add_get("/devices/stale", self._stale_devices)
        # access_log=None: a scrape every few seconds would flood journald with INFO lines.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        host, port = self._settings.listen, self._settings.port
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(
                f"http: cannot listen on {_host_port(host, port)} ({exc.strerror or exc}): "
                "change [http] listen/port, or set [http] enabled = false"
            ) from exc
        self._runner = runner
        log.info("health endpoint on http://%s/", _host_port(host, self.port))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- handlers ----------------------------------------------------------------------------

    async def _index(self, _: web.Request) -> web.Response:
        paths = ["/healthz", "/readyz", "/metrics"]
        if self._sources.liveness is not None:
            paths.append("/devices/stale")
        return web.Response(text="mh-gateway\n" + "".join(f"  {path}\n" for path in paths))

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _: web.Request) -> web.Response:
        readiness = self._readiness()
        body = {"ready": readiness.ok, "reasons": list(readiness.reasons)}
        return web.json_response(body, status=200 if readiness.ok else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": _TEXT_FORMAT}
        )

    async def _stale_devices(self, request: web.Request) -> web.Response:
        tracker = self._sources.liveness
        assert tracker is not None  # the route exists only with a tracker
        try:
            limit = int(request.query.get("limit", _STALE_LIST_LIMIT))
        except ValueError:
            raise web.HTTPBadRequest(text="limit must be an integer\n") from None
        now_ns = self._clock_ns()
        stale = tracker.stale(now_ns, limit=max(0, limit))
        body: dict[str, Any] = {
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
        return web.json_response(body)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---- the client side, for `gateway status` -----------------------------------------------------

Samples = dict[str, list[tuple[dict[str, str], float]]]
"""Prometheus sample name (with `_total`, `_bucket`, ...) -> (labels, value) per series."""


async def fetch_endpoint(base_url: str, path: str, timeout_s: float) -> tuple[int, str]:
    """GET one endpoint of a running gateway: (HTTP status, body). Raises ConfigError naming
    the address when nothing answers there."""
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
    samples: Samples = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    except ValueError as exc:
        raise ConfigError(f"/metrics is not Prometheus text: {exc}") from exc
    return samples
