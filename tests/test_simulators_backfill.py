"""`python -m simulators backfill`: days of history, every kind, within the gateway's limits."""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from pathlib import Path

import aiomqtt
import orjson
import pytest

from simulators.cli import main
from simulators.clock import parse_start
from simulators.devices import KINDS
from simulators.fleet import DAY_S, build_fleet
from simulators.runner import DeviceRateGuard
from simulators.truth import decode_reading

NOW_MS = parse_start("2026-11-24T12:00:00+07:00")


def test_every_device_covers_the_span_and_ends_before_now() -> None:
    fleet = build_fleet(
        dict.fromkeys(KINDS, 2), seed=1, total_messages=10**9, start_ms=None, now_ms=NOW_MS,
        span_s=DAY_S,
    )  # fmt: skip
    first: dict[str, int] = {}
    last: dict[str, int] = defaultdict(int)
    for message in fleet.messages():
        for reading in message.readings:
            first.setdefault(reading.device_id, reading.time_ns)
            last[reading.device_id] = max(last[reading.device_id], reading.time_ns)
    assert len(first) == 2 * len(KINDS)
    now_ns = NOW_MS * 1_000_000
    for device_id, start_ns in first.items():
        # A day back from now (within an interval; a radar's first batch holds the minute
        # before its first report) ...
        earliest_ns = now_ns - (DAY_S + 60) * 10**9
        assert earliest_ns <= start_ns <= now_ns - (DAY_S - 3600) * 10**9, device_id
        # ... up to the last interval before now.
        assert now_ns - 3600 * 10**9 < last[device_id] <= now_ns + 10**9, device_id


def test_reports_beyond_the_burst_leave_at_the_device_rate() -> None:
    clock = [100.0]
    guard = DeviceRateGuard(rate_per_s=20.0, burst=100, now=lambda: clock[0])
    assert guard.delay_s(0) == guard.delay_s(99) == 0.0
    assert guard.delay_s(100) == 0.0
    assert guard.delay_s(140) == pytest.approx(2.0)
    clock[0] = 101.5
    assert guard.delay_s(140) == pytest.approx(0.5)
    assert DeviceRateGuard(0.0, 0, lambda: 0.0).delay_s(10**6) == 0.0


@pytest.mark.parametrize("days", ["0", "-1", "29.5", "many"])
def test_backfill_refuses_impossible_spans(days: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["backfill", "--days", days])
    assert "argument --days" in capsys.readouterr().err


@pytest.mark.integration
async def test_backfill_publishes_every_report_of_every_kind(tmp_path: Path) -> None:
    from tests.servers import Mosquitto  # noqa: PLC0415  # only the integration test needs it

    truth, summary = tmp_path / "truth.jsonl", tmp_path / "summary.json"
    received: list[bytes] = []
    with Mosquitto(tmp_path / "broker") as broker:
        async with (
            asyncio.timeout(60),
            aiomqtt.Client(broker.host, broker.port) as subscriber,
        ):
            for root in ("city/#", "v3/#", "application/#"):
                await subscriber.subscribe(root, qos=1)
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "simulators", "backfill", "--days", "0.25",
                "--broker", broker.address, "--seed", "3", "--quiet",
                "--truth", str(truth), "--summary-json", str(summary),
            )  # fmt: skip
            assert await process.wait() == 0
            expected = orjson.loads(summary.read_bytes())["messages"]
            async for message in subscriber.messages:
                assert isinstance(message.payload, bytes)
                received.append(message.payload)
                if len(received) == expected:
                    break
    readings = [decode_reading(line) for line in truth.read_bytes().splitlines()]
    # Two devices of each kind, each reporting every interval of six hours; an event-driven
    # device (a vehicle per message) as often as vehicles came, stopping at now.
    periodic = [kind for kind in KINDS.values() if not kind.event_driven]
    events = sum(r.measurement not in {k.measurement for k in periodic} for r in readings)
    assert expected - events == sum(2 * (6 * 3600 // kind.interval_s) for kind in periodic)
    assert {r.measurement for r in readings} == {kind.measurement for kind in KINDS.values()}
