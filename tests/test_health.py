"""The HTTP endpoint, served for real on a loopback port and fetched with an HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.config import HttpSettings
from gateway.errors import ConfigError
from gateway.operations.counters import Metrics
from gateway.operations.endpoint import HealthServer, Readiness, assess_readiness
from gateway.operations.figures import Sources
from gateway.operations.watchdog import Watchdog
from gateway.policies.liveness import NS_PER_S, LivenessTracker
from gateway.stages.ingest import IngestStats
from tests.waits import wait_for_async

NOW_NS = 1_800_000_000 * NS_PER_S


def always_ready() -> Readiness:
    return Readiness(True)


@asynccontextmanager
async def serving(
    sources: Sources,
    readiness: Callable[[], Readiness] = always_ready,
    listen: str = "127.0.0.1",
) -> AsyncIterator[str]:
    """A started server; yields its base URL."""
    server = HealthServer(
        HttpSettings(listen=listen, port=0), sources, readiness, clock_ns=lambda: NOW_NS
    )
    await server.start()
    host = f"[{listen}]" if ":" in listen else listen
    try:
        yield f"http://{host}:{server.port}"
    finally:
        await server.stop()


async def fetch(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers["Content-Type"], await response.text()


async def fetch_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_healthz_answers_while_the_loop_runs() -> None:
    async with serving(Sources(Metrics())) as base:
        status, _, body = await fetch(f"{base}/healthz")
    assert (status, body) == (200, "ok\n")


async def test_readyz_follows_the_readiness_callable() -> None:
    state = {"readiness": Readiness(True)}
    async with serving(Sources(Metrics()), lambda: state["readiness"]) as base:
        assert await fetch_json(f"{base}/readyz") == (200, {"ready": True, "reasons": []})
        state["readiness"] = Readiness(False, ("mqtt: not connected to the broker",))
        assert await fetch_json(f"{base}/readyz") == (
            503,
            {"ready": False, "reasons": ["mqtt: not connected to the broker"]},
        )


async def test_metrics_reads_the_counters_at_scrape_time() -> None:
    metrics = Metrics()
    ingest = IngestStats(connects=3, reconnects=2)
    liveness = LivenessTracker({"lamp": 60.0})
    liveness.seen("lamp", "sl-1", NOW_NS - 600 * NS_PER_S, retained=False)  # stale
    liveness.seen("lamp", "sl-2", NOW_NS - 10 * NS_PER_S, retained=False)
    sources = Sources(metrics, ingest=ingest, liveness=liveness, mqtt_connected=lambda: True)
    async with serving(sources) as base:
        metrics.messages_received += 7
        metrics.messages_acked += 5
        metrics.messages_by_profile["lamp"] += 7
        metrics.points_written["lighting"] += 12
        metrics.dead_letters["invalid_json"] += 2
        metrics.write_failures["http_503"] += 1
        metrics.spool_batches, metrics.spool_bytes = 4, 8192
        metrics.spool_oldest_ns = NOW_NS - 90 * NS_PER_S
        metrics.spool_full = True
        metrics.observe_write_latency(0.003)
        metrics.observe_write_latency(0.2)
        status, content_type, text = await fetch(f"{base}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    found = samples(text)
    assert found[("mh_gateway_messages_received_total", ())] == 7
    assert found[("mh_gateway_messages_acked_total", ())] == 5
    assert found[("mh_gateway_profile_messages_total", (("profile", "lamp"),))] == 7
    assert found[("mh_gateway_points_written_total", (("domain", "lighting"),))] == 12
    assert found[("mh_gateway_dead_letters_total", (("reason", "invalid_json"),))] == 2
    assert found[("mh_gateway_write_failures_total", (("reason", "http_503"),))] == 1
    assert found[("mh_gateway_spool_batches", ())] == 4
    assert found[("mh_gateway_spool_bytes", ())] == 8192
    assert found[("mh_gateway_spool_oldest_age_seconds", ())] == 90.0
    assert found[("mh_gateway_spool_full", ())] == 1
    assert found[("mh_gateway_mqtt_reconnects_total", ())] == 2
    assert found[("mh_gateway_mqtt_connected", ())] == 1
    assert found[("mh_gateway_devices_tracked", ())] == 2
    assert found[("mh_gateway_devices_stale", ())] == 1
    assert found[("mh_gateway_ready", ())] == 1
    assert found[("mh_gateway_write_latency_seconds_bucket", (("le", "0.005"),))] == 1
    assert found[("mh_gateway_write_latency_seconds_bucket", (("le", "0.25"),))] == 2
    assert found[("mh_gateway_write_latency_seconds_bucket", (("le", "+Inf"),))] == 2
    assert found[("mh_gateway_write_latency_seconds_count", ())] == 2
    assert found[("mh_gateway_write_latency_seconds_sum", ())] == pytest.approx(0.203)
    # A counter split by a label is exported split only: no unlabelled duplicate.
    assert ("mh_gateway_dead_letters_total", ()) not in found
    assert any(name.startswith("process_") for name, _ in found)


def test_the_exposition_is_what_prometheus_client_wrote() -> None:
    """/metrics is written by health.py itself (prometheus-client cost 3.7 MB of the memory
    budget): byte for byte what prometheus-client's generate_latest wrote for the same
    figures, its process collector's metric names and its platform collector's python_info."""
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415  # only this test needs it
    from prometheus_client.metrics_core import (  # noqa: PLC0415  # only this test needs it
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.platform_collector import PlatformCollector  # noqa: PLC0415  # only this test needs it
    from prometheus_client.process_collector import ProcessCollector  # noqa: PLC0415  # only this test needs it

    from gateway.operations.endpoint import (  # noqa: PLC0415  # the parts under test
        PROMETHEUS_PREFIX,
        _process_families,
        _python_info,
        _stats_families,
        exposition,
    )
    from gateway.operations.figures import read_stats  # noqa: PLC0415  # only this test needs it

    metrics = Metrics()
    metrics.messages_received, metrics.spool_bytes = 7, 1_500_000_000  # 1.5e+09 in Go's style
    metrics.messages_by_profile['lamp "a"\\b'] += 3  # a label value to escape
    metrics.dead_letters["invalid_json"] += 2
    metrics.observe_write_latency(0.003)
    sources = Sources(metrics, ingest=IngestStats(connects=3), mqtt_connected=lambda: True)

    class Reference:  # the collector health.py had, on prometheus-client
        def collect(self) -> list[Metric]:
            stats = read_stats(sources, NOW_NS)
            split = {breakdown.name for breakdown in stats.breakdowns}
            found: list[Metric] = []
            for scalar in stats.scalars:
                if scalar.name not in split:
                    kind = CounterMetricFamily if scalar.kind == "counter" else GaugeMetricFamily
                    found.append(kind(PROMETHEUS_PREFIX + scalar.name, scalar.help, scalar.value))
            for breakdown in stats.breakdowns:
                counter = CounterMetricFamily(
                    PROMETHEUS_PREFIX + breakdown.name, breakdown.help, labels=[breakdown.label]
                )
                for key, count in sorted(breakdown.counts.items()):
                    counter.add_metric([key], count)
                found.append(counter)
            buckets = [
                ("+Inf" if bound == float("inf") else repr(bound), count)
                for bound, count in stats.write_latency
            ]
            found.append(
                HistogramMetricFamily(
                    PROMETHEUS_PREFIX + "write_latency_seconds",
                    "Duration of successful InfluxDB write requests.",
                    buckets=buckets,
                    sum_value=stats.write_latency_sum_s,
                )
            )
            found.append(
                GaugeMetricFamily(PROMETHEUS_PREFIX + "ready", "1 if /readyz says ready.", 1)
            )
            return found

    registry = CollectorRegistry()
    registry.register(Reference())
    assert exposition(_stats_families(sources, True, NOW_NS)) == generate_latest(registry)

    platform = CollectorRegistry()
    PlatformCollector(registry=platform)
    assert exposition([_python_info()]) == generate_latest(platform)

    process = CollectorRegistry()
    ProcessCollector(registry=process)

    def shape(text: bytes) -> list[str]:  # the values move between two readings
        return [line.rsplit(" ", 1)[0] for line in text.decode().splitlines()]

    assert shape(exposition(_process_families())) == shape(generate_latest(process))


async def test_every_server_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.messages_received, second.messages_received = 1, 2
    async with serving(Sources(first)) as one, serving(Sources(second)) as two:
        texts = [(await fetch(f"{base}/metrics"))[2] for base in (one, two)]
    values = [samples(text)[("mh_gateway_messages_received_total", ())] for text in texts]
    assert values == [1, 2]


async def test_stale_devices_as_json() -> None:
    liveness = LivenessTracker({"meter": 300.0}, stale_after_intervals=3)
    liveness.seen("meter", "wm-old", NOW_NS - 3600 * NS_PER_S, retained=False)
    liveness.seen("meter", "wm-older", NOW_NS - 7200 * NS_PER_S, retained=False)
    liveness.seen("meter", "wm-fresh", NOW_NS - 60 * NS_PER_S, retained=False)
    async with serving(Sources(Metrics(), liveness=liveness)) as base:
        status, body = await fetch_json(f"{base}/devices/stale")
        _, limited = await fetch_json(f"{base}/devices/stale?limit=1")
        bad_status, _, _ = await fetch(f"{base}/devices/stale?limit=x")
    assert status == 200
    assert body["count"] == 2
    assert body["tracked"] == 3
    assert [d["device_id"] for d in body["devices"]] == ["wm-older", "wm-old"]
    assert body["devices"][0] == {
        "profile_id": "meter",
        "device_id": "wm-older",
        "reason": "silent",
        "last_seen_ns": NOW_NS - 7200 * NS_PER_S,
        "silent_s": 7200.0,
        "expected_interval_s": 300.0,
    }
    assert limited["count"] == 2
    assert [d["device_id"] for d in limited["devices"]] == ["wm-older"]
    assert bad_status == 400


async def test_without_a_tracker_there_is_no_device_list() -> None:
    async with serving(Sources(Metrics())) as base:
        status, _, _ = await fetch(f"{base}/devices/stale")
        _, _, index = await fetch(f"{base}/")
    assert status == 404
    assert "/devices/stale" not in index
    assert "/readyz" in index


async def test_a_busy_port_is_a_clear_start_up_error() -> None:
    async with serving(Sources(Metrics())) as base:
        port = int(base.rsplit(":", 1)[1])
        server = HealthServer(HttpSettings(port=port), Sources(Metrics()), always_ready)
        with pytest.raises(ConfigError, match=rf"http: cannot listen on 127.0.0.1:{port}"):
            await server.start()


async def test_stop_closes_the_port() -> None:
    async with serving(Sources(Metrics())) as base:
        pass
    with pytest.raises(aiohttp.ClientConnectionError):
        await fetch(f"{base}/healthz")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
async def test_listens_on_an_ipv6_literal() -> None:
    settings = HttpSettings(listen="[::1]", port=0)  # URL-style brackets are accepted
    assert settings.listen == "::1"
    async with serving(Sources(Metrics()), listen=settings.listen) as base:
        status, _, _ = await fetch(f"{base}/healthz")
    assert status == 200


# ---- readiness rule (pure) ---------------------------------------------------------------


def test_ready_when_connected_and_influx_writable() -> None:
    assert assess_readiness(Metrics(), mqtt_connected=True, spool_usable=False) == Readiness(True)


def test_not_ready_without_the_broker_or_while_stopping() -> None:
    readiness = assess_readiness(Metrics(), mqtt_connected=False, spool_usable=True)
    assert readiness == Readiness(False, ("mqtt: not connected to the broker",))
    stopping = assess_readiness(Metrics(), mqtt_connected=True, spool_usable=True, stopping=True)
    assert stopping == Readiness(False, ("gateway: stopping",))


def test_the_spool_covers_an_influx_outage_until_it_is_full() -> None:
    metrics = Metrics(influx_writable=False, last_write_error="InfluxDB unreachable")
    assert assess_readiness(metrics, mqtt_connected=True, spool_usable=True).ok
    metrics.spool_full = True
    full = assess_readiness(metrics, mqtt_connected=True, spool_usable=True)
    assert full == Readiness(
        False, ("influxdb: writes failing (InfluxDB unreachable)", "spool: full, intake paused")
    )
    without = assess_readiness(
        Metrics(influx_writable=False), mqtt_connected=True, spool_usable=False
    )
    assert without.reasons == ("influxdb: writes failing (no detail)", "spool: not available")


@pytest.mark.parametrize("listen", ["", "bad host", "under_score.example", "[::1"])
def test_listen_must_be_an_address_or_host_name(listen: str) -> None:
    with pytest.raises(ValueError, match="IPv4/IPv6 literal or a host name"):
        HttpSettings(listen=listen)


# ---- hostile clients (the end-to-end version with a real gateway: tests/test_hostile.py) -------


async def test_connections_beyond_the_cap_are_closed_unanswered() -> None:
    server = HealthServer(HttpSettings(port=0, max_connections=2), Sources(Metrics()), always_ready)
    await server.start()
    idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
    try:
        await wait_for_async(lambda: server.open_connections == 2, 5, "two idle connections")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no answer
        writer.close()
        assert server.refused_connections == 1
        for _, idle_writer in idle:  # a slot freed: answered again
            idle_writer.close()
        await wait_for_async(lambda: not server.open_connections, 5, "idle connections closed")
        status, _, body = await fetch(f"http://127.0.0.1:{server.port}/healthz")
        assert (status, body) == (200, "ok\n")
    finally:
        await server.stop()


async def test_the_stale_list_is_bounded_and_built_at_most_once_a_second() -> None:
    clock = [NOW_NS]
    liveness = LivenessTracker({"meter": 300.0}, stale_after_intervals=3)
    for n in range(1500):
        liveness.seen("meter", f"wm-{n}", NOW_NS - (3600 + n) * NS_PER_S, retained=False)
    server = HealthServer(
        HttpSettings(port=0),
        Sources(Metrics(), liveness=liveness),
        always_ready,
        clock_ns=lambda: clock[0],
    )
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        _, everything = await fetch_json(f"{base}/devices/stale?limit=1000000")
        liveness.seen("meter", "wm-1499", NOW_NS, retained=False)  # back, within the second
        _, cached = await fetch_json(f"{base}/devices/stale?limit=10")
        clock[0] += NS_PER_S
        _, rebuilt = await fetch_json(f"{base}/devices/stale?limit=10")
    finally:
        await server.stop()
    assert everything["count"] == 1500
    assert len(everything["devices"]) == 1000  # the cap, whatever the client asks
    assert cached["devices"][0]["device_id"] == "wm-1499"
    assert rebuilt["count"] == 1499
    assert rebuilt["devices"][0]["device_id"] == "wm-1498"


# ---- /healthz and the pipeline's watchdog -------------------------------------------------------


async def test_healthz_fails_when_a_pipeline_task_died_or_a_stage_is_stuck() -> None:
    now = [0.0]
    watchdog = Watchdog(stall_after_s=30, clock_s=lambda: now[0])
    work_waits = [False]
    watchdog.stage("writer", lambda: work_waits[0])

    async def crash() -> None:
        raise RuntimeError("boom")

    async def run_for_ever() -> None:
        await asyncio.Event().wait()

    alive = asyncio.create_task(run_for_ever(), name="mqtt")
    watchdog.watch(alive)
    server = HealthServer(
        HttpSettings(port=0), Sources(Metrics()), always_ready, failing=watchdog.failing
    )
    await server.start()
    url = f"http://127.0.0.1:{server.port}/healthz"
    try:
        now[0] = 100.0  # idle for long: fine
        assert (await fetch(url))[0] == 200
        work_waits[0] = True
        assert (await fetch(url))[0] == 200  # busy from now on
        now[0] = 120.0
        watchdog.progress("writer")
        now[0] = 149.0
        assert (await fetch(url))[0] == 200
        now[0] = 151.0
        status, _, body = await fetch(url)
        assert (status, body) == (503, "writer: no progress for 31s while work waits\n")
        work_waits[0] = False
        assert (await fetch(url))[0] == 200
        died = asyncio.create_task(crash(), name="writer")
        watchdog.watch(died)
        with contextlib.suppress(RuntimeError):
            await died
        status, _, body = await fetch(url)
        assert (status, body) == (503, "task writer: died (RuntimeError: boom)\n")
        watchdog.stopping = True
        assert (await fetch(url))[0] == 200
    finally:
        alive.cancel()
        await server.stop()


def test_not_ready_while_a_store_cannot_write() -> None:
    metrics = Metrics()
    readiness = assess_readiness(
        metrics,
        mqtt_connected=True,
        spool_usable=True,
        disk_full=[None, "dead-letter store: cannot write (database or disk is full) for 3s"],
    )
    assert not readiness.ok
    assert readiness.reasons == (
        "dead-letter store: cannot write (database or disk is full) for 3s; not acknowledging,"
        " intake paused until there is space",
    )
