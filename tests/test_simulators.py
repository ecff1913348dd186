"""The device simulators, without a broker: payloads, truth, determinism, pacing and the CLI.

The truth rules are restated here from the payloads (not imported from the simulators), so a
model that drifts from the documented payload or from the canonical schema fails a test.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import math
import re
import socket
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from simulators.cli import build_parser, main, parse_run_command, summary_document
from simulators.clock import (
    local_hour,
    local_iso_ms,
    local_naive_s,
    local_weekday,
    parse_start,
    utc_rfc3339,
)
from simulators.devices.lighting import scheduled_dim_pct
from simulators.devices.traffic import demand_factor as traffic_demand
from simulators.devices.water import demand_factor as water_demand
from simulators.fleet import DISTRICTS, OutgoingMessage, build_fleet
from simulators.publisher import BrokerAddress, parse_broker
from simulators.runner import QosPlan, RunLimits, RunStats, TokenPacer, run
from simulators.truth import DiscardTruth, TruthFile, TruthReading, decode_reading, encode_reading

ICT = timezone(timedelta(hours=7))
MONDAY_MIDNIGHT = "2026-11-23T00:00:00+07:00"
START_MS = parse_start(MONDAY_MIDNIGHT)
ALL_KINDS = {"lighting": 4, "water": 4, "traffic": 4}
SIMULATORS_DIR = Path(__file__).resolve().parent.parent / "simulators"

TOPIC = re.compile(
    r"^city/(?P<domain>lighting|water|traffic)/(?P<district>[a-z-]+)/"
    r"(?P<device_id>(?:sl|wm|tc)-\d{4})/(?P<leaf>telemetry|counts)$"
)
ISO_LOCAL_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+07:00$")


def simulate(
    counts: dict[str, int] | None = None,
    *,
    total: int = 240,
    seed: int = 1,
    start: str | None = MONDAY_MIDNIGHT,
    now_ms: int = 0,
) -> list[OutgoingMessage]:
    fleet = build_fleet(
        counts or ALL_KINDS,
        seed=seed,
        total_messages=total,
        start_ms=parse_start(start) if start else None,
        now_ms=now_ms,
    )
    return list(fleet.messages())


def payload(message: OutgoingMessage) -> dict[str, Any]:
    decoded: dict[str, Any] = orjson.loads(message.payload)
    return decoded


def by_device(messages: list[OutgoingMessage]) -> dict[str, list[OutgoingMessage]]:
    grouped: dict[str, list[OutgoingMessage]] = defaultdict(list)
    for message in messages:
        grouped[topic_parts(message)["device_id"]].append(message)
    return grouped


def topic_parts(message: OutgoingMessage) -> dict[str, str]:
    match = TOPIC.match(message.topic)
    assert match, message.topic
    return match.groupdict()


def iso_to_ns(text: str) -> int:
    since_epoch = datetime.fromisoformat(text) - datetime(1970, 1, 1, tzinfo=UTC)
    return since_epoch // timedelta(microseconds=1) * 1000


def expected_truth(message: OutgoingMessage) -> list[TruthReading]:
    """The truth rules of the simulator brief, applied to the payload and topic."""
    body, topic = payload(message), topic_parts(message)
    tags = {"district": topic["district"], "device_id": topic["device_id"]}
    if topic["domain"] == "lighting":
        lamp, elec = body["lamp"], body["elec"]
        fields: dict[str, int | float] = {
            "power_w": elec["p_w"],
            "energy_kwh": elec["e_kwh"],
            "voltage_v": elec["v"],
            "current_a": elec["i_a"],
            "dim_pct": lamp["dim"],
            "lamp_on": int(lamp["state"] == "ON"),
            "fault_code": lamp["fault"],
        }
        return [TruthReading("streetlight", tags["device_id"], tags, body["ts"] * 10**6, fields)]
    if topic["domain"] == "water":
        fields = {
            "flow_m3h": body["flow"]["value"] * 3.6,
            "pressure_bar": body["pressure_kpa"] / 100,
            "total_m3": body["totalizer_m3"],
            "battery_pct": body["battery_pct"],
        }
        return [
            TruthReading("water_flow", tags["device_id"], tags, iso_to_ns(body["time"]), fields)
        ]
    return [
        TruthReading(
            "traffic_flow",
            tags["device_id"],
            {**tags, "lane": str(lane["lane"])},
            body["t"] * 10**9,
            {
                "vehicle_count": lane["count"],
                "occupancy_pct": lane["occ"],
                "speed_kmh": lane["speed_kmh"],
                "period_s": body["period_s"],
            },
        )
        for lane in body["lanes"]
    ]


def assert_same_fields(actual: dict[str, int | float], expected: dict[str, int | float]) -> None:
    assert list(actual) == list(expected)
    for name, value in expected.items():
        assert type(actual[name]) is type(value), name
        assert math.isclose(actual[name], value, rel_tol=1e-9), name
        assert actual[name] == value, name  # computed exactly as the rule says


# -- determinism and fleet ----------------------------------------------------------------------


def test_same_seed_gives_identical_payloads_and_truth() -> None:
    first, second = simulate(), simulate()
    assert [(m.topic, m.payload) for m in first] == [(m.topic, m.payload) for m in second]
    assert [list(map(encode_reading, m.readings)) for m in first] == [
        list(map(encode_reading, m.readings)) for m in second
    ]


def test_another_seed_gives_other_payloads() -> None:
    assert [m.payload for m in simulate(seed=1)] != [m.payload for m in simulate(seed=2)]


def test_devices_report_round_robin_and_share_the_total() -> None:
    messages = simulate({"lighting": 2, "water": 1, "traffic": 1}, total=10)
    ids = [topic_parts(m)["device_id"] for m in messages]
    assert ids[:4] == ["sl-0001", "sl-0002", "wm-0001", "tc-0001"]
    assert ids[4:8] == ids[:4]
    assert ids[8:] == ["sl-0001", "sl-0002"]


def test_topics_name_a_ward_and_a_padded_device_id() -> None:
    districts: dict[str, set[str]] = defaultdict(set)
    for message in simulate():
        parts = topic_parts(message)
        assert parts["district"] in DISTRICTS
        assert parts["leaf"] == ("counts" if parts["domain"] == "traffic" else "telemetry")
        districts[parts["device_id"]].add(parts["district"])
    assert all(len(wards) == 1 for wards in districts.values())
    assert sorted(districts) == [f"{p}-{n:04d}" for p in ("sl", "tc", "wm") for n in range(1, 5)]


def test_adding_devices_does_not_change_existing_ones() -> None:
    small = by_device(simulate({"lighting": 2}, total=20))
    large = by_device(simulate({"lighting": 3, "water": 2}, total=50))
    assert [m.payload for m in small["sl-0002"]] == [m.payload for m in large["sl-0002"]]


def test_each_device_steps_its_clock_by_its_interval() -> None:
    steps = {"sl": (60_000, 1_000), "wm": (300_000, 1_000), "tc": (60_000, 0)}
    for device_id, messages in by_device(simulate(total=400)).items():
        times_ms = [m.readings[0].time_ns // 10**6 for m in messages]
        interval_ms, jitter_ms = steps[device_id[:2]]
        assert times_ms[0] - START_MS in range(jitter_ms + 1)
        for earlier, later in itertools.pairwise(times_ms):
            assert abs(later - earlier - interval_ms) <= jitter_ms


def test_without_start_the_last_reports_end_near_now() -> None:
    now_ms = parse_start("2026-11-24T10:00:00+07:00")
    for device_id, messages in by_device(simulate(total=120, start=None, now_ms=now_ms)).items():
        interval_ms = 300_000 if device_id.startswith("wm") else 60_000
        last_ms = max(r.time_ns for r in messages[-1].readings) // 10**6
        assert now_ms - interval_ms <= last_ms < now_ms, device_id


def test_a_fleet_needs_devices_of_known_kinds() -> None:
    with pytest.raises(ValueError, match="no devices"):
        simulate({"lighting": 0})
    with pytest.raises(ValueError, match="unknown device kinds"):
        simulate({"parking": 1})


# -- payload shapes -----------------------------------------------------------------------------


def messages_of(domain: str, total: int = 240) -> list[OutgoingMessage]:
    return [m for m in simulate(total=total) if topic_parts(m)["domain"] == domain]


def test_streetlight_payload_shape() -> None:
    for message in messages_of("lighting"):
        body = payload(message)
        assert list(body) == ["ts", "lamp", "elec"]
        assert type(body["ts"]) is int
        assert list(body["lamp"]) == ["state", "dim", "fault"]
        assert body["lamp"]["state"] in {"ON", "OFF"}
        assert type(body["lamp"]["dim"]) is int
        assert 0 <= body["lamp"]["dim"] <= 100
        assert type(body["lamp"]["fault"]) is int
        assert list(body["elec"]) == ["p_w", "v", "i_a", "e_kwh"]
        assert all(type(value) is float for value in body["elec"].values())
        assert 225 <= body["elec"]["v"] <= 235


def test_water_payload_shape() -> None:
    for message in messages_of("water"):
        body = payload(message)
        assert list(body) == ["time", "flow", "pressure_kpa", "totalizer_m3", "battery_pct"]
        assert ISO_LOCAL_MS.match(body["time"]), body["time"]
        assert body["flow"]["unit"] == "L/s"
        assert type(body["flow"]["value"]) is float
        assert body["flow"]["value"] >= 0
        assert type(body["pressure_kpa"]) is float
        assert 200 <= body["pressure_kpa"] <= 420
        assert type(body["totalizer_m3"]) is float
        assert type(body["battery_pct"]) is int
        assert 0 <= body["battery_pct"] <= 100


def test_traffic_payload_shape_and_fixed_lanes() -> None:
    lanes_seen: dict[str, set[int]] = defaultdict(set)
    for message in messages_of("traffic"):
        body = payload(message)
        assert list(body) == ["device", "t", "period_s", "lanes"]
        assert body["device"] == topic_parts(message)["device_id"]
        assert type(body["t"]) is int
        assert body["period_s"] == 60
        assert [lane["lane"] for lane in body["lanes"]] == list(range(1, len(body["lanes"]) + 1))
        for lane in body["lanes"]:
            assert list(lane) == ["lane", "count", "occ", "speed_kmh"]
            assert type(lane["count"]) is int
            assert type(lane["occ"]) is float
            assert type(lane["speed_kmh"]) is float
            assert 0 <= lane["occ"] <= 100
        lanes_seen[body["device"]].add(len(body["lanes"]))
        assert len(message.readings) == len(body["lanes"])
    assert all(len(counts) == 1 and counts <= {2, 3, 4} for counts in lanes_seen.values())


# -- truth --------------------------------------------------------------------------------------


def test_truth_follows_the_rules_from_the_payload() -> None:
    for message in simulate(total=600):
        expected = expected_truth(message)
        assert len(message.readings) == len(expected)
        for actual, wanted in zip(message.readings, expected, strict=True):
            assert (actual.measurement, actual.device_id) == (wanted.measurement, wanted.device_id)
            assert actual.tags == wanted.tags
            assert actual.time_ns == wanted.time_ns
            assert_same_fields(actual.fields, wanted.fields)


def test_water_time_is_local_with_offset_and_converts_to_utc_ns() -> None:
    first = messages_of("water")[0]
    local_time = payload(first)["time"]
    assert local_time.startswith("2026-11-23T00:00:00.")
    utc = datetime.fromtimestamp(first.readings[0].time_ns // 10**9, UTC)
    assert utc == datetime(2026, 11, 22, 17, 0, tzinfo=UTC)
    assert first.readings[0].time_ns % 10**9 == int(local_time[20:23]) * 10**6


def test_truth_lines_have_exactly_the_documented_keys(tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    readings = [r for m in simulate(total=30) for r in m.readings]
    with TruthFile(path) as truth:
        truth.write(readings)
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(readings)
    for line, reading in zip(lines, readings, strict=True):
        assert list(orjson.loads(line)) == ["measurement", "device_id", "tags", "time_ns", "fields"]
        assert decode_reading(line) == reading


# -- realism ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local_time", "dim_pct"),
    [
        ("05:00", 50),
        ("06:30", 0),
        ("12:00", 0),
        ("17:00", 0),
        ("18:00", 100),
        ("22:00", 100),
        ("23:30", 50),
        ("00:00", 50),
    ],
)
def test_lamp_schedule(local_time: str, dim_pct: int) -> None:
    hours, minutes = map(int, local_time.split(":"))
    assert scheduled_dim_pct(hours + minutes / 60) == dim_pct


def first_lamp_reports(local_time: str) -> list[dict[str, Any]]:
    start = f"2026-11-23T{local_time}:00+07:00"
    return [payload(m) for m in simulate({"lighting": 50}, total=50, start=start)]


def test_lamps_are_off_at_local_noon() -> None:
    assert {body["lamp"]["state"] for body in first_lamp_reports("12:00")} == {"OFF"}
    assert all(body["elec"]["p_w"] < 1 for body in first_lamp_reports("12:00"))


def test_lamps_are_on_at_local_ten_pm_unless_faulted() -> None:
    for body in first_lamp_reports("22:00"):
        assert body["lamp"]["dim"] == 100
        assert body["lamp"]["state"] == "ON" or body["lamp"]["fault"] != 0
        if body["lamp"]["state"] == "ON":
            assert body["elec"]["p_w"] > 90


def test_faults_happen_and_clear() -> None:
    faults = [payload(m)["lamp"]["fault"] for m in simulate({"lighting": 20}, total=20 * 2880)]
    assert 3 in faults
    assert faults.count(0) > 0.95 * len(faults)


def test_running_totals_never_go_back() -> None:
    for device_id, messages in by_device(simulate(total=12 * 1440)).items():
        if device_id.startswith("tc"):
            continue
        totals = [
            r.fields["energy_kwh" if device_id.startswith("sl") else "total_m3"]
            for m in messages
            for r in m.readings
        ]
        assert totals == sorted(totals)
        assert totals[-1] > totals[0]
        if device_id.startswith("wm"):
            battery = [m.readings[0].fields["battery_pct"] for m in messages]
            assert battery == sorted(battery, reverse=True)


def test_demand_peaks_where_the_town_is_busy() -> None:
    assert water_demand(7.0) > 3 * water_demand(3.0)
    assert water_demand(19.0) > 3 * water_demand(3.0)
    monday, sunday = 0, 6
    assert traffic_demand(7.75, monday) > 2 * traffic_demand(12.5, monday)
    assert traffic_demand(17.5, monday) > 2 * traffic_demand(12.5, monday)
    assert traffic_demand(7.75, sunday) < traffic_demand(7.75, monday) / 2
    assert traffic_demand(3.0, monday) < 0.1


def test_traffic_slows_as_lanes_fill() -> None:
    morning = simulate({"traffic": 4}, total=4 * 180, start="2026-11-23T06:30:00+07:00")
    lanes = [lane for m in morning for lane in payload(m)["lanes"]]
    busy = [lane["speed_kmh"] for lane in lanes if lane["occ"] > 10]
    light = [lane["speed_kmh"] for lane in lanes if 0 < lane["occ"] < 3]
    assert busy
    assert light
    assert sum(busy) / len(busy) < sum(light) / len(light)


# -- clock ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 23, 16, 59, 59, 999000, UTC),
        datetime(2026, 11, 22, 17, 0, 0, 1000, UTC),
        datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
        datetime(2028, 2, 29, 23, 30, tzinfo=UTC),
    ],
)
def test_local_calendar_matches_datetime(moment: datetime) -> None:
    epoch_ms = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    local = moment.astimezone(ICT)
    assert local_weekday(epoch_ms) == local.weekday()
    assert local_hour(epoch_ms) == pytest.approx(local.hour + local.minute / 60, abs=1 / 60)
    assert local_iso_ms(epoch_ms) == local.isoformat(timespec="milliseconds")


def test_device_clock_texts() -> None:
    # 01:00 UTC is 08:00 in Mỹ Hào; Go servers drop trailing zeros of the fraction.
    assert local_naive_s(1795482000) == "2026-11-24T08:00:00"
    assert local_naive_s(1795482000, sep=" ") == "2026-11-24 08:00:00"
    assert utc_rfc3339(1795482000_123400) == "2026-11-24T01:00:00.1234Z"
    assert utc_rfc3339(1795482007_000000) == "2026-11-24T01:00:07Z"


def test_start_needs_an_offset() -> None:
    assert parse_start("2026-11-22T17:00:00Z") == START_MS
    assert parse_start("2026-11-23T00:00:00.250+07:00") == START_MS + 250
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_start("2026-11-23T00:00:00")


# -- broker address, pacing, runner, CLI ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:1883", "127.0.0.1", 1883),
        ("localhost:18830", "localhost", 18830),
        ("[::1]:1883", "::1", 1883),
        ("localhost", "localhost", 1883),
        ("[::1]", "::1", 1883),
    ],
)
def test_parse_broker(text: str, host: str, port: int) -> None:
    assert parse_broker(text) == BrokerAddress(host, port)


@pytest.mark.parametrize("text", ["::1:1883", "[::1", "[::1]x", ":1883", "host:0", "host:x"])
def test_parse_broker_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="broker"):
        parse_broker(text)


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_pacer_spaces_messages_and_forgives_only_a_short_stall() -> None:
    clock = FakeClock()
    pacer = TokenPacer(10, clock)
    assert [pacer.delay_s() for _ in range(3)] == pytest.approx([0.0, 0.1, 0.2])
    clock.now_s += 60  # a long stall: at most one second of catch-up burst
    delays = [pacer.delay_s() for _ in range(12)]
    assert delays[:10] == [0.0] * 10
    assert delays[11] == pytest.approx(0.1)


def test_unpaced_never_waits() -> None:
    pacer = TokenPacer(0, FakeClock())
    assert {pacer.delay_s() for _ in range(100)} == {0.0}


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.qos: list[int] = []

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        self.sent.append((topic, payload))
        self.qos.append(qos)


async def test_run_publishes_every_message_and_writes_its_truth(tmp_path: Path) -> None:
    messages = simulate(total=90)
    recorder = RecordingPublisher()
    with TruthFile(tmp_path / "truth.jsonl") as truth:
        stats = await run(
            iter(messages),
            lambda: contextlib.nullcontext(recorder),
            truth,
            RunStats(planned_messages=len(messages)),
            limits=RunLimits(),
        )
    assert recorder.sent == [(m.topic, m.payload) for m in messages]
    lines = (tmp_path / "truth.jsonl").read_bytes().splitlines()
    assert [decode_reading(line) for line in lines] == [r for m in messages for r in m.readings]
    assert stats.messages == 90
    assert stats.readings == len(lines)
    # 90 = 7 rounds of 12 devices + 6: the first six devices (4 lights, 2 meters) send one more.
    assert stats.messages_by_kind == {"lighting": 32, "water": 30, "traffic": 28}
    assert not stats.stopped_early
    document = summary_document(stats)
    assert list(document) == ["messages", "readings", "per_measurement", "messages_by_qos"]
    assert document["per_measurement"] == dict(stats.readings_by_measurement)
    assert document["messages_by_qos"] == {"1": 90}  # QoS 1 unless asked otherwise
    assert set(recorder.qos) == {1}


async def test_each_kind_publishes_at_its_own_qos() -> None:
    messages = simulate(total=90)
    recorder = RecordingPublisher()
    plan = QosPlan(1, {"lighting": 0, "traffic": 0})
    stats = await run(
        iter(messages),
        lambda: contextlib.nullcontext(recorder),
        DiscardTruth(),
        RunStats(planned_messages=len(messages)),
        limits=RunLimits(),
        qos=plan,
    )
    assert recorder.qos == [0 if m.kind in {"lighting", "traffic"} else 1 for m in messages]
    assert stats.messages_by_qos == {0: 32 + 28, 1: 30}
    assert summary_document(stats)["messages_by_qos"] == {"0": 60, "1": 30}
    assert plan.describe() == "QoS 1 (QoS 0: lighting, traffic)"
    assert QosPlan(0).describe() == "QoS 0"


def test_cli_sets_the_qos_per_kind_or_for_the_fleet() -> None:
    def plan(*extra: str) -> QosPlan:
        args = build_parser().parse_args(["run", "--lighting", "1", "--messages", "1", *extra])
        return parse_run_command(args).qos

    assert plan() == QosPlan(1)
    assert plan("--qos", "0") == QosPlan(0)
    assert plan("--kind-qos", "lighting=0,speed-probes=0") == QosPlan(
        1, {"lighting": 0, "speed-probes": 0}
    )
    assert plan("--qos", "0", "--kind-qos", "water=1").of("water") == 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("lamps=0", "unknown kind 'lamps'"),
        ("lighting=3", "QOS 0, 1 or 2"),
        ("lighting", "KIND=QOS"),
    ],
)
def test_cli_explains_a_bad_kind_qos(
    value: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--messages", "1", "--lighting", "1", "--kind-qos", value])
    assert reason in capsys.readouterr().err


async def test_run_stops_at_the_duration_without_waiting_for_the_next_token() -> None:
    recorder = RecordingPublisher()
    messages = simulate(total=50)
    stats = await run(
        iter(messages),
        lambda: contextlib.nullcontext(recorder),
        DiscardTruth(),
        RunStats(planned_messages=len(messages)),
        limits=RunLimits(rate_msgs_per_s=0.1, duration_s=0.2),
    )
    assert stats.stopped_early
    assert stats.messages == len(recorder.sent) <= 1
    assert stats.elapsed_s < 5  # woke at the deadline, not at the next token ten seconds later


def test_cli_parses_the_documented_command() -> None:
    args = build_parser().parse_args(
        [
            "run",
            "--broker",
            "[::1]:1884",
            "--lighting",
            "5",
            "--water",
            "6",
            "--traffic",
            "7",
            "--quality-probes",
            "2",
            "--site-monitors",
            "3",
            "--messages",
            "2000",
            "--rate",
            "500",
            "--seed",
            "9",
            "--truth",
            "/tmp/t.jsonl",
            "--qos",
            "0",
            "--duration",
            "3",
            "--start",
            MONDAY_MIDNIGHT,
            "--client-id",
            "sim-a",
            "--quiet",
            "--summary-json",
            "/tmp/s.json",
        ]
    )
    command = parse_run_command(args)
    assert command.broker == BrokerAddress("::1", 1884)
    assert command.device_counts == {
        "lighting": 5,
        "water": 6,
        "traffic": 7,
        "tanks": 0,
        "quality-probes": 2,
        "radars": 0,
        "signals": 0,
        "speed-probes": 0,
        "site-monitors": 3,
        "cabinets": 0,
        "pressure-loggers": 0,
        "lorawan-lights": 0,
        "anpr-cameras": 0,
        "air-stations": 0,
        "water-meters": 0,
        "river-probes": 0,
        "parking-sensors": 0,
        "lorawan-meters": 0,
    }
    assert (command.messages, command.seed, command.start_ms) == (2000, 9, START_MS)
    assert command.qos == QosPlan(0)
    assert command.limits == RunLimits(rate_msgs_per_s=500, duration_s=3)
    assert (command.client_id, command.quiet) == ("sim-a", True)
    assert command.truth == Path("/tmp/t.jsonl")


def test_cli_takes_the_privacy_key_from_the_option_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def key(*extra: str) -> bytes:
        args = build_parser().parse_args(["run", "--anpr-cameras", "1", "--messages", "1", *extra])
        return parse_run_command(args).privacy_key

    monkeypatch.delenv("SIM_PRIVACY_KEY", raising=False)
    assert key() == b"mh-gateway offline tools: golden vectors only, not secret"
    monkeypatch.setenv("SIM_PRIVACY_KEY", "a key from the environment\n")  # as `cat` gives it
    assert key() == b"a key from the environment"
    assert key("--privacy-key", "a key on the command line") == b"a key on the command line"
    with pytest.raises(ValueError, match="at least 16 bytes"):
        key("--privacy-key", "too short")


@pytest.mark.parametrize(
    "extra",
    [
        ["--lighting", "-1"],
        ["--rate", "nan"],
        ["--qos", "3"],
        ["--start", "2026-11-23T00:00:00"],
        ["--broker", "::1:1883"],
        ["--lighting", "10000"],
        ["--quality-probes", "-1"],
    ],
)
def test_cli_rejects_bad_arguments(extra: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--messages", "1", "--lighting", "1", *extra])
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "reason"),
    [(["--start", "2026-11-23T00:00:00"], "no UTC offset"), (["--broker", "::1:1883"], "brackets")],
)
def test_cli_explains_a_bad_value(
    extra: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--messages", "1", "--lighting", "1", *extra])
    assert reason in capsys.readouterr().err


def test_cli_reports_an_unreachable_broker(capsys: pytest.CaptureFixture[str]) -> None:
    # A bound socket that never listens refuses connections, and nobody else can take its port.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        code = main(["run", "--broker", f"127.0.0.1:{port}", "--lighting", "1", "--messages", "1"])
    assert code == 1
    assert "MQTT error" in capsys.readouterr().err


def test_speedup_paces_by_simulated_time() -> None:
    fleet = build_fleet(
        {"lighting": 60, "water": 30}, seed=1, total_messages=90, start_ms=0, now_ms=0
    )
    assert fleet.reports_per_second() == pytest.approx(60 / 60 + 30 / 300)


def test_simulators_never_import_the_gateway() -> None:
    for path in SIMULATORS_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(name.split(".")[0] == "gateway" for name in names), path
