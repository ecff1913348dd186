"""Profile loading, validation messages, topic matching and the golden vectors of every profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.decode import decoder_for
from gateway.errors import DecodeError, ProfileError
from gateway.lineprotocol import encode_point
from gateway.model import Point
from gateway.normalize import Drop, normalize
from gateway.profiles.compile import CompiledProfile
from gateway.profiles.registry import ProfileRegistry, load_directory, load_file
from gateway.profiles.topics import parse_pattern

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "device_profiles"
GOLDEN = Path(__file__).parent / "golden"

VALID = """\
id: test-meter
version: 1
domain: water
match:
  topic: t/{district}/{device_id}/up
decode:
  format: json
time:
  path: ts
  format: epoch_s
output:
  measurement: meter
tags:
  district: {topic: district}
fields:
  level_m: {path: level, type: float, unit: cm, canonical_unit: m}
"""


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return load_directory(PROFILES)


def golden_cases() -> list[Any]:
    cases = []
    for file in sorted(GOLDEN.glob("*.json")):
        for case in json.loads(file.read_text(encoding="utf-8")):
            cases.append(pytest.param(file.stem, case, id=f"{file.stem}: {case['name']}"))
    return cases


def test_every_shipped_profile_has_golden_vectors(registry: ProfileRegistry) -> None:
    assert {p.id for p in registry.profiles} == {f.stem for f in GOLDEN.glob("*.json")}


@pytest.mark.parametrize(("profile_id", "case"), golden_cases())
def test_golden_vector(registry: ProfileRegistry, profile_id: str, case: dict[str, Any]) -> None:
    resolved = registry.resolve(case["topic"])
    assert resolved is not None
    assert resolved.profile.id == profile_id
    drops: list[Drop] = []
    payload = case["payload"].encode()
    if "dead_letter" in case:
        with pytest.raises(DecodeError) as raised:
            _run_profile(resolved.profile, payload, resolved.segments, drops)
        assert raised.value.reason == case["dead_letter"]
        return
    points = _run_profile(resolved.profile, payload, resolved.segments, drops)
    assert [encode_point(point) for point in points] == case["lines"]
    assert [list(drop) for drop in drops] == case["drops"]


def _run_profile(
    profile: CompiledProfile, payload: bytes, segments: dict[str, str], drops: list[Drop]
) -> list[Point]:
    document = decoder_for(profile.format)(payload)
    return normalize(profile, document, segments, 0, drops)


def test_unit_conversion_uses_pint(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(VALID, encoding="utf-8")
    profile = load_file(file)
    segments = {"district": "d", "device_id": "x"}
    [point] = normalize(profile, {"ts": 10, "level": 250}, segments, 0, [])
    assert point.fields == {"level_m": 2.5}
    assert point.time_ns == 10 * 10**9


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("version: 1", "version: 1\ncolour: red"), "p.yaml:3: colour: unknown key"),
        (("format: epoch_s", "format: epoch_days"), "p.yaml:10: time.format: Input should be"),
        (("unit: cm", "unit: furlongs_per_fortnight"), "p.yaml: cannot convert"),
        (("{device_id}/up", "up"), "p.yaml:5: match.topic: the pattern must capture"),
        (("type: float", "type: decimal"), "p.yaml:16: fields.level_m.type: Input should be"),
        (("{topic: district}", "{topic: ward}"), "tag 'district' reads topic segment {ward}"),
        (("  path: ts\n", ""), "p.yaml:8: time: time.source 'payload' needs time.path"),
        (("domain: water", "domain: 3"), "p.yaml:3: domain: Input should be"),
    ],
)
def test_broken_profile_names_file_line_and_field(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(VALID.replace(*edit), encoding="utf-8")
    with pytest.raises(ProfileError) as raised:
        load_file(file)
    assert expected in str(raised.value).replace(str(tmp_path) + "/", "")


def test_not_yaml_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text("id: x\nfields: [unclosed\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"p\.yaml:3: not valid YAML"):
        load_file(file)


def test_overlapping_patterns_name_both_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID, encoding="utf-8")
    other = VALID.replace("test-meter", "other").replace("t/{district}/", "t/{zone}/")
    other = other.replace("district: {topic: district}", "zone: {topic: zone}")
    (tmp_path / "b.yaml").write_text(other, encoding="utf-8")
    with pytest.raises(ProfileError) as raised:
        load_directory(tmp_path)
    message = str(raised.value)
    assert "a.yaml" in message
    assert "b.yaml" in message
    assert "can match the same topics" in message


def test_topic_patterns() -> None:
    pattern = parse_pattern("city/{domain}/{device_id}/up")
    assert pattern.subscription == "city/+/+/up"
    assert pattern.match("city/water/wm-1/up") == {"domain": "water", "device_id": "wm-1"}
    assert pattern.match("city/water/wm-1/down") is None
    assert pattern.match("city/water/wm-1/up/extra") is None
    assert pattern.match("city//wm-1/up") is None
    assert pattern.overlaps(parse_pattern("city/water/{id}/up"))
    assert not pattern.overlaps(parse_pattern("town/{a}/{b}/up"))
    with pytest.raises(ValueError, match="wildcards"):
        parse_pattern("city/+/up")


def test_registry_resolves_and_caches(registry: ProfileRegistry) -> None:
    topic = "city/water/di-su/wm-0001/telemetry"
    first = registry.resolve(topic)
    assert first is not None
    assert first.profile.id == "mh-water-flow-json"
    assert first.segments == {"district": "di-su", "device_id": "wm-0001"}
    assert registry.resolve(topic) is first
    assert registry.resolve("city/unknown/x") is None
    assert registry.subscriptions == [
        "city/lighting/+/+/telemetry",
        "city/traffic/+/+/counts",
        "city/water/+/+/telemetry",
    ]
