"""Profile loading, validation messages, topic matching, clock tolerance, float rounding and the
golden vectors of every profile."""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from gateway.cli import golden_failures, read_golden
from gateway.errors import DecodeError, ProfileError
from gateway.model import Drop
from gateway.profiles.compile import CompiledProfile
from gateway.profiles.policy import OFFLINE_POLICY
from gateway.profiles.registry import ProfileRegistry, load_directory, load_file
from gateway.profiles.schema import DecodeSpec, ProfileSpec
from gateway.profiles.topics import parse_pattern
from gateway.stages.decode import decoder_for
from gateway.stages.lineprotocol import encode_point
from gateway.stages.normalize import normalize

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "device_profiles"
GOLDEN = Path(__file__).parent / "golden"
BROKEN = Path(__file__).parent / "broken_profiles"

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
    # The public offline key, as `gateway profiles test` uses: golden hashes are reproducible.
    return load_directory(PROFILES, OFFLINE_POLICY)


def golden_cases() -> list[Any]:
    cases = []
    for file in sorted(GOLDEN.glob("*.json")):
        for case in read_golden(file):
            cases.append(pytest.param(file.stem, case, id=f"{file.stem}: {case['name']}"))
    return cases


def test_every_shipped_profile_has_golden_vectors(registry: ProfileRegistry) -> None:
    assert {p.id for p in registry.profiles} == {f.stem for f in GOLDEN.glob("*.json")}


@pytest.mark.parametrize(("profile_id", "case"), golden_cases())
def test_golden_vector(registry: ProfileRegistry, profile_id: str, case: dict[str, Any]) -> None:
    """The runner `gateway profiles test --golden` uses, so technicians run the same check."""
    assert golden_failures(registry, profile_id, case) == []


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
        (("unit: cm", "unit: furlongs_per_fortnight"), "p.yaml:16: fields.level_m.unit: unknown"),
        (("canonical_unit: m", "canonical_unit: kg"), "level_m.canonical_unit: cannot convert"),
        (("{device_id}/up", "up"), "p.yaml:5: match.topic: the pattern must capture"),
        (("type: float", "type: decimal"), "p.yaml:16: fields.level_m.type: Input should be"),
        (("{topic: district}", "{topic: ward}"), "p.yaml:14: tags.district.topic: tag 'district'"),
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
    subscriptions = registry.subscriptions
    assert subscriptions == sorted(set(subscriptions))
    assert {
        "application/+/device/+/event/up",
        "city/lighting/+/+/cabinet",
        "city/lighting/+/+/telemetry",
        "city/traffic/+/+/counts",
        "city/water/+/+/pressure",
        "city/water/+/+/telemetry",
    } <= set(subscriptions)


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
            "p.yaml:8: decode.layout: a layout needs fields, then, channels or variants",
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


# --- the folder of broken profiles: one per rule, each error names file, line and field ------


def _expectation(file: Path) -> str | None:
    found = re.search(r"^# expect: (.+)$", file.read_text(encoding="utf-8"), re.MULTILINE)
    return found.group(1) if found else None


def broken_profiles() -> list[Any]:
    return [
        pytest.param(file, id=str(file.relative_to(BROKEN)))
        for file in sorted(BROKEN.rglob("*.yaml"))
        if _expectation(file)
    ]


@pytest.mark.parametrize("file", broken_profiles())
def test_each_broken_profile_names_file_line_and_field(file: Path) -> None:
    expectation = _expectation(file)
    assert expectation is not None
    line, field, text = expectation.split(": ", 2)
    # A rule between files: load the folder, as the gateway loads its directory.
    target = file if file.parent == BROKEN else file.parent
    with pytest.raises(ProfileError) as raised:
        _load(target)
    where = f"{file}:{line}: {field}: "
    assert any(p.startswith(where) and text in p for p in raised.value.problems), (
        raised.value.problems
    )


def _load(path: Path) -> object:
    return load_directory(path) if path.is_dir() else load_file(path)


def test_every_broken_profile_states_its_expectation() -> None:
    top_level = sorted(BROKEN.glob("*.yaml"))
    assert len(top_level) >= 25
    assert [file.name for file in top_level if _expectation(file) is None] == []
    for folder in (path for path in BROKEN.iterdir() if path.is_dir()):
        assert sum(_expectation(file) is not None for file in folder.glob("*.yaml")) == 1


# --- clock tolerance ---------------------------------------------------------------------------

NOW_S = 1_795_482_000  # 2026-11-24T01:00:00Z, the receive time of these tests
NOW_NS = NOW_S * 10**9
SEGMENTS = {"district": "d", "device_id": "x"}


def _profile(tmp_path: Path, text: str = VALID) -> CompiledProfile:
    file = tmp_path / "p.yaml"
    file.write_text(text, encoding="utf-8")
    return load_file(file)


def _with_time_keys(keys: str) -> str:
    return VALID.replace("  format: epoch_s\n", f"  format: epoch_s\n{keys}")


