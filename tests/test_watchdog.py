"""The pipeline's watchdog (gateway/operations/watchdog.py) on a fake clock: /healthz fails when
intake leaves the broker's bytes unread while nothing holds it back, and not while intake waits
for a known reason (the writer behind, InfluxDB down, a full disk or dead-letter store).

The last test reads a real socket: mosquitto's bytes queued for a paused connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import GatewaySettings
from gateway.model import Message
from gateway.operations.watchdog import Watchdog
from gateway.pipeline import Gateway
from gateway.profiles.registry import load_directory
from gateway.stages.sinks.recording import RecordingSink
from tests.fakes import LIGHT_TOPIC, QueueIngest, light
from tests.hostile_clients import GOOD_TOPIC, publish, streetlight
from tests.servers import Influxd, Mosquitto
from tests.waits import wait_for_async

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"
STUCK = "intake: no progress for 61s while work waits"


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_a_stage_with_a_progress_mark_stalls_only_while_the_mark_stands_still() -> None:
    clock, reads, waiting = FakeClock(), [0], [False]
    watchdog = Watchdog(stall_after_s=60, clock_s=clock)
    watchdog.stage("intake", lambda: waiting[0], lambda: reads[0])
    clock.now_s = 500.0
    assert watchdog.failing() == []  # idle for long: fine
    waiting[0] = True
    assert watchdog.failing() == []  # work waits from now on
    clock.now_s = 530.0
    reads[0] += 1  # progress, seen when the watchdog looks
    assert watchdog.failing() == []
    clock.now_s = 591.0
    assert watchdog.failing() == [STUCK]
    reads[0] += 1
    assert watchdog.failing() == []


def gateway_on_a_fake_clock(
    tmp_path: Path, ingest: QueueIngest, clock: FakeClock, **batch: float
) -> Gateway:
    settings = GatewaySettings(batch=batch, spool={"dir": str(tmp_path)})
    return Gateway(
        settings,
        load_directory(PROFILES),
        sink=RecordingSink(),
        ingest=ingest,
        watchdog=Watchdog(stall_after_s=60, clock_s=clock),
    )


async def test_intake_leaving_the_brokers_bytes_unread_fails_healthz(tmp_path: Path) -> None:
    clock, ingest = FakeClock(), QueueIngest()
    watchdog = gateway_on_a_fake_clock(tmp_path, ingest, clock).watchdog
    clock.now_s = 100.0
    assert watchdog.failing() == []
    ingest.unread_bytes = 4096  # the broker sent, nothing reads, nothing holds intake back
    assert watchdog.failing() == []
    clock.now_s = 161.0
    assert watchdog.failing() == [STUCK]
    ingest.stats.bytes_read += 4096  # reading again
    assert watchdog.failing() == []
    clock.now_s = 200.0
    assert watchdog.failing() == []


async def test_intake_held_back_by_a_writer_waiting_for_influxdb_is_not_stuck(
    tmp_path: Path,
) -> None:
    clock, ingest = FakeClock(), QueueIngest()
    gateway = gateway_on_a_fake_clock(tmp_path, ingest, clock, max_points=1, max_pending=2)
    for n in range(2):
        gateway.on_message(Message(LIGHT_TOPIC, light(n), 1_000, False, n + 1))
    assert ingest.paused  # max_pending batches wait for the writer
    ingest.unread_bytes = 4096  # the broker keeps sending: it waits in the socket
    gateway.metrics.influx_writable = False  # what the writer records when InfluxDB is down
    assert gateway.watchdog.failing() == []
    clock.now_s = 1000.0
    assert gateway.watchdog.failing() == []  # /readyz says why, a restart would not help
    gateway.metrics.influx_writable = True  # InfluxDB is back, yet the writer does not move
    assert gateway.watchdog.failing() == []
    clock.now_s = 1061.0
    assert gateway.watchdog.failing() == ["writer: no progress for 61s while work waits"]


async def test_unread_bytes_are_what_mosquitto_queued_on_a_connection_not_read(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    """A real gateway on a real socket: the test stops reading behind the pipeline's back (a
    stall nobody reports); the watchdog notices, and reading again clears it."""
    settings = GatewaySettings(
        mqtt={"port": mosquitto.port, "client_id": "watchdog-test"},
        influx={"url": influxd.url, "database": influx_db},
        batch={"max_age_s": 0.05},
        spool={"dir": str(tmp_path)},
        profiles={"dir": str(PROFILES), "reload_interval_s": 0},
        http={"enabled": False},
        monitoring={"enabled": False},
    )
    clock = FakeClock()
    gateway = Gateway(
        settings, load_directory(PROFILES), watchdog=Watchdog(stall_after_s=60, clock_s=clock)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(gateway.run(stop))
    try:
        await wait_for_async(lambda: gateway.ingest.connected, 10, "connected to mosquitto")
        gateway.ingest.pause()
        readings = [(GOOD_TOPIC, streetlight(1_795_482_000_000, n)) for n in range(200)]
        await asyncio.to_thread(publish, mosquitto.port, readings)
        await wait_for_async(lambda: gateway.ingest.unread_bytes > 0, 10, "bytes in the socket")
        assert gateway.watchdog.failing() == []
        clock.now_s = 61.0
        assert gateway.watchdog.failing() == [STUCK]
        gateway.ingest.resume()
        await wait_for_async(lambda: gateway.metrics.messages_acked == 200, 30, "all acked")
        assert gateway.ingest.unread_bytes == 0
        assert gateway.watchdog.failing() == []
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
