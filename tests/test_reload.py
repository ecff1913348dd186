"""Hot reload of the profiles directory, in process (the end-to-end version streams via MQTT)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.model import Message
from gateway.pipeline import Gateway
from tests.fakes import (
    LEVEL_PROFILE,
    LEVEL_TOPIC,
    LIGHT_TOPIC,
    let_the_profile_watcher_start,
    light,
)
from tests.reloading import reloading_gateway
from tests.waits import wait_for_async


async def settle(instance: Gateway, reloads: int) -> None:
    metrics = instance.metrics
    await wait_for_async(
        lambda: metrics.profile_reloads + metrics.profile_reloads_failed >= reloads,
        5,
        f"reload number {reloads} of the profiles directory",
    )


async def test_profiles_are_added_refused_and_removed_without_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway")
    async with reloading_gateway(tmp_path, stop_timeout_s=5) as running:
        instance, profiles, ingest = running.gateway, running.profiles, running.ingest
        await let_the_profile_watcher_start()

        instance.on_message(Message(LEVEL_TOPIC, b"1.5", 1_000, False, 1))  # no profile yet
        (profiles / "water" / "level.yaml").write_text(LEVEL_PROFILE)
        await settle(instance, 1)
        assert ingest.topics is not None
        assert "test/level/+" in ingest.topics
        instance.on_message(Message(LEVEL_TOPIC, b"2.5", 2_000, False, 2))

        (profiles / "water" / "level.yaml").write_text(
            LEVEL_PROFILE.replace("type: float", "type: x")
        )
        await settle(instance, 2)
        assert instance.metrics.profile_reloads_failed == 1
        assert "profiles not reloaded, the previous ones stay active" in caplog.text
        instance.on_message(Message(LEVEL_TOPIC, b"3.5", 3_000, False, 3))  # old version still on

        (profiles / "water" / "level.yaml").unlink()
        await settle(instance, 3)
        assert "test/level/+" not in (ingest.topics or [])
        instance.on_message(Message(LEVEL_TOPIC, b"4.5", 4_000, False, 4))
        instance.on_message(Message(LIGHT_TOPIC, light(0), 5_000, False, 5))
    # Leaving the block stopped the gateway; the stop drains: both messages were handled.
    assert [line for line in running.sink.lines if line.startswith("tank_level")] == [
        "tank_level,device_id=tank-1 level_m=2.5 2000",
        "tank_level,device_id=tank-1 level_m=3.5 3000",
    ]
    assert instance.metrics.dead_letters["unknown_topic"] == 2
    assert ingest.acked == [1, 2, 3, 4, 5]
    assert "active; added ['test-level-raw'], changed none, removed none" in caplog.text
    assert "added none, changed none, removed ['test-level-raw']" in caplog.text