def test_new_profile_keys_are_optional(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    assert profile.max_future_ns == 300 * 10**9
    assert profile.max_past_ns == 30 * 86400 * 10**9
    assert profile.max_series == 10_000


@pytest.mark.parametrize(
    ("device_s", "reason"),
    [
        (NOW_S + 301, "clock_future"),
        (NOW_S - 30 * 86400 - 1, "clock_past"),
        (0, "clock_past"),  # real-time clock reset to 1970 after a power cut
        (946_684_800, "clock_past"),  # 2000-01-01, another common RTC default
        (NOW_S * 1000, "clock_future"),  # milliseconds sent as seconds: beyond year 2262
    ],
)
def test_implausible_device_time_is_replaced_and_flagged(
    tmp_path: Path, device_s: int, reason: str
) -> None:
    drops: list[Drop] = []
    [point] = normalize(_profile(tmp_path), {"ts": device_s, "level": 100}, SEGMENTS, NOW_NS, drops)
    assert point.time_ns == NOW_NS
    assert point.fields == {"level_m": 1.0, "time_replaced": True}
    assert drops == [("(time)", reason)]
    assert encode_point(point) == f"meter,district=d level_m=1.0,time_replaced=true {NOW_NS}"


@pytest.mark.parametrize("device_s", [NOW_S + 300, NOW_S - 30 * 86400, NOW_S - 3600])
def test_device_time_within_tolerance_is_kept(tmp_path: Path, device_s: int) -> None:
    drops: list[Drop] = []
    [point] = normalize(_profile(tmp_path), {"ts": device_s, "level": 1}, SEGMENTS, NOW_NS, drops)
    assert point.time_ns == device_s * 10**9
    assert "time_replaced" not in point.fields
    assert drops == []


def test_clock_tolerance_is_set_per_profile_and_null_switches_it_off(tmp_path: Path) -> None:
    profile = _profile(tmp_path, _with_time_keys("  max_future_s: 5\n  max_past_s: null\n"))
    drops: list[Drop] = []
    [ahead, ancient] = [
        normalize(profile, {"ts": ts, "level": 1}, SEGMENTS, NOW_NS, drops)[0]
        for ts in (NOW_S + 6, 0)
    ]
    assert ahead.time_ns == NOW_NS
    assert ancient.time_ns == 0  # no past limit: 1970 is taken at its word
    assert drops == [("(time)", "clock_future")]


def test_readings_of_one_series_at_the_receive_time_stay_distinct() -> None:
    """A batch whose clock reset to 1970: every vehicle is kept, none overwrites another."""
    registry = load_directory(PROFILES, OFFLINE_POLICY)
    resolved = registry.resolve("city/traffic/di-su/rd-0001/vehicles")
    assert resolved is not None
    vehicle = {"t": 1000, "lane": 1, "dir": "in", "cls": "motorbike", "v_ms": 10.0, "len_cm": 190}
    document = {"vehicles": [vehicle, vehicle, {**vehicle, "v_ms": 12.0}]}
    drops: list[Drop] = []
    points = normalize(resolved.profile, document, resolved.segments, NOW_NS, drops)
    assert [p.time_ns for p in points] == [NOW_NS, NOW_NS + 1, NOW_NS + 2]
    assert len({encode_point(p) for p in points}) == 3
    assert drops == [("(time)", "clock_past")] * 3


def test_iso8601_clock_reset_is_caught(tmp_path: Path) -> None:
    profile = _profile(tmp_path, VALID.replace("format: epoch_s", "format: iso8601"))
    drops: list[Drop] = []
    document = {"ts": "1970-01-01T07:00:00+07:00", "level": 1}
    [point] = normalize(profile, document, SEGMENTS, NOW_NS, drops)
    assert (point.time_ns, drops) == (NOW_NS, [("(time)", "clock_past")])


def test_an_unset_gateway_clock_keeps_device_times(tmp_path: Path) -> None:
    """A gateway that booted at 1970 without NTP cannot judge a device's clock."""
    drops: list[Drop] = []
    [point] = normalize(_profile(tmp_path), {"ts": NOW_S, "level": 1}, SEGMENTS, 1_000, drops)
    assert (point.time_ns, drops) == (NOW_NS, [])


def test_time_beyond_influx_range_without_a_tolerance_drops_the_reading(tmp_path: Path) -> None:
    profile = _profile(tmp_path, _with_time_keys("  max_future_s: null\n"))
    drops: list[Drop] = []
    with pytest.raises(DecodeError, match="no_valid_reading"):
        normalize(profile, {"ts": NOW_S * 1000, "level": 1}, SEGMENTS, NOW_NS, drops)
    assert drops == [("(reading)", "bad_timestamp")]


def test_golden_case_with_a_receive_time_applies_the_tolerance(registry: ProfileRegistry) -> None:
    case = {
        "topic": "city/water/pressure-test/pl-1/pressure",
        "payload": "0,2.5,20.0",
        "received": "2026-11-24T08:00:00+07:00",
        "lines": [
            "water_pressure,device_id=pl-1,district=pressure-test "
            f"pressure_bar=2.5,temperature_c=20.0,time_replaced=true {NOW_NS}"
        ],
        "drops": [["(time)", "clock_past"]],
    }
    assert golden_failures(registry, "mh-water-pressure-csv", case) == []
    assert golden_failures(registry, "mh-water-pressure-csv", {**case, "received": 0}) != []


# --- tags: the declared ones and nothing else ------------------------------------------------


def test_payload_keys_never_become_tags(tmp_path: Path) -> None:
    document = {"ts": 1, "level": 1, "device_id": "spoofed", "site": "s", "tags": {"a": "b"}}
    [point] = normalize(_profile(tmp_path), document, SEGMENTS, 0, [])
    assert point.tags == (("district", "d"),)  # device_id is captured but not declared a tag


def test_a_tag_that_looks_per_message_is_allowed_but_warned(tmp_path: Path) -> None:
    text = VALID.replace(
        "district: {topic: district}", "district: {topic: district}\n  seq: {path: seq_no}"
    )
    profile = _profile(tmp_path, text)
    [warning] = profile.warnings
    assert warning.startswith(f"{tmp_path / 'p.yaml'}:15: tags.seq: tag 'seq' reads 'seq_no'")
    assert "per-message" in warning


def test_shipped_profiles_raise_no_warnings(registry: ProfileRegistry) -> None:
    assert [warning for p in registry.profiles for warning in p.warnings] == []


# --- float noise -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw", "stored"),
    [
        ("type: float, unit: kWh, scale: 0.001", 1_234_600, 1234.6),
        ("type: float, unit: Wh, canonical_unit: kWh", 12_345_678_901_234, 12_345_678_901.234),
        ("type: float, unit: L/s, canonical_unit: m^3/h", 0.1, 0.36),
        ("type: float, unit: kPa, canonical_unit: bar", 312.4, 3.124),
        ("type: float, unit: degF, canonical_unit: degC", 32, 0.0),
        ("type: float, unit: degF, canonical_unit: degC", 212, 100.0),
        ("type: float, unit: degF, canonical_unit: degC", 98.6, 37.0),
        ("type: float, unit: degC, canonical_unit: K", 25.5, 298.65),
        ("type: float, scale: 0.1, offset: -40", 652, 25.2),
        ("type: int, scale: 0.1", 30, 3),  # 30 * 0.1 = 3.0000000000000004 is a whole number
    ],
)
def test_scaled_values_read_as_the_device_meant(
    tmp_path: Path, field: str, raw: float, stored: float
) -> None:
    text = VALID.replace("type: float, unit: cm, canonical_unit: m", field)
    [point] = normalize(_profile(tmp_path, text), {"ts": 1, "level": raw}, SEGMENTS, 0, [])
    assert point.fields["level_m"] == stored
    assert repr(point.fields["level_m"]) == repr(stored)


