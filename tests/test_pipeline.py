"""The pipeline's own rules, with real in-process implementations of its interfaces.

A RecordingSink stands in for InfluxDB and a QueueIngest for MQTT; the end-to-end tests run the
same code against the real servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import GatewaySettings
from gateway.errors import SinkError
from gateway.model import Message
from gateway.pipeline import Gateway
from gateway.profiles.registry import load_directory
from gateway.stages.deadletter import DeadLetterStore
from gateway.stages.sinks.recording import RecordingSink
from tests.fakes import LIGHT_TOPIC, QueueIngest, light, run_and_drain

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"


def message(topic: str, payload: bytes, token: int) -> Message:
    return Message(topic, payload, 1_000, False, token)


@pytest.fixture
async def gateway(tmp_path: Path) -> tuple[Gateway, RecordingSink, QueueIngest]:
    settings = GatewaySettings(
        batch={"max_points": 3, "max_age_s": 0.05}, spool={"dir": str(tmp_path)}
    )
    sink, ingest = RecordingSink(), QueueIngest()
    instance = Gateway(
        settings,
        load_directory(PROFILES),
        sink=sink,
        dead_letters=DeadLetterStore(tmp_path / "dl.sqlite3"),
        ingest=ingest,
    )
    return instance, sink, ingest


async def test_acks_follow_the_write_in_order(
    gateway: tuple[Gateway, RecordingSink, QueueIngest],
) -> None:
    instance, sink, ingest = gateway
    for n in range(7):
        instance.on_message(message(LIGHT_TOPIC, light(n), token=n))
    assert ingest.acked == []  # nothing is acknowledged before InfluxDB accepted it
    await run_and_drain(instance)
    assert len(sink.lines) == 7
    assert ingest.acked == list(range(7))
    assert [len(lines) for _, _, lines in sink.writes] == [3, 3, 1]  # size, then age


async def test_bad_messages_are_dead_lettered_and_acknowledged(
    gateway: tuple[Gateway, RecordingSink, QueueIngest],
) -> None:
    instance, sink, ingest = gateway
    instance.on_message(message(LIGHT_TOPIC, b"not json", token=1))
    instance.on_message(message("city/lighting/nowhere", light(0), token=2))
    instance.on_message(message(LIGHT_TOPIC, light(1), token=3))
    await run_and_drain(instance)
    assert ingest.acked == [1, 2, 3]
    assert len(sink.lines) == 1
    assert instance.metrics.dead_letters == {"invalid_json": 1, "unknown_topic": 1}
    store = DeadLetterStore(instance.dead_letters.path)
    assert store.counts_by_reason() == {"invalid_json": 1, "unknown_topic": 1}
    [(_, newest), *_] = store.latest()
    assert newest.topic == "city/lighting/nowhere"
    store.close()


async def test_retryable_failures_keep_the_data_and_the_ack(
    gateway: tuple[Gateway, RecordingSink, QueueIngest],
) -> None:
    instance, sink, ingest = gateway
    sink.failures = [
        SinkError("down", retryable=True, retry_after_s=0.01, status=503),
        SinkError("busy", retryable=True, retry_after_s=0.01, status=429),
    ]
    instance.on_message(message(LIGHT_TOPIC, light(0), token=1))
    await run_and_drain(instance)
    assert len(sink.lines) == 1
    assert ingest.acked == [1]
    assert instance.metrics.write_retries == 2


async def test_a_line_influx_refuses_is_isolated_and_dead_lettered(
    gateway: tuple[Gateway, RecordingSink, QueueIngest],
) -> None:
    instance, _, ingest = gateway

    class RefusesOneLine(RecordingSink):
        async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
            if any("energy_kwh=11.0" in line for line in lines):
                raise SinkError("field type conflict", retryable=False, status=400)
            await super().write(lines, database, rp)

    refusing = RefusesOneLine()
    instance.sink = instance.delivery.sink = refusing
    for n in range(3):
        instance.on_message(message(LIGHT_TOPIC, light(n), token=n))
    await run_and_drain(instance)
    assert len(refusing.lines) == 2  # the two good lines of the batch were still written
    assert ingest.acked == [0, 1, 2]
    assert instance.metrics.lines_rejected == 1
    store = DeadLetterStore(instance.dead_letters.path)
    assert store.counts_by_reason() == {"rejected_by_influx": 1}
    store.close()


async def test_intake_pauses_when_the_writer_falls_behind(
    gateway: tuple[Gateway, RecordingSink, QueueIngest],
) -> None:
    instance, _, ingest = gateway
    for n in range(3 * instance.settings.batch.max_pending):
        instance.on_message(message(LIGHT_TOPIC, light(n), token=n))
    assert ingest.paused
    await run_and_drain(instance)
    assert len(ingest.acked) == 3 * instance.settings.batch.max_pending


async def test_dead_letters_evicted_to_stay_within_bounds_are_counted(tmp_path: Path) -> None:
    settings = GatewaySettings(batch={"max_age_s": 0.05}, spool={"dir": str(tmp_path)})
    store = DeadLetterStore(tmp_path / "dl.sqlite3", max_records=10)
    instance = Gateway(
        settings, load_directory(PROFILES), sink=RecordingSink(), dead_letters=store,
        ingest=QueueIngest(),
    )  # fmt: skip
    for token in range(1, 26):
        instance.on_message(message(LIGHT_TOPIC, b"{not json", token))
    await run_and_drain(instance)
    assert instance.metrics.dead_letters == {"invalid_json": 25}
    assert instance.metrics.dead_letters_evicted == 15
    assert DeadLetterStore(tmp_path / "dl.sqlite3").count() == 10
