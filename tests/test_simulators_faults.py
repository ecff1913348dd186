"""Fault injection and its truth, checked against the gateway's own stages in process.

Every faulty message of every kind goes through the gateway's size limit, topic resolution,
decoder and normalizer (as gateway/pipeline.py chains them), and the outcome must be exactly
what the fault record says a correct gateway does: the same dead-letter reason, the same
dropped fields, the readings of the truth at their times, or at the receive time with
time_replaced. The simulators never import the gateway; this test does.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.errors import DecodeError
from gateway.model import Drop
from gateway.profiles.policy import OFFLINE_POLICY
from gateway.profiles.registry import ProfileRegistry, load_directory
from gateway.stages.decode import decoder_for
from gateway.stages.normalize import normalize
from simulators.cli import main
from simulators.clock import parse_start
from simulators.devices import KINDS
from simulators.faults import FAULTS, FaultRates, parse_faults
from simulators.fleet import OutgoingMessage, build_fleet
from simulators.gateway_spec import MAX_PAYLOAD_BYTES
from simulators.influx import StoredPoint
from simulators.truth import Expect, TruthFile, load_truth
from simulators.verify import check_measurement, fields_equal
from tests.harness import CONVERTED_FIELDS

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"
NOW_MS = parse_start("2026-11-24T12:00:00+07:00")
RECEIVED_NS = (NOW_MS + 1500) * 1_000_000  # the gateway receives a moment after "now"
DEVICES_PER_KIND = 3


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    # The simulators' default privacy key is the public key of the offline tools.
    return load_directory(PROFILES, OFFLINE_POLICY)


def faulty_stream(fault: str, kind: str, rate: float = 1.0, seed: int = 5) -> list[OutgoingMessage]:
    fleet = build_fleet(
        {kind: DEVICES_PER_KIND},
        seed=seed,
        total_messages=DEVICES_PER_KIND * 12,
        start_ms=None,
        now_ms=NOW_MS,
        faults=FaultRates({fault: rate}),
    )
    return list(fleet.messages())


class Outcome:
    """What the gateway's stages made of one message."""

    def __init__(self, dead_letter: str | None, points: list[Any], drops: list[Drop]) -> None:
        self.dead_letter = dead_letter
        self.points = points
        self.drops = drops


def gateway_outcome(registry: ProfileRegistry, message: OutgoingMessage) -> Outcome:
    if len(message.payload) > MAX_PAYLOAD_BYTES:
        return Outcome("payload_too_large", [], [])
    resolved = registry.resolve(message.topic, message.payload)  # models share a topic
    if resolved is None:
        return Outcome("unknown_topic", [], [])
    drops: list[Drop] = []
    try:
        document = decoder_for(resolved.profile.decode_spec)(message.payload)
        points = normalize(resolved.profile, document, resolved.segments, RECEIVED_NS, drops)
    except DecodeError as exc:
        return Outcome(exc.reason, [], drops)
    return Outcome(None, points, drops)


