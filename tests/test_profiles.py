"""Profile loading, validation messages, topic matching and the golden vectors of every profile."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from gateway.decode import decoder_for
from gateway.errors import DecodeError, ProfileError
from gateway.lineprotocol import encode_point
from gateway.model import Point
from gateway.normalize import Drop, normalize
from gateway.profiles.compile import CompiledProfile
from gateway.profiles.registry import ProfileRegistry, load_directory, load_file
from gateway.profiles.schema import DecodeSpec, ProfileSpec
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
    document = decoder_for(profile.decode_spec)(payload)
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
        "application/+/device/+/event/up",
        "city/lighting/+/+/cabinet",
        "city/lighting/+/+/telemetry",
        "city/traffic/+/+/counts",
        "city/water/+/+/pressure",
        "city/water/+/+/telemetry",
    ]


def _decoder(spec: dict[str, Any]) -> Any:
    adapter: TypeAdapter[Any] = TypeAdapter(DecodeSpec)  # type: ignore[arg-type]  # Annotated union: valid for pydantic, not expressible to mypy
    return decoder_for(adapter.validate_python(spec))


LAYOUT = {
    "byte_order": "little",
    "fields": {
        "temp": {"offset": 0, "type": "i16"},
        "volts": {"offset": 2, "type": "f32"},
        "flags": {"offset": 6, "type": "u8", "bits": "4:4"},
        "low": {"offset": 6, "type": "u8", "bits": "0:1"},
    },
}
FRAME = struct.pack("<hfB", -125, 3.5, 0b1010_0001)


def assert_reasons(decode: Any, cases: list[tuple[bytes, str]]) -> None:
    """Each payload fails to decode with exactly the given reason slug."""
    for payload, reason in cases:
        with pytest.raises(DecodeError) as raised:
            decode(payload)
        assert raised.value.reason == reason, payload


def test_csv_decoder_types_cells_and_counts_columns() -> None:
    decode = _decoder({"format": "csv", "delimiter": ";", "columns": ["ts", "p", "state", "t"]})
    assert decode(b'1795482000; 2.5 ;"ON;1";\n') == {
        "ts": 1795482000,
        "p": 2.5,
        "state": "ON;1",
        "t": None,
    }
    assert_reasons(
        decode,
        [
            (b"1;2", "wrong_column_count"),
            (b"1;2;3;4\n5;6;7;8", "invalid_csv"),
            (b"\xff;1;2;3", "invalid_text"),
        ],
    )


def test_keyvalue_decoder() -> None:
    decode = _decoder({"format": "keyvalue", "pair_separator": "&", "kv_separator": ":"})
    assert decode(b" V : 230.1 & I:1e-3 & STATE:ON & n:-7 &") == {
        "V": 230.1,
        "I": 0.001,
        "STATE": "ON",
        "n": -7,
    }
    with pytest.raises(DecodeError, match="invalid_keyvalue"):
        decode(b"V:1&oops")


def test_raw_decoder() -> None:
    assert _decoder({"format": "raw", "value_type": "number"})(b" 42\n") == {"value": 42}
    assert _decoder({"format": "raw", "value_type": "number"})(b"-4.5") == {"value": -4.5}
    assert _decoder({"format": "raw", "value_type": "text"})(b"OPEN\n") == {"value": "OPEN"}
    for payload in (b"nan", b"1_000", b"12 V", b""):
        with pytest.raises(DecodeError, match="invalid_number"):
            _decoder({"format": "raw", "value_type": "number"})(payload)


def test_binary_decoder_reads_signed_floats_and_bit_fields() -> None:
    decode = _decoder({"format": "binary", **LAYOUT})
    assert decode(FRAME + b"\x99") == {"temp": -125, "volts": 3.5, "flags": 0b1010, "low": 1}
    with pytest.raises(DecodeError, match="too_short: need 7 bytes, got 6"):
        decode(FRAME[:6])


def test_json_envelope_with_hex_keeps_the_rest_of_the_document() -> None:
    spec = {"format": "json", "binary": {"path": "m.raw", "encoding": "hex", "layout": LAYOUT}}
    decode = _decoder(spec)
    document = decode(json.dumps({"m": {"raw": FRAME.hex()}, "rssi": -90}).encode())
    assert document["payload"]["temp"] == -125
    assert document["rssi"] == -90
    assert_reasons(
        decode,
        [
            (b'{"m": {"raw": "zz"}}', "invalid_hex"),
            (b'{"m": {"raw": 5}}', "missing_field"),
            (b"[1]", "invalid_envelope"),
        ],
    )


def test_tts_v3_envelope() -> None:
    uplink = {
        "end_device_ids": {"device_id": "sl-lw-0001", "dev_eui": "70B3D57ED0001A2B"},
        "received_at": "2026-11-24T01:00:00.123456789Z",
        "uplink_message": {
            "f_port": 10,
            "frm_payload": base64.b64encode(FRAME).decode(),
            "rx_metadata": [{"rssi": -101, "snr": 6.25}],
        },
    }
    document = _decoder({"format": "tts_v3", "layout": LAYOUT})(json.dumps(uplink).encode())
    assert document["payload"] == {"temp": -125, "volts": 3.5, "flags": 10, "low": 1}
    assert document["uplink_message"]["rx_metadata"][0]["rssi"] == -101


def test_device_id_may_come_from_the_payload(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    text = VALID.replace("{device_id}/up", "up").replace(
        "district: {topic: district}", "district: {topic: district}\n  device_id: {path: dev}"
    )
    file.write_text(text, encoding="utf-8")
    profile = load_file(file)
    [point] = normalize(profile, {"ts": 1, "level": 1, "dev": "x-1"}, {"district": "d"}, 0, [])
    assert point.tags == (("device_id", "x-1"), ("district", "d"))


LORAWAN = (
    VALID.replace("t/{district}/{device_id}/up", "lw/{eui}/up")
    .replace(
        "decode:\n  format: json\n",
        "decode:\n  format: chirpstack_v4\n  layout:\n    fields:\n"
        "      level: {offset: 0, type: u16, bits: '0:12'}\n",
    )
    .replace("district: {topic: district}", "device_id: {path: deviceInfo.devEui}")
)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("bits: '0:12'", "bits: '8:12'"),
            "p.yaml:10: decode.layout.fields.level: bits '8:12' do not fit",
        ),
        (("type: u16, bits: '0:12'", "type: f32, bits: '0:1'"), "bits only apply to integer"),
        (
            ("offset: 0", "offset: -1"),
            "p.yaml:10: decode.layout.fields.level.offset: Input should be greater",
        ),
        (("offset: 0,", "offset: 0, scale: 2,"), "layout.fields.level.scale: unknown key"),
        (("format: chirpstack_v4", "format: protobuf"), "p.yaml:6: decode: Input tag 'protobuf'"),
        (
            ("  layout:\n", "  layout: {}\n  x:\n"),
            "p.yaml:8: decode.layout.fields: required key is missing",
        ),
        (("device_id: {path: deviceInfo.devEui}", "rssi: {path: r}"), "p.yaml:5: match.topic: the"),
    ],
)
def test_broken_decode_spec_names_line_and_field(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    file = tmp_path / "p.yaml"
    (tmp_path / "ok.yaml").write_text(LORAWAN, encoding="utf-8")
    load_file(tmp_path / "ok.yaml")
    file.write_text(LORAWAN.replace(*edit), encoding="utf-8")
    with pytest.raises(ProfileError) as raised:
        load_file(file)
    assert expected in str(raised.value).replace(str(tmp_path) + "/", "")


def test_every_decode_key_is_documented_in_the_json_schema() -> None:
    definitions = ProfileSpec.model_json_schema()["$defs"]
    undocumented = [
        f"{name}.{key}"
        for name, definition in definitions.items()
        if "DecodeSpec" in name or "Binary" in name
        for key, prop in definition.get("properties", {}).items()
        if "description" not in prop
    ]
    assert undocumented == []
