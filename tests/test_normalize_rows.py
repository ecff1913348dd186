"""The generated normalizers against the interpreter they replaced (tests/reference_normalize.py).

`normalize` (Points) and `rows_normalizer` (the pipeline's lines) are code generated per profile
(gateway/stages/normalize.py). For the same document both must give what the plain interpreter
gives: the same points (or the lines, series keys, times and tags of those points), the same
drops in the same order, and the same DecodeError. Checked on every golden payload, on random
documents at each shipped profile's paths, and on hand-written profiles that reach the branches the
shipped ones do not (required fields, clock tolerances on both sides, hashed and constant tags,
value maps, scales, int fields fed fractions, bad topic tag values).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cli import read_golden
from gateway.errors import DecodeError
from gateway.model import Drop, Point, Readings
from gateway.profiles.compile import NO_READING, CompiledProfile, _iso8601_parser
from gateway.profiles.policy import OFFLINE_POLICY
from gateway.profiles.registry import load_directory, load_text
from gateway.stages.decode import decoder_for
from gateway.stages.lineprotocol import encode_point, series_key
from gateway.stages.normalize import Normalizer, normalize, rows_normalizer
from tests.reference_normalize import reference_normalize
from tests.test_decode_properties import _paths, _place, json_values, leaves

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = load_directory(ROOT / "device_profiles", OFFLINE_POLICY).profiles
NOW_NS = 1_795_482_000 * 10**9
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_BASE = """\
version: 1
domain: water
match:
  topic: t/{district}/{device_id}/up
decode:
  format: json
output:
  measurement: meter
"""

# Hand-written profiles: every kind of field, tag and time rule the generator has a branch for.
HAND_WRITTEN = {
    "edge-required": """\
time: {path: ts, format: epoch_ms, max_future_s: 60, max_past_s: 3600}
tags:
  district: {topic: district}
  device_id: {topic: device_id}
  site: {value: "plant a"}
fields:
  level_m: {path: level, type: float, unit: cm, canonical_unit: m, min: 0, max: 10, required: true}
  count: {path: n, type: int, min: -5, max: 5}
  ok: {path: ok, type: bool}
  state: {path: s, type: string}
  mode: {path: m, type: int, map: {"on": 1, "off": 0}}
  scaled: {path: raw, type: float, scale: 0.1, offset: -3}
  nested: {path: a.b.0, type: float}
""",
    "edge-readings": """\
readings: {path: items}
time: {path: $.ts, format: iso8601, timezone: Asia/Ho_Chi_Minh, max_future_s: 10}
tags:
  district: {topic: district}
  lane: {path: lane}
  plate: {path: plate, privacy: hash}
  zone: {value: "z,1 = x"}
fields:
  speed: {path: v, type: float, min: 0, required: true}
  axles: {path: axles, type: int}
  owner: {path: owner, type: string, privacy: hash}
  batch: {path: $.batch, type: int, max: 100}
""",
    "edge-receive-time": """\
readings: {path: items}
time: {source: receive}
tags:
  device_id: {topic: device_id}
fields:
  v: {path: v, type: float}
  flag: {path: f, type: bool, required: true}
""",
    # Each step of the field rule with the others: maps in front of every type (keys the
    # random leaves hit: "ON", "1", ""), then a hash; an int field's fraction after a scale; a
    # conversion that overflows; int64 tighter than the profile's range.
    "edge-rules": """\
time: {source: receive}
tags:
  device_id: {topic: device_id}
fields:
  half: {path: h, type: int, scale: 0.5, min: -10, max: 10}
  pct: {path: p, type: float, scale: 0.01, max: 0.5,
        map: {"ON": 10, "1": 90.5, "true": true, "": 1.0e308}}
  word:
    {path: w, type: string, map: {"1": "one", "true": "yes", "2.5": "two", "ON": 3}, privacy: hash}
  state: {path: s, type: bool, map: {"ON": true, "0": 0, "1": 2}}
  level: {path: l, type: int, map: {"ON": 1, "1": 2.5, "": -3}, min: 0}
  huge: {path: u, type: float, scale: 1.0e10}
  big: {path: b, type: int, min: -1.0e30, max: 1.0e30}
  note: {path: n, type: string}
