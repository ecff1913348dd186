"""Backpressure made visible: how often and how long intake stopped reading MQTT.

Driven through the in-process pipeline (a RecordingSink for InfluxDB, a QueueIngest for MQTT)
and read back the two ways operators see it: /metrics and the `gateway_health` point.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateway.config import GatewaySettings, HttpSettings
from gateway.model import FieldValue, Message
from gateway.operations.endpoint import HealthServer, Readiness
from gateway.operations.figures import health_lines
from gateway.pipeline import Gateway
from gateway.policies.liveness import NS_PER_S
from gateway.profiles.registry import load_directory
from gateway.stages.deadletter import DeadLetterStore
from gateway.stages.sinks.recording import RecordingSink
from tests.fakes import LIGHT_TOPIC, QueueIngest, light, run_and_drain
from tests.test_health import fetch, samples
from tests.test_selfmetrics import health_fields, parse_line
from tests.waits import wait_for_async

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"
MAX_POINTS = 3


def pipeline(tmp_path: Path) -> tuple[Gateway, QueueIngest]:
    settings = GatewaySettings(
        batch={"max_points": MAX_POINTS, "max_age_s": 0.05}, spool={"dir": str(tmp_path)}
    )
    ingest = QueueIngest()
    instance = Gateway(
        settings,
        load_directory(PROFILES),
        sink=RecordingSink(),
        dead_letters=DeadLetterStore(tmp_path / "dl.sqlite3"),
        ingest=ingest,
    )
    return instance, ingest


def health_at(instance: Gateway, now_ns: int) -> dict[str, FieldValue]:
    lines = health_lines(instance.sources, instance="edge-01", now_ns=now_ns)
    return health_fields([parse_line(line) for line in lines])


def fill_past_max_pending(instance: Gateway, batches: int, first: int = 0) -> None:
    """Messages for `batches` full batches, fed before the writer runs: max_pending of them
    wait for it and intake pauses."""
    for n in range(first, first + batches * MAX_POINTS):
        instance.on_message(Message(LIGHT_TOPIC, light(n), 1_000, False, n))


async def test_a_pause_is_counted_once_and_timed_until_the_writer_resumes_intake(
    tmp_path: Path,
) -> None:
    instance, ingest = pipeline(tmp_path)
    metrics = instance.metrics
    max_pending = instance.settings.batch.max_pending
    fill_past_max_pending(instance, batches=3 * max_pending)  # sealed batches keep coming
    assert ingest.paused
    assert metrics.intake_pauses == 1  # one pause, however many batches were sealed in it
    stop = asyncio.Event()
    running = asyncio.create_task(instance.run(stop))
    try:
        await wait_for_async(lambda: not ingest.paused, 10, "the writer to resume intake")
        assert metrics.intake_pauses == 1
        assert metrics.intake_paused_since_ns == 0  # the resume ended the pause
        first_pause_s = metrics.intake_paused_s
        assert first_pause_s > 0

        fill_past_max_pending(instance, batches=max_pending, first=10_000)
        assert ingest.paused
        assert metrics.intake_pauses == 2
        await wait_for_async(lambda: not ingest.paused, 10, "the writer to resume intake again")
        assert metrics.intake_pauses == 2
        assert metrics.intake_paused_s > first_pause_s
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)


async def test_the_pause_figures_reach_metrics_and_gateway_health(tmp_path: Path) -> None:
    instance, ingest = pipeline(tmp_path)
    fill_past_max_pending(instance, batches=instance.settings.batch.max_pending)
    assert ingest.paused
    # The pause under way counts too: a gateway stuck paused shows its time growing.
    before = health_at(instance, now_ns=0)  # a clock before the pause began: nothing yet
    later = health_at(instance, now_ns=time.time_ns() + 5 * NS_PER_S)
    assert before["intake_pauses"] == later["intake_pauses"] == 1
    assert before["intake_paused_seconds"] == 0.0
    assert isinstance(later["intake_paused_seconds"], float)
    assert later["intake_paused_seconds"] >= 5.0

    await run_and_drain(instance, until=lambda: not ingest.paused)
    server = HealthServer(
        HttpSettings(listen="127.0.0.1", port=0), instance.sources, lambda: Readiness(True)
    )
    await server.start()
    try:
        _, _, text = await fetch(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        await server.stop()
    found = samples(text)
    assert found[("mh_gateway_intake_pauses_total", ())] == 1
    assert found[("mh_gateway_intake_paused_seconds_total", ())] > 0
