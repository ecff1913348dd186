"""Real in-process implementations of the pipeline's interfaces, shared by the unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import orjson

from gateway.errors import SinkError
from gateway.stages.ingest import IngestStats
from gateway.stages.sinks.recording import RecordingSink
from tests.waits import wait_for_async

if TYPE_CHECKING:
    from gateway.pipeline import Gateway

LIGHT_TOPIC = "city/lighting/di-su/sl-0001/telemetry"


class QueueIngest:
    """An Ingest that delivers what the test feeds it and records acknowledgements."""

    def __init__(self) -> None:
        self.acked: list[object] = []
        self.paused = False
        self.topics: list[str] | None = None  # set by a profile reload
        self.stats = IngestStats()
        self.unread_bytes = 0  # what the broker sent that was not read: set by a test
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await self._stop.wait()

    def ack(self, tokens: Iterable[object]) -> None:
        self.acked.extend(token for token in tokens if token is not None)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    @property
    def connected(self) -> bool:
        return True

    def set_topics(self, topics: list[str]) -> None:
        self.topics = list(topics)

    async def stop(self) -> None:
        self._stop.set()


class SwitchableSink(RecordingSink):
    """Fails every write while `down` is set, like an InfluxDB that is stopped."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.attempts = 0

    async def write(self, lines: list[str], database: str | None, rp: str | None) -> None:
        self.attempts += 1
        if self.down:
            raise SinkError("InfluxDB unreachable: refused", retryable=True)
        await super().write(lines, database, rp)


def light(n: int) -> bytes:
    """The n-th report of a JSON streetlight (mh-streetlight-json), one minute apart."""
    return orjson.dumps(
        {
            "ts": 1795482000000 + n * 60_000,
            "lamp": {"state": "ON", "dim": 100, "fault": 0},
            "elec": {"p_w": 150.0, "v": 230.0, "i_a": 0.65, "e_kwh": 10.0 + n},
        }
    )


LEVEL_TOPIC = "test/level/tank-1"
LEVEL_PROFILE = """
id: test-level-raw
version: 1
domain: water
match:
  topic: test/level/{device_id}
decode:
  format: raw
  value_type: number
time:
  source: receive
output:
  measurement: tank_level
tags:
  device_id: {topic: device_id}
fields:
  level_m: {path: value, type: float}
"""
"""A tank level sensor that sends a bare number and no timestamp: stamped at receive time."""


async def run_and_drain(
    gateway: Gateway, until: Callable[[], bool] | None = None, timeout_s: float = 10.0
) -> None:
    """Run the pipeline until `until()` holds (no wait without one), then stop it the way
    SIGTERM does. The stop drains: every message fed before it is written (or dead-lettered)
    and acknowledged when this returns, so tests need not wait any time for the outcome."""
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        if until is not None:
            await wait_for_async(until, timeout_s, "the condition to stop the pipeline on")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout_s)


async def let_the_profile_watcher_start() -> None:
    """Nothing to wait for any more: the pipeline's profile watcher takes its first look at the
    directory when the Gateway is built, so every edit after that is a change. Kept so the
    tests read in the order things happen; it only yields to the loop once."""
    await asyncio.sleep(0)
