"""2,000 messages whose topic has a 60 KB level: each a dead letter `topic_too_long`, and the
gateway's memory stays within RSS_GROWTH_BOUND (real processes; see tests/test_hostile.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import GatewayProcess, gateway_config
from tests.hostile_clients import GOOD_TOPIC, publish, streetlight
from tests.servers import Influxd, Mosquitto
from tests.test_hostile import flood_of_dead_letters, note, stored
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
        publish(mosquitto.port, [(GOOD_TOPIC, streetlight(first_ms, 0))])
        wait_for(lambda: stored(influxd, influx_db) == 1, 30, "the first reading stored")
        messages = [
            (f"city/lighting/di-su/{n:05d}{'x' * LONG_LEVEL}/telemetry", streetlight(first_ms, n))
            for n in range(LONG_TOPICS)
        ]
        flood = flood_of_dead_letters(
            gateway, mosquitto, messages, count=LONG_TOPICS, reason="topic_too_long", timeout_s=120
        )
    note(scenario_results, f"{LONG_TOPICS} topics with {LONG_LEVEL} B levels: {flood.figures}")
    assert flood.letters == LONG_TOPICS
    assert flood.rss_growth < RSS_GROWTH_BOUND