def test_values_without_conversion_pass_untouched(tmp_path: Path) -> None:
    text = VALID.replace("type: float, unit: cm, canonical_unit: m", "type: float, unit: m")
    [point] = normalize(_profile(tmp_path, text), {"ts": 1, "level": 0.1 + 0.2}, SEGMENTS, 0, [])
    assert point.fields["level_m"] == 0.1 + 0.2  # what the device sent, noise and all


# --- duplicate keys, conflicts between files -------------------------------------------------


def test_duplicate_ids_and_overlaps_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(VALID, encoding="utf-8")
    with pytest.raises(ProfileError) as raised:
        load_directory(tmp_path)
    b, a = tmp_path / "b.yaml", tmp_path / "a.yaml"
    assert raised.value.problems == [
        f"{b}:1: id: 'test-meter' is already used by {a}:1; each profile needs its own id",
        f"{b}:5: match.topic: 't/{{district}}/{{device_id}}/up' can match the same topics as "
        f"'t/{{district}}/{{device_id}}/up' in {a}:5 (profile test-meter); make one of the "
        "literal levels differ",
    ]


def test_topic_tags_are_checked_once_but_reported_per_reading(tmp_path: Path) -> None:
    """Tags from the topic are computed once per message (the Speed issue); an invalid one is
    still left out of every point and reported once per kept reading, as before."""
    text = VALID.replace("time:\n", "readings:\n  path: r\ntime:\n")
    profile = _profile(tmp_path, text)
    assert profile.tags_from_topic_only
    document = {"r": [{"ts": 1, "level": 100}, {"ts": 2}, {"ts": 3, "level": 200}]}
    drops: list[tuple[str, str]] = []
    points = normalize(profile, document, {"district": "bad\\", "device_id": "x"}, 0, drops)
    assert [(p.tags, p.fields, p.time_ns) for p in points] == [
        ((), {"level_m": 1.0}, 10**9),
        ((), {"level_m": 2.0}, 3 * 10**9),
    ]
    assert drops == [
        ("district", "invalid_tag"),
        ("level_m", "missing"),
        ("(reading)", "no_valid_field"),
        ("district", "invalid_tag"),
    ]
    good = normalize(profile, document, {"district": "d", "device_id": "x"}, 0, [])
    assert [p.tags for p in good] == [(("district", "d"),)] * 2
