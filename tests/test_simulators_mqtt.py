"""The simulator CLI against a real, private mosquitto: every message arrives, as generated."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiomqtt
import orjson
import pytest

from simulators.clock import parse_start
from simulators.fleet import build_fleet
from simulators.truth import decode_reading
from tests.servers import Mosquitto

pytestmark = pytest.mark.integration

START = "2026-11-23T00:00:00+07:00"
DEVICES = {"lighting": 5, "water": 5, "traffic": 5}
MESSAGES = 2000
# A deadline, not a sleep: a loaded machine only makes this slower.
DEADLINE_S = 60.0


async def run_simulator(broker: Mosquitto, truth: Path, summary: Path) -> int:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators", "run", "--broker", broker.address,
        "--lighting", "5", "--water", "5", "--traffic", "5", "--messages", str(MESSAGES),
        "--rate", "0", "--seed", "1", "--start", START, "--qos", "1", "--quiet",
        "--truth", str(truth), "--summary-json", str(summary),
    )  # fmt: skip
    return await process.wait()


async def test_every_message_reaches_a_subscriber(mosquitto: Mosquitto, tmp_path: Path) -> None:
    fleet = build_fleet(
        DEVICES, seed=1, total_messages=MESSAGES, start_ms=parse_start(START), now_ms=0
    )
    expected = list(fleet.messages())
    received: list[tuple[str, bytes]] = []
    async with (
        asyncio.timeout(DEADLINE_S),
        aiomqtt.Client(mosquitto.host, mosquitto.port) as subscriber,
    ):
        await subscriber.subscribe("city/#", qos=1)
        simulator = asyncio.create_task(
            run_simulator(mosquitto, tmp_path / "truth.jsonl", tmp_path / "summary.json")
        )
        async for message in subscriber.messages:
            assert isinstance(message.payload, bytes)
            received.append((str(message.topic), message.payload))
            if len(received) == len(expected):
                break
        assert await simulator == 0

    assert sorted(received) == sorted((m.topic, m.payload) for m in expected)
    truth = (tmp_path / "truth.jsonl").read_bytes().splitlines()
    assert [decode_reading(line) for line in truth] == [r for m in expected for r in m.readings]
    summary = orjson.loads((tmp_path / "summary.json").read_bytes())
    assert summary["messages"] == MESSAGES
    assert summary["readings"] == len(truth)
    assert sum(summary["per_measurement"].values()) == len(truth)