""",
}


def _hand_written(name: str, text: str) -> CompiledProfile:
    return load_text(f"id: {name}\n{_BASE}{text}", f"{name}.yaml", OFFLINE_POLICY)


HAND = {name: _hand_written(name, text) for name, text in HAND_WRITTEN.items()}
PROFILES = [*SHIPPED, *HAND.values()]


def _readings(points: list[Point]) -> Readings:
    """The Readings the normalizer must give for `points`."""
    device = dict(points[0].tags).get("device_id", "") if points else ""
    return Readings(
        [encode_point(point) for point in points],
        [series_key(point.measurement, point.tags) for point in points],
        [point.time_ns for point in points],
        device,
    )


def _outcome(profile: CompiledProfile, document: Any, segments: dict[str, str], now: int) -> Any:
    """What the reference gives: its points' lines, keys, times and tags, its drops, or its
    error."""
    drops: list[Drop] = []
    try:
        points = reference_normalize(profile, document, segments, now, drops)
    except DecodeError as exc:
        return ("error", exc.reason, exc.detail, drops)
    return ("points", points, _readings(points), drops)


def assert_same_as_reference(
    profile: CompiledProfile, document: Any, segments: dict[str, str], now: int = NOW_NS
) -> None:
    expected = _outcome(profile, document, segments, now)
    for variant in ("points", "rows"):
        assert _generated(variant, profile, document, segments, now) == expected, variant


def _generated(
    variant: str,
    profile: CompiledProfile,
    document: Any,
    segments: dict[str, str],
    now: int,
    *,
    normalizer: Normalizer | None = None,
) -> Any:
    """The generated variant's outcome, in the shape of _outcome's (rows: from `normalizer`,
    a new one by default)."""
    drops: list[Drop] = []
    try:
        if variant == "points":
            points = normalize(profile, document, segments, now, drops)
            return ("points", points, _readings(points), drops)
        rows = (normalizer or rows_normalizer(profile))(document, segments, now, drops)
    except DecodeError as exc:
        return ("error", exc.reason, exc.detail, drops)
    points = reference_normalize(profile, document, segments, now, [])  # rows have no Points
    return ("points", points, rows, drops)


def _segments(profile: CompiledProfile) -> dict[str, str]:
    return {name: f"{name}-1" for name in profile.pattern.segment_names}


def _golden_cases() -> list[Any]:
    cases = []
    for file in sorted((ROOT / "tests" / "golden").glob("*.json")):
        for case in read_golden(file):
            cases.append(pytest.param(file.stem, case, id=f"{file.stem}: {case['name']}"))
    return cases


@pytest.mark.parametrize(("profile_id", "case"), _golden_cases())
def test_golden_payloads_normalize_as_the_reference_does(
    profile_id: str, case: dict[str, Any]
) -> None:
    [profile] = [p for p in SHIPPED if p.id == profile_id]
    segments = profile.pattern.match(case["topic"])
    if segments is None:
        pytest.skip("a golden case about an unmatched topic")
    try:
        document = decoder_for(profile.decode_spec)(case["payload"].encode())
    except DecodeError:
        return  # a decode failure never reaches normalize
    received = case.get("received", NOW_NS // 10**9)
    assert_same_as_reference(profile, document, segments, int(received * 10**9))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.id)
@SETTINGS
@given(data=st.data())
def test_random_documents_normalize_as_the_reference_does(
    profile: CompiledProfile, data: st.DataObject
) -> None:
    document: Any = {}
    paths = _paths(profile) if Path(profile.file).exists() else _hand_written_paths(profile)
    for path in paths:
        if data.draw(st.booleans()):
            document = _place(document, path.split("."), data.draw(leaves))
    now = data.draw(st.sampled_from([0, NOW_NS, NOW_NS + 7]))
    assert_same_as_reference(profile, document, _segments(profile), now)


def _hand_written_paths(profile: CompiledProfile) -> list[str]:
    """The payload paths of a hand-written profile (it has no file for _paths to read)."""
    keys = [field.path for field in profile.fields] + [tag.path for tag in profile.tags]
    paths = [".".join(str(key) for key in path) for _, path in keys if path]
    paths += ["ts", "lane", "plate"]
    if profile.readings is not None:
        paths = ["batch", "ts"] + [f"items.0.{path}" for path in paths]
    return paths


@SETTINGS
@given(document=json_values, district=st.sampled_from(["d", "bad\\", "a,b", "x y", ""]))
def test_any_structure_and_bad_topic_tags_normalize_as_the_reference_does(
    document: Any, district: str
) -> None:
    for profile in HAND.values():
        segments = {**_segments(profile), "district": district}
        assert_same_as_reference(profile, document, segments)


@pytest.mark.parametrize(
    "document",
    [
        {"ts": 1_795_482_000_000, "level": 250, "n": 2.0, "ok": 1, "s": 'a"b\\c', "m": "on"},
        {"ts": 1_795_482_000_000, "level": 250, "n": 2.5, "raw": 12, "a": {"b": [1.5]}},
        {"ts": 1_795_482_000_000, "level": -1},  # required field out of range: no reading
        {"ts": 1_795_482_000_000, "n": 1},  # required field missing
        {"ts": 1_999_999_999_000, "level": 1},  # clock in the future: receive time, flagged
        {"ts": 1_000_000_000_000, "level": 1},  # clock in the past
        {"ts": "soon", "level": 1},  # bad timestamp
        {"ts": 1_795_482_000_000, "level": True, "n": 9, "m": "dim"},  # all dropped
    ],
)
def test_each_branch_of_the_hand_written_profile(document: dict[str, Any]) -> None:
    profile = HAND["edge-required"]
    assert_same_as_reference(profile, document, _segments(profile))


@pytest.mark.parametrize(
    "document",
    [
        {"h": 4, "p": "ON", "w": 1, "s": "ON", "l": "ON", "u": 1.5, "b": 2**62},  # all kept
        {"h": 3, "p": "1", "w": True, "s": "0", "l": "", "u": 1.7e308, "b": -(2**63) - 1},
        {"h": 3.0, "p": True, "w": 2.5, "s": "1", "l": 1, "u": float("nan"), "b": 1.5},
        {"h": 40, "p": "", "w": "ON", "s": False, "l": True, "u": True, "b": 2**63},
        {"h": float("inf"), "p": 10, "w": "x", "s": 1, "l": "1", "u": "1", "b": 1e19},
        {"h": "4", "p": "true", "w": None, "s": "ON", "l": "ON", "b": 9.0},  # repeats: memo
        {"n": "x" * 65536, "h": 4.0, "u": -1.7e308},  # InfluxDB's longest string field
        {"n": "x" * 65537, "u": 1.7e298},
    ],
)
def test_each_step_of_the_field_rule(document: dict[str, Any]) -> None:
    """Sentinel aside (below), each step of gateway/stages/field_rules.py and its drop reason,
    with one normalizer kept over the documents so the memo of scaled values answers too."""
    profile = HAND["edge-rules"]
    assert_same_as_reference(profile, document, _segments(profile))
    normalizer = _KEPT.setdefault(profile.id, rows_normalizer(profile))
    expected = _outcome(profile, document, _segments(profile), NOW_NS)
    kept = _generated("rows", profile, document, _segments(profile), NOW_NS, normalizer=normalizer)
    assert kept == expected


_KEPT: dict[str, Normalizer] = {}


def _sentinel_cases() -> list[Any]:
    """(profile, payload path) of every shipped field a binary layout may set to NO_READING."""
    return [
        pytest.param(profile, field.path[1], id=f"{profile.id}: {field.name}")
        for profile in SHIPPED
        for field in profile.fields
        if field.sentinel
    ]


@pytest.mark.parametrize(("profile", "keys"), _sentinel_cases())
def test_a_sentinel_drops_its_field_as_the_reference_does(
    profile: CompiledProfile, keys: tuple[str | int, ...]
) -> None:
    document = _place({}, [str(key) for key in keys], NO_READING)
    drops: list[Drop] = []
    with pytest.raises(DecodeError):  # the sentinel alone: no valid field
        rows_normalizer(profile)(document, _segments(profile), NOW_NS, drops)
    assert "sentinel" in {reason for _, reason in drops}
    assert_same_as_reference(profile, document, _segments(profile))


VALID_DOCUMENTS = {
    "edge-required": {"ts": 1_795_482_000_000, "level": 250, "n": 1},
    "edge-readings": {
        "ts": "2026-11-24T08:00:00",
        "batch": 3,
        "items": [
            {"v": 1.0, "lane": 2, "plate": "29A-123.45", "owner": "x"},
            {"v": -1, "lane": "2"},  # required speed out of range: the reading goes
            {"v": 2, "lane": {"x": 1}, "axles": 2.0},  # a structure is no tag value
            {"v": 3, "lane": "bad\\", "plate": 7},
        ],
    },
    "edge-receive-time": {"items": [{"v": 1.5, "f": True}, {"v": 2, "f": 1}, {"f": 0}, {"v": 1}]},
}


@pytest.mark.parametrize("district", ["d", "bad\\", "a,b", "x y", "", "new\nline"])
@pytest.mark.parametrize("profile_id", sorted(VALID_DOCUMENTS))
def test_topic_tags_good_and_bad_with_valid_readings(profile_id: str, district: str) -> None:
    """Readings that survive, so the tag code after the fields runs, with each kind of topic
    value line protocol cannot carry."""
    [profile] = [p for p in PROFILES if p.id == profile_id]
    segments = {**_segments(profile), "district": district}
    assert_same_as_reference(profile, VALID_DOCUMENTS[profile_id], segments)


def test_one_normalizer_for_many_devices_and_values_keeps_them_apart() -> None:
    """The generated code caches tags by their values: one normalizer fed messages of many
    devices, districts and payload tag values in turn (good and bad, repeated) must give each
    message exactly what the reference gives."""
    for profile_id, document in VALID_DOCUMENTS.items():
        [profile] = [p for p in PROFILES if p.id == profile_id]
        rows = rows_normalizer(profile)
        for round_ in range(3):
            for device in ("a", "b", "a,b", "c"):
                for district in ("d", "e", "bad\\", "d"):
                    segments = {**_segments(profile), "device_id": device, "district": district}
                    now = NOW_NS + round_
                    expected = _outcome(profile, document, segments, now)
                    got = _generated("rows", profile, document, segments, now, normalizer=rows)
                    assert got == expected, (device, district)


@SETTINGS
@given(
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    zone=st.sampled_from(["Asia/Ho_Chi_Minh", "Europe/Berlin", "America/New_York", "UTC"]),
    offset=st.sampled_from(["", "Z", "+07:00", "-03:30"]),
)
def test_iso8601_times_as_replace_and_subtract(moment: datetime, zone: str, offset: str) -> None:
    """The parser subtracts the zone's offset itself (replace() was slow): the same instant as
    moment.replace(tzinfo=zone) - epoch, across DST gaps and folds."""
    text = moment.isoformat() + offset
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(zone))
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    expected = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    assert _iso8601_parser(zone)(text) == expected
