"""A flooding device's refusals must not make the pipeline write more often (issue 18, fairness).

Every batch the pipeline seals is a write to InfluxDB and the SQLite stores, and intake pauses
when batch.max_pending of them wait: a flood that seals batches delays every other device's
readings. Timing is measured by `python -m benchmarks.fairness`; these tests check the
behaviour that makes it fast.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config import GatewaySettings
from gateway.model import Message
from gateway.pipeline import Gateway
from gateway.profiles.registry import load_directory
from tests.fakes import LIGHT_TOPIC, QueueIngest, SwitchableSink, light, run_and_drain

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"
OTHER_LIGHT = "city/lighting/di-su/sl-0002/telemetry"
S = 1_000_000_000


def flooded_gateway(tmp_path: Path) -> Gateway:
    """Batches of 10; a device may send 2 messages at once and keep 2 refusals."""
    return Gateway(
        GatewaySettings(
            batch={"max_points": 10, "max_age_s": 60.0},
            spool={"dir": str(tmp_path)},
            limits={"device_rate_per_s": 1.0, "device_burst": 2},
        ),
        load_directory(PROFILES),
        sink=SwitchableSink(),
        ingest=QueueIngest(),
    )


async def test_a_qos0_flood_past_its_share_seals_no_batch(tmp_path: Path) -> None:
    instance = flooded_gateway(tmp_path)
    for n in range(200):  # QoS 0: no acknowledgement token
        instance.on_message(Message(LIGHT_TOPIC, light(n), n * 1000))
    instance.on_message(Message(OTHER_LIGHT, light(0), 200 * 1000))
    await run_and_drain(instance)
    assert instance.metrics.refusals_not_kept == 196
    assert instance.metrics.dead_letters == {"rate_limited": 2}
    # 3 points and 2 dead letters, one batch: the 196 refusals needed nothing written.
    assert instance.metrics.batches_written == 1
    assert instance.metrics.points_written["lighting"] == 3


async def test_a_qos1_flood_past_its_share_is_acknowledged_in_order(tmp_path: Path) -> None:
    instance = flooded_gateway(tmp_path)
    for n in range(50):
        instance.on_message(Message(LIGHT_TOPIC, light(n), n * 1000, False, n))
    instance.on_message(Message(OTHER_LIGHT, light(0), 50 * 1000, False, 50))
    await run_and_drain(instance)
    assert instance.metrics.refusals_not_kept == 46
    assert isinstance(instance.ingest, QueueIngest)
    assert instance.ingest.acked == list(range(51))  # PUBACKs in the order of receipt
