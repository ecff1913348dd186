"""Every simulated device kind against its shipped profile, and how the newer kinds behave.

The simulators never import the gateway; this test does. Each kind's payloads go through the
gateway's own topic resolution, decoder and normalizer, and must come out as exactly the truth
readings the simulator wrote: the same measurement, tags, time and fields, with the same types
and values (within the harness's tolerance for the fields it tolerates). A field missing from
the truth must be one the gateway dropped, so the simulator models a device fault (a lost echo,
a failed speed test) the way a correct gateway stores it, or one the frame's layout variant does
not declare (an alarm frame has no volume), which is simply absent.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.model import Drop
from gateway.profiles.compile import NOT_IN_VARIANT
from gateway.profiles.policy import OFFLINE_HASH_KEY, OFFLINE_POLICY, LoadPolicy, keyed_hash
from gateway.profiles.registry import ProfileRegistry, load_directory
from gateway.stages.decode import decoder_for
from gateway.stages.lineprotocol import encode_point
from gateway.stages.normalize import normalize
from simulators.clock import parse_start
from simulators.devices import KINDS
from simulators.fleet import OutgoingMessage, build_fleet
from simulators.gateway_spec import OFFLINE_HASH_KEY as SIMULATOR_DEFAULT_KEY
from simulators.gateway_spec import private_hash
from simulators.truth import TruthReading, encode_reading
from tests.harness import CONVERTED_FIELDS

PROFILES = Path(__file__).resolve().parent.parent / "device_profiles"
MONDAY_MIDNIGHT = "2026-11-23T00:00:00+07:00"
DAY_S = 86_400

# The shipped profile that reads each simulated kind (the topic must resolve to it).
PROFILE_OF_KIND = {
    "lighting": "mh-streetlight-json",
    "water": "mh-water-flow-json",
    "traffic": "mh-traffic-loop-json",
    "tanks": "mh-water-tank-tts",
    "quality-probes": "mh-water-quality-json",
    "radars": "mh-traffic-radar-json",
    "signals": "mh-traffic-signal-kv",
    "speed-probes": "mh-connectivity-speedtest-csv",
    "site-monitors": "mh-connectivity-site-bin",
    "cabinets": "mh-lighting-cabinet-kv",
    "pressure-loggers": "mh-water-pressure-csv",
    "lorawan-lights": "mh-streetlight-lorawan-cs",
    "anpr-cameras": "mh-traffic-anpr-json",
    "air-stations": "mh-environment-air-tlv",
    "water-meters": "mh-water-meter-tts",
    "river-probes": "mh-water-river-flags-tts",
    "parking-sensors": "mh-traffic-parking-codec-tts",
    "lorawan-meters": "mh-water-meter-cs",
}


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    # The simulators' default privacy key is the public key of the offline tools.
    return load_directory(PROFILES, OFFLINE_POLICY)


def simulate(
    kind: str, devices: int, days: float, start: str = MONDAY_MIDNIGHT, seed: int = 1
) -> list[OutgoingMessage]:
    """`days` of simulated time from `devices` devices of one kind."""
    reports = round(days * DAY_S / KINDS[kind].interval_s)
    fleet = build_fleet(
        {kind: devices},
        seed=seed,
        total_messages=devices * reports,
        start_ms=parse_start(start),
        now_ms=0,
    )
    return list(fleet.messages())


def by_device(messages: Iterable[OutgoingMessage]) -> dict[str, list[TruthReading]]:
    grouped: dict[str, list[TruthReading]] = defaultdict(list)
    for message in messages:
        for reading in message.readings:
            grouped[reading.device_id].append(reading)
    return grouped


def test_every_kind_has_a_shipped_profile(registry: ProfileRegistry) -> None:
    assert set(PROFILE_OF_KIND) == set(KINDS)
    assert set(PROFILE_OF_KIND.values()) <= {profile.id for profile in registry.profiles}


@pytest.mark.parametrize("kind", list(KINDS))
def test_payloads_decode_into_exactly_the_truth(registry: ProfileRegistry, kind: str) -> None:
    # Two simulated days: nights and peaks, and the faults each model produces now and then.
    messages = simulate(kind, devices=3, days=1 if KINDS[kind].interval_s < 300 else 2)
    decoders: dict[str, Any] = {}
    for message in messages:
        resolved = registry.resolve(message.topic, message.payload)  # models share a topic
        assert resolved is not None, message.topic
        profile = resolved.profile
        assert profile.id == PROFILE_OF_KIND[kind]
        decode = decoders.setdefault(profile.id, decoder_for(profile.decode_spec))
        drops: list[Drop] = []
        document = decode(message.payload)
        points = normalize(profile, document, resolved.segments, 0, drops)
        assert len(points) == len(message.readings), message.payload
        for point, reading in zip(points, message.readings, strict=True):
            encode_point(point)  # valid line protocol
            assert point.measurement == reading.measurement
            assert dict(point.tags) == reading.tags
            assert reading.tags["device_id"] == reading.device_id
            assert point.time_ns == reading.time_ns
            assert_same_fields(reading.measurement, dict(point.fields), reading.fields)
        profile_fields = {field.name for field in profile.fields}
        truth_fields = {name for reading in message.readings for name in reading.fields}
        dropped = {name for name, _ in drops}
        assert dropped <= profile_fields | {"(reading)"}, drops
        if len(message.readings) == 1:
            undeclared = {
                field.name
                for field in profile.fields
                if field.get(document, document) is NOT_IN_VARIANT
            }
            absent = profile_fields - truth_fields
            assert dropped == absent - undeclared, (message.payload, drops)


def assert_same_fields(measurement: str, stored: dict[str, Any], truth: dict[str, Any]) -> None:
    assert list(stored) == list(truth)
    for name, value in truth.items():
        assert type(stored[name]) is type(value), name
        if (measurement, name) in CONVERTED_FIELDS:  # as tests/harness.py compares them
            assert math.isclose(stored[name], value, rel_tol=1e-12), name
        else:
            assert stored[name] == value, name


@pytest.mark.parametrize("kind", list(KINDS))
def test_no_two_readings_share_a_series_and_a_timestamp(kind: str) -> None:
    """InfluxDB keeps one point per series and time: two such readings would merge into one."""
    keys = [
        (r.measurement, tuple(sorted(r.tags.items())), r.time_ns)
        for m in simulate(kind, devices=3, days=0.5)
        for r in m.readings
    ]
    assert len(keys) == len(set(keys))


def test_new_kinds_leave_existing_fleets_unchanged() -> None:
    existing = {"lighting": 2, "water": 2, "traffic": 2}
    start = parse_start(MONDAY_MIDNIGHT)
    alone = build_fleet(existing, seed=3, total_messages=60, start_ms=start, now_ms=0)
    mixed = build_fleet(
        {**dict.fromkeys(PROFILE_OF_KIND, 0), **existing},
        seed=3,
        total_messages=60,
        start_ms=start,
        now_ms=0,
    )
    assert [(m.topic, m.payload) for m in alone.messages()] == [
        (m.topic, m.payload) for m in mixed.messages()
    ]


# -- water: reservoirs and quality ------------------------------------------------------------


def local_hour_of(reading: TruthReading) -> float:
    return ((reading.time_ns // 10**9 + 7 * 3600) % DAY_S) / 3600


def test_reservoirs_drain_at_the_peaks_and_refill_at_night() -> None:
    morning, night = [], []
    for readings in by_device(simulate("tanks", devices=12, days=3)).values():
        levels = [(r, r.fields["level_m"]) for r in readings if "level_m" in r.fields]
        assert all(0.2 <= level <= 6.0 for _, level in levels)
        for (earlier, before), (_, after) in itertools.pairwise(levels):
            hour = local_hour_of(earlier)
            if 6.5 <= hour < 8.5:
                morning.append(after - before)
            elif 0.0 <= hour < 4.0:
                night.append(after - before)
    assert statistics.mean(morning) < 0 < statistics.mean(night)


def test_a_lost_echo_drops_level_and_distance_only() -> None:
    readings = [r for m in simulate("tanks", devices=20, days=3) for r in m.readings]
    no_echo = [r for r in readings if "level_m" not in r.fields]
    assert no_echo
    assert len(no_echo) < 0.02 * len(readings)
    assert all({"battery_v", "temperature_c", "rssi_dbm"} <= set(r.fields) for r in no_echo)


def test_water_quality_drifts_with_occasional_exceedances() -> None:
    readings = [
        r.fields for m in simulate("quality-probes", devices=10, days=7) for r in m.readings
    ]
    ph = [f["ph"] for f in readings]
    turbidity = [f["turbidity_ntu"] for f in readings]
    chlorine = [f["free_chlorine_mgl"] for f in readings]
    assert any(value < 6.0 for value in ph)
    assert any(value > 8.5 for value in ph)
    assert any(value > 2.0 for value in turbidity)
    assert any(value < 0.2 for value in chlorine)
    assert any(value > 1.0 for value in chlorine)
    within = [
        6.0 <= f["ph"] <= 8.5 and f["turbidity_ntu"] <= 2.0 and 0.2 <= f["free_chlorine_mgl"] <= 1.0
        for f in readings
    ]
    assert sum(within) > 0.8 * len(within)
    assert all(100 <= f["conductivity_uscm"] <= 1000 for f in readings)


# -- traffic: radars and signals ----------------------------------------------------------------


# Local hours of a Monday: (from, until) per period.
PERIODS = {"peak": (7.25, 8.25), "noon": (12.0, 13.0), "night": (0.0, 4.0)}


def test_radar_batches_grow_at_the_peaks_and_speeds_fall() -> None:
    sizes: dict[str, list[int]] = defaultdict(list)
    speeds: dict[str, list[float]] = defaultdict(list)
    for message in simulate("radars", devices=6, days=1):
        batch = orjson.loads(message.payload)["vehicles"]
        assert batch, "a batch always carries at least one vehicle"
        hour = local_hour_of(message.readings[0])
        for period, (start, end) in PERIODS.items():
            if start <= hour < end:
                sizes[period].append(len(batch))
                speeds[period] += [r.fields["speed_kmh"] for r in message.readings]
    assert statistics.mean(sizes["peak"]) > 2 * statistics.mean(sizes["noon"])
    assert statistics.mean(sizes["noon"]) > 2 * statistics.mean(sizes["night"])
    assert statistics.mean(speeds["peak"]) < 0.85 * statistics.mean(speeds["night"])


def test_radar_records_are_mostly_motorbikes_with_plausible_lengths() -> None:
    readings = [r for m in simulate("radars", devices=2, days=0.5) for r in m.readings]
    classes = [r.tags["vehicle_class"] for r in readings]
    assert classes.count("motorbike") > 0.6 * len(classes)
    assert set(classes) <= {"motorbike", "car", "truck", "bus"}
    assert all(1.5 <= r.fields["length_m"] <= 12.5 for r in readings)
    assert {r.tags["direction"] for r in readings} == {"in", "out"}


def test_signal_controllers_cycle_by_the_timetable() -> None:
    modes_by_hour: dict[int, set[int]] = defaultdict(set)
    stages_seen: dict[str, set[int]] = defaultdict(set)
    for reading in (r for m in simulate("signals", devices=6, days=1) for r in m.readings):
        fields = reading.fields
        modes_by_hour[int(local_hour_of(reading))].add(int(fields["mode"]))
        if fields["mode"] == 1:  # NORMAL: a plan runs
            assert fields["cycle_s"] in {60, 90, 100, 120}
            assert 0 <= fields["cycle_time_s"] < fields["cycle_s"]
            assert fields["stage"] >= 1
            stages_seen[reading.device_id].add(int(fields["stage"]))
        else:
            assert (fields["cycle_s"], fields["cycle_time_s"]) == (0, 0)
    assert modes_by_hour[2] == {2}  # flashing amber at night
    assert 1 in modes_by_hour[7]
    assert all(len(stages) >= 2 for stages in stages_seen.values())


# -- connectivity -------------------------------------------------------------------------------


def test_speed_probes_scatter_around_the_town_targets() -> None:
    downloads: dict[str, list[float]] = defaultdict(list)
    for reading in (r for m in simulate("speed-probes", devices=40, days=2) for r in m.readings):
        assert reading.tags["technology"] in {"4G", "5G", "FTTH"}
        assert reading.tags["operator"] in {"viettel", "vinaphone", "mobifone", "vnpt", "fpt"}
        if "download_mbps" in reading.fields:
            downloads[reading.tags["technology"]].append(reading.fields["download_mbps"])
    assert 25 <= statistics.median(downloads["4G"]) <= 50  # around the 36 Mb/s mobile target
    assert statistics.median(downloads["5G"]) > 2 * 36
    assert 75 <= statistics.median(downloads["FTTH"]) <= 130  # around the 91 Mb/s fixed target


def test_a_5g_probe_sometimes_falls_back_to_4g() -> None:
    technologies: dict[str, set[str]] = defaultdict(set)
    for reading in (r for m in simulate("speed-probes", devices=40, days=1) for r in m.readings):
        technologies[reading.device_id].add(reading.tags["technology"])
    assert {"4G", "5G"} in technologies.values()
    assert all(techs in ({"4G"}, {"5G"}, {"FTTH"}, {"4G", "5G"}) for techs in technologies.values())


def test_mains_failures_run_the_battery_down_and_mains_recharges_it() -> None:
    outages = 0
    for readings in by_device(simulate("site-monitors", devices=20, days=7)).values():
        for before, after in itertools.pairwise(readings):
            if not before.fields["mains_present"] and not after.fields["mains_present"]:
                assert after.fields["battery_pct"] <= before.fields["battery_pct"]
                assert after.fields["battery_v"] < 52.0
            if before.fields["mains_present"] and not after.fields["mains_present"]:
                outages += 1
            if after.fields["mains_present"]:
                assert after.fields["battery_v"] >= 53.5
                assert after.fields["battery_pct"] >= before.fields["battery_pct"]
    assert outages >= 5


# -- traffic: plate cameras ---------------------------------------------------------------------

# Vietnamese plates: province code, series (a letter for cars, buses and trucks; a letter and a
# digit for motorbikes), then the number as 123.45.
PLATE = re.compile(r"^\d{2}(?:[A-Z]|[A-Z][1-9])-\d{3}\.\d{2}$")
GOLDEN_PLATE, GOLDEN_HASH = "29A-123.45", "9363fd0c98f284b5"  # tests/golden/mh-traffic-anpr-json


def stored_fields(registry: ProfileRegistry, message: OutgoingMessage) -> dict[str, Any]:
    resolved = registry.resolve(message.topic)
    assert resolved is not None, message.topic
    decode = decoder_for(resolved.profile.decode_spec)
    points = normalize(resolved.profile, decode(message.payload), resolved.segments, 0, [])
    assert len(points) == 1
    return dict(points[0].fields)


def test_the_simulators_hash_plates_as_the_gateway_does() -> None:
    assert SIMULATOR_DEFAULT_KEY == OFFLINE_HASH_KEY
    assert private_hash(SIMULATOR_DEFAULT_KEY, GOLDEN_PLATE) == GOLDEN_HASH
    key = b"an operator's key, 32 bytes long"
    assert private_hash(key, GOLDEN_PLATE) == keyed_hash(key)(GOLDEN_PLATE) != GOLDEN_HASH


def test_the_plate_truth_follows_the_gateway_key() -> None:
    key = b"the demo's random key, 32 bytes."
    fleet = build_fleet(
        {"anpr-cameras": 2}, seed=1, total_messages=40,
        start_ms=parse_start(MONDAY_MIDNIGHT), now_ms=0, privacy_key=key,
    )  # fmt: skip
    keyed = load_directory(PROFILES / "traffic", LoadPolicy(hash_key=key))
    offline = load_directory(PROFILES / "traffic", OFFLINE_POLICY)
    for message in fleet.messages():
        (truth,) = message.readings
        assert stored_fields(keyed, message) == truth.fields
        assert stored_fields(offline, message)["plate_hash"] != truth.fields["plate_hash"]


def test_plate_cameras_never_put_the_plate_or_the_snapshot_in_the_truth() -> None:
    for message in simulate("anpr-cameras", devices=2, days=0.1):
        payload = orjson.loads(message.payload)
        assert PLATE.match(payload["plate"]), payload["plate"]
        assert 0.80 <= payload["conf"] <= 0.99
        assert payload["snapshot"].startswith("https://cam.local/img/")
        (truth,) = message.readings
        line = encode_reading(truth)
        assert payload["plate"].encode() not in line
        assert b"snapshot" not in line
        assert payload["snapshot"].encode() not in line
        assert set(truth.fields) == {"plate_hash", "confidence", "speed_kmh"}


def test_plate_cameras_see_the_traffic_day() -> None:
    vehicles_per_hour: dict[str, float] = {}
    readings = [r for m in simulate("anpr-cameras", devices=4, days=1) for r in m.readings]
    for period, (start, end) in PERIODS.items():
        seen = sum(start <= local_hour_of(r) < end for r in readings)
        vehicles_per_hour[period] = seen / (end - start)
    assert vehicles_per_hour["peak"] > 2 * vehicles_per_hour["noon"]
    assert vehicles_per_hour["noon"] > 4 * vehicles_per_hour["night"]
    classes = Counter(r.tags["vehicle_class"] for r in readings)
    assert classes["motorbike"] > 0.6 * classes.total()


def test_the_same_vehicles_come_back_and_pass_other_cameras() -> None:
    cameras_of_plate: dict[str, set[str]] = defaultdict(set)
    visits: Counter[tuple[str, str]] = Counter()
    for reading in (r for m in simulate("anpr-cameras", devices=3, days=1) for r in m.readings):
        plate_hash = str(reading.fields["plate_hash"])
        cameras_of_plate[plate_hash].add(reading.device_id)
        visits[reading.device_id, plate_hash] += 1
    assert max(visits.values()) >= 5  # a commuter, morning and evening, at one camera
    assert sum(len(cameras) == 3 for cameras in cameras_of_plate.values()) > 100


def test_a_plate_camera_stops_at_now_however_few_vehicles_came() -> None:
    now_ms = parse_start("2026-11-24T03:00:00+07:00")  # night: vehicles minutes apart
    fleet = build_fleet(
        {"anpr-cameras": 3}, seed=1, total_messages=300, start_ms=None, now_ms=now_ms
    )
    times_ns = [r.time_ns for m in fleet.messages() for r in m.readings]
    assert max(times_ns) <= now_ms * 1_000_000
    assert len(times_ns) < 300  # the night ended the run, not the message total
