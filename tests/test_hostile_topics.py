"""2,000 messages whose topic has a 60 KB level: each a dead letter `topic_too_long`, and the
gateway's memory stays within RSS_GROWTH_BOUND (real processes; see tests/test_hostile.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import GatewayProcess, gateway_config
from tests.hostile_clients import GOOD_TOPIC, publish, rss_bytes, streetlight
from tests.servers import Influxd, Mosquitto
from tests.test_hostile import dead_letters, note, stored
from tests.waits import wait_for

pytestmark = pytest.mark.integration

LONG_TOPICS = 2000
LONG_LEVEL = 60_000
RSS_GROWTH_BOUND = 64 * 1024**2  # documented in docs/operations.md (Hostile conditions)


def test_huge_topics_are_refused_and_memory_stays_bounded(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str, scenario_results: Path
) -> None:
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    first_ms = int(time.time() * 1000) - LONG_TOPICS * 1000
    with GatewayProcess(config) as gateway:
        assert gateway.process is not None
        publish(mosquitto.port, [(GOOD_TOPIC, streetlight(first_ms, 0))])
        wait_for(lambda: stored(influxd, influx_db) == 1, 30, "the first reading stored")
        before = rss_bytes(gateway.process.pid)
        messages = [
            (f"city/lighting/di-su/{n:05d}{'x' * LONG_LEVEL}/telemetry", streetlight(first_ms, n))
            for n in range(LONG_TOPICS)
        ]
        publish(mosquitto.port, messages)
        wait_for(
            lambda: gateway.metric("dead_letters_total", reason="topic_too_long") >= LONG_TOPICS,
            120,
            "every huge topic dead-lettered",
        )
        after = rss_bytes(gateway.process.pid)
        assert gateway.stop() == 0
    letters = dead_letters(tmp_path / "state", "topic_too_long")
    note(
        scenario_results,
        f"{LONG_TOPICS} topics with {LONG_LEVEL} B levels: topic_too_long={letters} "
        f"rss {before / 2**20:.0f} -> {after / 2**20:.0f} MB",
    )
    assert letters == LONG_TOPICS
    assert after - before < RSS_GROWTH_BOUND
