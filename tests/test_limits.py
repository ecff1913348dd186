"""Per-device limits: payload size, readings per message, rate; and the log throttle."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import orjson

from gateway.config import GatewaySettings
from gateway.model import Message
from gateway.operations.logs import LogThrottle
from gateway.pipeline import Gateway
from gateway.policies.rate_limit import DeviceRateLimit
from gateway.profiles.registry import load_directory
from gateway.stages.deadletter import DeadLetterStore
from tests.fakes import (
    LEVEL_PROFILE,
    LIGHT_TOPIC,
    QueueIngest,
    SwitchableSink,
    light,
    run_and_drain,
)

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"
OTHER_LIGHT = "city/lighting/di-su/sl-0002/telemetry"
LOOP_TOPIC = "city/traffic/di-su/tc-0001/counts"
S = 1_000_000_000


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    limit = DeviceRateLimit(rate_per_s=2.0, burst=3)
    assert [limit.allow("a", 0) for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b", 0)  # another device has its own bucket
    assert limit.allow("a", S // 2)  # half a second refills one token at 2/s
    assert not limit.allow("a", S // 2)
    assert [limit.allow("a", 100 * S) for _ in range(4)] == [True, True, True, False]  # capped


def test_the_buckets_decide_as_exact_arithmetic_does() -> None:
    """One float per topic (the time its bucket would be empty) must decide like a bucket of
    [tokens, last refill] computed exactly, at epoch-sized nanosecond times."""
    rng = random.Random(3)
    for rate, burst in [(0.5, 1), (2.0, 3), (20.0, 5), (100.0, 50)]:
        limit = DeviceRateLimit(rate, burst)
        exact: dict[str, list[Fraction]] = {}  # topic -> [tokens, last refill ns]
        now = 1_795_000_000 * S + rng.randrange(S)
        for _ in range(3000):
            now += rng.choice([0, 1000, 10**6, 10**7, 10**8, S // 2, S]) + rng.randrange(1000)
            topic = rng.choice("abc")
            tokens, last = exact.get(topic, [Fraction(burst), Fraction(now)])
            tokens = min(Fraction(burst), tokens + (now - last) * Fraction(rate) / S)
            allowed = tokens >= 1
            exact[topic] = [tokens - 1 if allowed else tokens, Fraction(now)]
            assert limit.allow(topic, now) is allowed


def test_the_log_throttle_reports_what_it_held_back() -> None:
    throttle = LogThrottle(interval_s=1.0)
    assert throttle.allow("bad_json", 0) == 0
    assert throttle.allow("bad_json", 1) is None
    assert throttle.allow("bad_json", 2) is None
    assert throttle.allow("other", 3) == 0
    assert throttle.allow("bad_json", S) == 2


async def run(settings: dict[str, object], tmp_path: Path, messages: list[Message]) -> Gateway:
    instance = Gateway(
        GatewaySettings(
            batch={"max_points": 1000, "max_age_s": 0.05},
            spool={"dir": str(tmp_path)},
            limits=settings,
        ),
        load_directory(PROFILES),
        sink=SwitchableSink(),
        ingest=QueueIngest(),
    )
    for message in messages:
        instance.on_message(message)
    await run_and_drain(instance)
    return instance


async def test_an_oversized_payload_is_kept_cut_to_the_limit(tmp_path: Path) -> None:
    huge = light(0) + b" " * 1000
    instance = await run({"max_payload_bytes": 500}, tmp_path, [Message(LIGHT_TOPIC, huge, 1)])
    assert instance.metrics.dead_letters == {"payload_too_large": 1}
    store = DeadLetterStore(tmp_path / "deadletter.sqlite3")
    [(_, letter)] = store.latest()
    store.close()
    assert letter.payload == huge[:500]
    assert letter.detail.startswith(f"{len(huge)} bytes, limit 500")


async def test_too_many_readings_in_one_message_is_a_dead_letter(tmp_path: Path) -> None:
    lanes = [{"lane": n, "count": 1, "occ": 1.0, "speed_kmh": 40.0} for n in range(5)]
    payload = orjson.dumps({"t": 1795482000, "period_s": 60, "lanes": lanes})
    instance = await run(
        {"max_readings_per_message": 4}, tmp_path, [Message(LOOP_TOPIC, payload, 1)]
    )
    assert instance.metrics.dead_letters == {"too_many_readings": 1}


async def test_a_flooding_device_is_limited_and_the_others_are_not(tmp_path: Path) -> None:
    flood = [Message(LIGHT_TOPIC, light(n), n * 1000, False, n) for n in range(50)]
    normal = [Message(OTHER_LIGHT, light(n), n * S, False, 100 + n) for n in range(5)]
    instance = await run({"device_rate_per_s": 1.0, "device_burst": 10}, tmp_path, flood + normal)
    # Of the 40 refused, the device's share of the dead-letter store (its bucket, 10) is kept;
    # the rest is acknowledged and counted (gateway/policies/rate_limit.py keep_refused).
    assert instance.metrics.dead_letters == {"rate_limited": 10}
    assert instance.metrics.refusals_not_kept == 30
    assert instance.metrics.points_written["lighting"] == 15
    sink = instance.sink
    assert isinstance(sink, SwitchableSink)
    assert sum("sl-0002" in line for line in sink.lines) == 5
    assert isinstance(instance.ingest, QueueIngest)
    assert len(instance.ingest.acked) == 55  # dead letters are durable too: all acknowledged


async def test_series_beyond_a_profiles_budget_become_dead_letters(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    budget = "  measurement: tank_level\n  max_series: 2\n"
    budgeted = LEVEL_PROFILE.replace("  measurement: tank_level\n", budget)
    (profiles / "level.yaml").write_text(budgeted)
    instance = Gateway(
        GatewaySettings(batch={"max_age_s": 0.05}, spool={"dir": str(tmp_path / "state")}),
        load_directory(profiles),
        sink=SwitchableSink(),
        ingest=QueueIngest(),
    )
    for n, device in enumerate(["t1", "t2", "t3", "t1", "t3"]):
        instance.on_message(Message(f"test/level/{device}", b"1.0", (n + 1) * S, False, n))
    await run_and_drain(instance)
    assert instance.metrics.dead_letters == {"cardinality_exceeded": 2}
    assert instance.metrics.points_written["water"] == 3