def merged_by_series(points: list[Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Points as InfluxDB keeps them: one per series and time, later fields winning."""
    stored: dict[tuple[Any, ...], dict[str, Any]] = {}
    for point in points:
        key = (point.measurement, point.tags, point.time_ns)
        stored[key] = {**stored.get(key, {}), **dict(point.fields)}
    return stored


def assert_fields_equal(key: Any, got: dict[str, Any], want: dict[str, Any]) -> None:
    assert list(got) == list(want), key
    for name, value in want.items():
        assert type(got[name]) is type(value), (key, name)
        if (key[0], name) in CONVERTED_FIELDS:
            assert math.isclose(got[name], value, rel_tol=1e-12), (key, name)
        else:
            assert got[name] == value, (key, name)


def assert_outcome_matches_truth(registry: ProfileRegistry, message: OutgoingMessage) -> None:
    record = message.fault
    assert record is not None
    outcome = gateway_outcome(registry, message)
    if record.expect is Expect.DEAD_LETTER:
        assert (outcome.dead_letter, message.readings, message.receive_time) == (
            record.reason, [], ()
        ), message.payload[:300]  # fmt: skip
        return
    assert outcome.dead_letter is None, (record, outcome.dead_letter, message.payload[:300])
    expected = {
        (r.measurement, tuple(sorted(r.tags.items())), r.time_ns): r.fields
        for r in message.readings
    }
    # The gateway stamps the k-th reading of a message at the receive time + k ns.
    at_receive = sorted(
        (p for p in outcome.points if RECEIVED_NS <= p.time_ns < RECEIVED_NS + 10**6),
        key=lambda p: p.time_ns,
    )
    stored = merged_by_series([p for p in outcome.points if p not in at_receive])
    assert stored.keys() == expected.keys(), (record, message.payload[:300])
    for key, fields in expected.items():
        assert_fields_equal(key, stored[key], fields)
    assert [(p.measurement, p.tags) for p in at_receive] == [
        (r.measurement, tuple(sorted(r.tags.items()))) for r in message.receive_time
    ], (record, message.payload[:300])
    for point, reading in zip(at_receive, message.receive_time, strict=True):
        assert_fields_equal((point.measurement, point.tags), dict(point.fields), reading.fields)
    significant = [drop for drop in outcome.drops if drop[1] != "missing"]
    assert sorted(set(significant)) == sorted(set(record.drops)), (record, outcome.drops)


PAYLOAD_FAULTS = [
    "malformed", "out_of_range", "wrong_type", "clock_reset", "clock_future", "naive_time",
    "oversized", "unknown_topic",
]  # fmt: skip


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("fault", PAYLOAD_FAULTS)
def test_a_faulty_message_meets_the_gateway_as_its_truth_says(
    registry: ProfileRegistry, fault: str, kind: str
) -> None:
    messages = faulty_stream(fault, kind)
    faulty = [m for m in messages if m.fault is not None]
    for message in faulty:
        assert message.fault is not None
        assert message.fault.fault == fault
        assert_outcome_matches_truth(registry, message)
    expected_applicable = {
        "naive_time": KINDS[kind].surface is not None
        and KINDS[kind].surface.time.encoding in {"iso_local", "iso_utc"},  # type: ignore[union-attr]  # checked first
        "wrong_type": KINDS[kind].name != "site-monitors",  # a binary frame has no types
    }.get(fault, True)
    assert bool(faulty) == expected_applicable, (fault, kind)
    clean = [m for m in messages if m.fault is None]
    assert len(faulty) + len(clean) == len(messages)


@pytest.mark.parametrize("kind", list(KINDS))
def test_stream_faults_keep_every_reading_storable(registry: ProfileRegistry, kind: str) -> None:
    for fault in ("duplicate", "out_of_order", "burst", "unknown_device"):
        for message in faulty_stream(fault, kind, rate=0.3):
            outcome = gateway_outcome(registry, message)
            assert outcome.dead_letter is None, (fault, message.payload[:200])
            assert len(outcome.points) == len(message.readings)


def test_silence_publishes_nothing_and_says_so() -> None:
    messages = faulty_stream("silent", "lighting", rate=0.2)
    silences = [m for m in messages if not m.published]
    assert silences
    for silence in silences:
        assert silence.fault is not None
        assert silence.fault.expect is Expect.NOTHING
        assert (silence.payload, silence.readings) == (b"", [])
    assert sum(m.published for m in messages) < DEVICES_PER_KIND * 12


def test_a_late_report_arrives_after_its_successor() -> None:
    messages = faulty_stream("out_of_order", "water", rate=0.3)
    late = [i for i, m in enumerate(messages) if m.fault is not None]
    assert late
    for index in late:
        device, time_ns = messages[index].readings[0].device_id, messages[index].readings[0].time_ns
        earlier_sent = [
            r.time_ns for m in messages[:index] for r in m.readings if r.device_id == device
        ]
        assert max(earlier_sent) > time_ns


def test_duplicates_repeat_the_message_and_strangers_are_new_devices() -> None:
    messages = faulty_stream("duplicate", "traffic", rate=0.3)
    for before, message in itertools.pairwise(messages):
        if message.fault is not None:
            assert (message.topic, message.payload) == (before.topic, before.payload)
    strangers = [m for m in faulty_stream("unknown_device", "signals", rate=0.3) if m.fault]
    assert strangers
    fleet_ids = {f"sc-{n:04d}" for n in range(1, DEVICES_PER_KIND + 1)}
    assert all(m.readings[0].device_id not in fleet_ids for m in strangers)
    assert all(m.readings[0].device_id.startswith("sc-1") for m in strangers)


def test_the_message_total_is_a_bound_with_faults() -> None:
    # Enough messages that naive_time, which only the few kinds with ISO times can carry,
    # comes up with every kind in the fleet.
    fleet = build_fleet(
        dict.fromkeys(KINDS, 4), seed=2, total_messages=1000, start_ms=None, now_ms=NOW_MS,
        faults=parse_faults("all=0.05"),
    )  # fmt: skip
    messages = list(fleet.messages())
    assert sum(m.published for m in messages) <= 1000
    assert {m.fault.fault for m in messages if m.fault} == set(FAULTS)


def test_faults_are_reproducible_and_leave_the_devices_alone() -> None:
    def run(seed: int, faults: str | None) -> list[tuple[str, bytes]]:
        fleet = build_fleet(
            {"lighting": 5, "water": 5}, seed=seed, total_messages=200, start_ms=None,
            now_ms=NOW_MS, faults=parse_faults(faults) if faults else None,
        )  # fmt: skip
        return [(m.topic, m.payload) for m in fleet.messages()]

    assert run(3, "all=0.02") == run(3, "all=0.02")
    assert run(3, "all=0.02") != run(4, "all=0.02")
    # A fault changes its own message only: the clean ones are the fault-free run's.
    clean = set(run(3, None))
    faulty = run(3, "malformed=0.1")
    assert sum(message in clean for message in faulty) > 0.8 * len(faulty)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("malformed=0.01", {"malformed": 0.01}),
        (" duplicate=0.5 , burst=0.1 ", {"duplicate": 0.5, "burst": 0.1}),
        ("all=0.01,silent=0", {name: 0.01 for name in FAULTS if name != "silent"}),
    ],
)
def test_parse_faults(text: str, expected: dict[str, float]) -> None:
    assert dict(parse_faults(text).rates) == expected


@pytest.mark.parametrize(
    ("value", "explanation"),
    [
        ("malform=0.01", "unknown fault 'malform'"),
        ("malformed=lots", "rate 'lots' for malformed"),
        ("malformed=1.5", "not a number from 0 to 1"),
        ("malformed", "rate '' for malformed"),
        ("all=0.1", "add up to 1.3"),
        ("", "no faults"),
    ],
)
def test_the_cli_explains_a_bad_fault_list(
    value: str, explanation: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--messages", "1", "--lighting", "1", "--faults", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --faults" in err
    assert explanation in err
    if "unknown" in explanation:
        assert "valid names: malformed, out_of_range" in err


def test_truth_file_round_trip(tmp_path: Path) -> None:
    fleet = build_fleet(
        dict.fromkeys(KINDS, 2), seed=9, total_messages=400, start_ms=None, now_ms=NOW_MS,
        faults=parse_faults("all=0.04"),
    )  # fmt: skip
    messages = list(fleet.messages())
    with TruthFile(tmp_path / "truth.jsonl", now_ns=lambda: RECEIVED_NS) as truth:
        for message in messages:
            truth.write([*message.readings, *message.receive_time], message.fault)
    document = load_truth(tmp_path / "truth.jsonl")
    assert len(document.faults) == sum(m.fault is not None for m in messages)
    assert len(document.readings) == sum(len(m.readings) for m in messages)
    assert len(document.receive_time) == sum(len(m.receive_time) for m in messages)
    assert all(earliest == RECEIVED_NS for _, earliest, _ in document.receive_time)
    for line in (tmp_path / "truth.jsonl").read_bytes().splitlines():
        raw = orjson.loads(line)
        if "fault" not in raw and raw.get("time") != "receive":
            assert list(raw) == ["measurement", "device_id", "tags", "time_ns", "fields"]


# -- verify's comparison, without a server ------------------------------------------------------


def test_verify_finds_missing_extra_different_and_receive_time_points(tmp_path: Path) -> None:
    lines = [
        {"measurement": "m", "device_id": "a", "tags": {"device_id": "a"}, "time_ns": 1,
         "fields": {"x": 1.0}},
        {"measurement": "m", "device_id": "a", "tags": {"device_id": "a"}, "time_ns": 2,
         "fields": {"x": 2.0}},
        {"measurement": "m", "device_id": "a", "tags": {"device_id": "a"}, "time_ns": 3,
         "fields": {"x": 3.0}},
        {"measurement": "m", "device_id": "b", "tags": {"device_id": "b"}, "time_ns": None,
         "fields": {"x": 4.0, "time_replaced": True}, "time": "receive",
         "sent_ns": 10**12, "window_s": 600},
    ]  # fmt: skip
    path = tmp_path / "truth.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    truth = load_truth(path)
    types = {"x": "float", "time_replaced": "boolean"}
    a, b = (("device_id", "a"),), (("device_id", "b"),)
    perfect = [
        StoredPoint(a, 1, {"x": 1}),  # JSON gives 1 for a stored 1.0
        StoredPoint(a, 2, {"x": 2.0}),
        StoredPoint(a, 3, {"x": 3.0}),
        StoredPoint(b, 10**12 + 5, {"x": 4.0, "time_replaced": True}),
    ]
    assert check_measurement("m", truth, perfect, types).perfect
    flawed = [
        StoredPoint(a, 1, {"x": 1.5}),  # different
        StoredPoint(a, 3, {"x": 3.0}),  # 2 is missing
        StoredPoint(a, 4, {"x": 9.0}),  # extra
        StoredPoint(b, 10**9, {"x": 4.0, "time_replaced": True}),  # outside the window
    ]
    check = check_measurement("m", truth, flawed, {"x": "integer"})
    assert (len(check.missing), len(check.extra)) == (2, 2)
    assert len(check.different) == 3  # x differs, x and time_replaced have the wrong type
    assert fields_equal({"flag": True}, {"flag": True})
    assert not fields_equal({"flag": True}, {"flag": 1})
    assert Counter(r.measurement for r, _, _ in truth.receive_time) == {"m": 1}
