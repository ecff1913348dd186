"""A profile's `liveness:` block: validation messages, the interval the tracker uses, the
availability (last will) topic routed to liveness only, and retained messages.

In process with real implementations of the interfaces (RecordingSink, QueueIngest); the
end-to-end test (test_operations_end_to_end.py) runs the same against mosquitto and influxd.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.config import GatewaySettings
from gateway.errors import ProfileError
from gateway.model import Message
from gateway.pipeline import Gateway
from gateway.policies.liveness import NS_PER_S
from gateway.profiles.registry import ProfileRegistry, load_directory, load_text
from gateway.stages.deadletter import DeadLetterStore
from gateway.stages.sinks.recording import RecordingSink
from tests.fakes import LEVEL_PROFILE, LEVEL_TOPIC, LIGHT_TOPIC, QueueIngest, light, run_and_drain

ROOT = Path(__file__).resolve().parent.parent
STREETLIGHT = ROOT / "device_profiles" / "lighting" / "streetlight-json.yaml"
STATUS_TOPIC = "city/lighting/di-su/sl-0001/status"  # the streetlight profile's availability

# The receive-time level sensor of tests/fakes.py, with a liveness block.
LEVEL_WITH_LIVENESS = LEVEL_PROFILE.replace(
    "output:",
    "liveness:\n  expected_interval_s: 600\n  availability_topic: test/level/{device_id}/state\n"
    "  payload_online: UP\n  payload_offline: DOWN\noutput:",
)


def with_liveness(block: str) -> str:
    """LEVEL_PROFILE with `block` (indented YAML lines) as its liveness section."""
    return LEVEL_PROFILE.replace("output:", f"liveness:\n{block}output:")


def problems_of(text: str) -> list[str]:
    with pytest.raises(ProfileError) as caught:
        load_text(text, "level.yaml")
    return caught.value.problems


# ---- the profile key ---------------------------------------------------------------------------


def test_the_liveness_block_compiles() -> None:
    profile = load_text(LEVEL_WITH_LIVENESS, "level.yaml")
    assert profile.liveness is not None
    assert profile.liveness.expected_interval_s == 600
    assert profile.liveness.availability_state(b" DOWN\n") is False
    assert profile.liveness.availability_state(b"UP") is True
    assert profile.liveness.availability_state(b"offline") is None  # this profile says DOWN


@pytest.mark.parametrize(
    ("block", "where", "words"),
    [
        ("  expected_interval_s: 0\n", "liveness.expected_interval_s", "greater than 0"),
        ("  expected_interval_s: soon\n", "liveness.expected_interval_s", "valid number"),
        ("  every_s: 60\n", "liveness.every_s", "unknown key"),
        ("  availability_topic: test/{id}/state\n", "liveness.availability_topic", "{device_id}"),
        (
            "  availability_topic: test/level/{device_id}\n",
            "liveness.availability_topic",
            "same topics as match.topic",
        ),
        (
            "  expected_interval_s: 60\n  payload_offline: gone\n",
            "liveness",
            "need availability_topic",
        ),
        ("  expected_interval_s: null\n", "liveness", "give expected_interval_s"),
    ],
)
def test_a_bad_liveness_block_names_file_line_and_field(block: str, where: str, words: str) -> None:
    text = with_liveness(block)
    block_line = text.splitlines().index("liveness:") + 1
    line = block_line if where == "liveness" else block_line + 1  # the key inside the block
    (problem,) = problems_of(text)
    assert problem.startswith(f"level.yaml:{line}: {where}: "), problem
    assert words in problem


def test_an_availability_topic_another_profile_reads_is_refused(tmp_path: Path) -> None:
    shutil.copy(STREETLIGHT, tmp_path / "streetlight.yaml")
    clashing = with_liveness(
        "  availability_topic: city/lighting/{district}/{device_id}/telemetry\n"
    )
    clashing = clashing.replace("test/level/{device_id}", "city/lighting/{district}/{device_id}/x")
    clashing = clashing.replace("tags:\n", "tags:\n  district: {topic: district}\n", 1)
    (tmp_path / "clash.yaml").write_text(clashing, encoding="utf-8")
    with pytest.raises(ProfileError) as caught:
        load_directory(tmp_path)
    (problem,) = caught.value.problems  # reported at whichever of the two loads second
    assert "city/lighting/{district}/{device_id}/telemetry" in problem
    assert "availability topics need a level of their own" in problem


def test_every_shipped_profile_declares_its_reporting_interval() -> None:
    registry = load_directory(ROOT / "device_profiles")
    # Event-driven profiles (one message per vehicle, say) have no interval to expect.
    periodic = [p for p in registry.profiles if "anpr" not in p.id]
    missing = [p.id for p in periodic if p.liveness is None or not p.liveness.expected_interval_s]
    assert missing == []
    assert "city/lighting/+/+/status" in registry.subscriptions


# ---- the pipeline ------------------------------------------------------------------------------


def profiles_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "profiles"
    directory.mkdir()
    shutil.copy(STREETLIGHT, directory / "streetlight.yaml")
    (directory / "level.yaml").write_text(LEVEL_WITH_LIVENESS, encoding="utf-8")
    return directory


def make_gateway(
    tmp_path: Path, registry: ProfileRegistry, overrides: dict[str, float] | None = None
) -> tuple[Gateway, RecordingSink, QueueIngest]:
    settings = GatewaySettings(
        batch={"max_points": 100, "max_age_s": 0.05},
        spool={"dir": str(tmp_path / "state")},
        monitoring={"expected_interval_s": overrides or {}},
        http={"enabled": False},
    )
    sink, ingest = RecordingSink(), QueueIngest()
    gateway = Gateway(
        settings,
        registry,
        sink=sink,
        dead_letters=DeadLetterStore(tmp_path / "dl.sqlite3"),
        ingest=ingest,
    )
    return gateway, sink, ingest


# Two seconds after tests.fakes.light(0)'s device time: within every clock tolerance, and a
# receive time no device-stamped point carries.
T0 = (1_795_482_000 + 2) * NS_PER_S


def at(seconds: float) -> int:
    return T0 + int(seconds * NS_PER_S)


def msg(
    topic: str, payload: bytes, seconds: float, *, retained: bool = False, token: int = 0
) -> Message:
    """A message received `seconds` after T0; `retained` as the broker flagged it."""
    return Message(topic, payload, at(seconds), retained, token)


async def test_the_profile_interval_is_used_and_the_configuration_overrides_it(
    tmp_path: Path,
) -> None:
    registry = load_directory(profiles_dir(tmp_path))
    gateway, _, _ = make_gateway(tmp_path, registry, {"test-level-raw": 30.0})
    gateway.on_message(msg(LIGHT_TOPIC, light(0), 0))
    gateway.on_message(msg(LEVEL_TOPIC, b"1.5", 0))
    stale = {d.device_id: d.expected_interval_s for d in gateway.liveness.stale(at(100))}
    assert stale == {"tank-1": 30.0}  # 3 x 30 s (override) passed; 3 x 60 s (profile) not
    await run_and_drain(gateway)


async def test_availability_messages_go_to_liveness_only(tmp_path: Path) -> None:
    registry = load_directory(profiles_dir(tmp_path))
    gateway, sink, ingest = make_gateway(tmp_path, registry)
    assert set(gateway.registry.subscriptions) >= {"city/lighting/+/+/status", "test/level/+/state"}
    gateway.on_message(msg(LIGHT_TOPIC, light(0), 0, token=1))
    gateway.on_message(msg(STATUS_TOPIC, b"offline", 5, token=2))
    gateway.on_message(msg("test/level/tank-9/state", b"DOWN", 6, token=3))
    gateway.on_message(msg("test/level/tank-9/state", b"maybe", 7, token=4))
    await run_and_drain(gateway)

    assert ingest.acked == [1, 2, 3, 4]  # acknowledged, in order, with the batch
    assert len(sink.lines) == 1  # only the reading was written
    assert gateway.metrics.dead_letters == {}
    assert gateway.metrics.availability_messages == {"offline": 2, "unrecognized": 1}
    offline = gateway.liveness.stale(at(10))
    assert {(d.device_id, d.reason) for d in offline} == {
        ("sl-0001", "offline"),
        ("tank-9", "offline"),
    }

    gateway.on_message(msg(STATUS_TOPIC, b"online", 11, token=5))
    assert [d.device_id for d in gateway.liveness.stale(at(11))] == ["tank-9"]


async def test_a_retained_receive_time_reading_is_not_written_as_fresh(tmp_path: Path) -> None:
    registry = load_directory(profiles_dir(tmp_path))
    gateway, sink, ingest = make_gateway(tmp_path, registry)
    gateway.on_message(msg(LEVEL_TOPIC, b"1.5", 0, retained=True, token=1))
    gateway.on_message(msg(LEVEL_TOPIC, b"1.6", 1, token=2))
    await run_and_drain(gateway)

    assert ingest.acked == [1, 2]
    assert [line.split(" ")[1] for line in sink.lines] == ["level_m=1.6"]
    assert gateway.metrics.retained_readings_skipped == 1
    assert gateway.metrics.dead_letters == {}


async def test_a_retained_device_time_reading_is_stored_but_is_no_sign_of_life(
    tmp_path: Path,
) -> None:
    registry = load_directory(profiles_dir(tmp_path))
    gateway, sink, ingest = make_gateway(tmp_path, registry)
    gateway.on_message(msg(LIGHT_TOPIC, light(0), 0, retained=True, token=1))
    await run_and_drain(gateway)

    assert ingest.acked == [1]
    assert len(sink.lines) == 1  # its own time: the same point InfluxDB may already hold
    assert sink.lines[0].endswith(" 1795482000000000000")
    assert gateway.liveness.tracked == 0  # the broker replaying it says nothing about the lamp
    assert gateway.metrics.retained_readings_skipped == 0


RADAR = STREETLIGHT.parent.parent / "traffic" / "radar-vehicles-json.yaml"


async def test_a_retained_batch_at_the_receive_time_is_skipped_whole(tmp_path: Path) -> None:
    """Every reading of a batch whose clock reset falls back to the receive time (the k-th at
    + k ns): none of them is written as fresh."""
    directory = tmp_path / "profiles"
    directory.mkdir()
    shutil.copy(RADAR, directory / "radar.yaml")
    gateway, sink, ingest = make_gateway(tmp_path, load_directory(directory))
    vehicle = b'{"t": 1000, "lane": 1, "dir": "in", "cls": "car", "v_ms": 10.0, "len_cm": 400}'
    batch = b'{"vehicles": [' + b", ".join([vehicle] * 3) + b"]}"
    gateway.on_message(msg("city/traffic/di-su/rd-0001/vehicles", batch, 0, retained=True, token=1))
    await run_and_drain(gateway)

    assert ingest.acked == [1]
    assert sink.lines == []
    assert gateway.metrics.retained_readings_skipped == 3


async def test_a_redelivered_batch_gets_its_first_receive_time_when_reading_0_was_dropped(
    tmp_path: Path,
) -> None:
    """The receive-time readings start at + 1 ns here (reading 0 has no valid field), and the
    receipt must still be recorded so the redelivery writes the same points, not new ones."""
    directory = tmp_path / "profiles"
    directory.mkdir()
    shutil.copy(RADAR, directory / "radar.yaml")
    gateway, sink, _ = make_gateway(tmp_path, load_directory(directory))
    broken = b'{"t": 1000, "lane": 1, "dir": "in", "cls": "car", "v_ms": -5, "len_cm": 0}'
    vehicle = b'{"t": 1000, "lane": 1, "dir": "in", "cls": "car", "v_ms": 10.0, "len_cm": 400}'
    batch = b'{"vehicles": [' + b", ".join([broken, vehicle, vehicle]) + b"]}"
    topic = "city/traffic/di-su/rd-0001/vehicles"
    gateway.on_message(Message(topic, batch, at(0), ack_token=1, packet_id=7))
    gateway.on_message(Message(topic, batch, at(30), ack_token=2, redelivered=True, packet_id=7))
    await run_and_drain(gateway)

    assert len(sink.lines) == 4
    assert len(set(sink.lines)) == 2  # the redelivery wrote exactly the first delivery's points
