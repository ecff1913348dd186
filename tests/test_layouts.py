"""Declarative binary layouts (gateway/stages/layouts.py) and the time formats real devices send.

The shipped variant, flag and channel profiles are held to an independent reference by
tests/test_layouts_properties.py; here each ability on its own, the ones no shipped profile
uses (type-only and length-byte streams, 2013 clocks, constants, length and bit conditions),
and what a technician reads when a layout is wrong.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import DecodeError, ProfileError
from gateway.profiles.compile import NO_READING, NOT_IN_VARIANT
from gateway.profiles.registry import load_file
from gateway.profiles.schema import BinaryLayoutSpec
from gateway.stages.decode import decoder_for, frame_decoder
from gateway.stages.layouts import skipped_channels, skipped_drops
from gateway.stages.normalize import normalize


def decode(layout: dict[str, Any], frame_hex: str, fport: int | None = None) -> dict[str, Any]:
    values: dict[str, Any] = frame_decoder(BinaryLayoutSpec.model_validate(layout))(
        bytes.fromhex(frame_hex), fport
    )
    return values


def refusal(layout: dict[str, Any], frame_hex: str, fport: int | None = None) -> str:
    with pytest.raises(DecodeError) as raised:
        decode(layout, frame_hex, fport)
    return raised.value.reason


def test_the_first_variant_whose_conditions_hold_is_read() -> None:
    layout = {
        "variants": [
            {"when": {"fport": [1, 2], "length": 3}, "fields": {"a": {"offset": 0, "type": "u8"}}},
            {
                "when": {"offset": 0, "type": "u8", "bits": "4:4", "equals": [0xA, 0xB]},
                "fields": {"b": {"offset": 1, "type": "u16"}},
                "constants": {"kind": "report"},
            },
            {"fields": {"c": {"offset": 0, "type": "u8"}}},  # the catch-all, last
        ]
    }
    # The names another variant declares are NOT_IN_VARIANT: normalize stores no field for
    # them and counts no drop.
    absent = NOT_IN_VARIANT
    assert decode(layout, "070809", 2) == {"a": 7, "b": absent, "kind": absent, "c": absent}
    assert decode(layout, "a10102ff", 2) == {
        "b": 0x0102,
        "kind": "report",
        "a": absent,
        "c": absent,
    }
    assert decode(layout, "b10102", None) == {
        "b": 0x0102,
        "kind": "report",
        "a": absent,
        "c": absent,
    }
    assert decode(layout, "c1", 1) == {"c": 0xC1, "a": absent, "b": absent, "kind": absent}


def test_a_frame_no_variant_fits_is_a_dead_letter_before_any_read() -> None:
    layout = {
        "variants": [
            {"when": {"offset": 4, "equals": 1}, "fields": {"a": {"offset": 0, "type": "u8"}}}
        ]
    }
    assert refusal(layout, "00000000") == "no_layout"  # too short to hold the tested byte
    assert refusal(layout, "0000000002") == "no_layout"
    assert decode(layout, "0900000001") == {"a": 9}


def test_type_only_stream_as_elsys_sends() -> None:
    layout = {
        "channels": {
            "key": "type",
            "entries": [
                {"type": 0x01, "fields": {"temp": {"offset": 0, "type": "i16"}}},
                {"type": 0x02, "fields": {"rh": {"offset": 0, "type": "u8"}}},
            ],
            "skip": {0x07: 2},
        }
    }
    values = decode(layout, "01ff38 0700e4 0232".replace(" ", ""))
    assert values["temp"] == -200
    assert values["rh"] == 0x32
    assert skipped_channels(values) == ["channel 0x07 at byte 3"]
    assert skipped_channels({"payload": values}) == ["channel 0x07 at byte 3"]
    assert skipped_drops({"payload": values}) == [("channel 0x07 at byte 3", "unknown_channel")]
    assert skipped_drops({"payload": {"temp": 1}}) == skipped_drops("not a frame") == []
    assert refusal(layout, "0801") == "unknown_channel"
    assert refusal(layout, "01ff") == "truncated"


def test_length_byte_streams_skip_any_unknown_entry_and_check_known_sizes() -> None:
    layout = {
        "fields": {"version": {"offset": 0, "type": "u8"}},
        "channels": {
            "key": "channel_type",
            "length_byte": True,
            "entries": [{"channel": 1, "type": 2, "fields": {"v": {"offset": 0, "type": "u24"}}}],
        },
    }
    assert decode(layout, "09 0102 03 0186a0 0999 02 abcd".replace(" ", "")) == {
        "version": 9,
        "v": 100_000,
        "(skipped)": ["channel 0x09 0x99 at byte 7"],
    }
    assert refusal(layout, "09 0102 02 0186".replace(" ", "")) == "bad_length"
    assert refusal(layout, "09 0999 05 abcd".replace(" ", "")) == "truncated"


def test_value_types_signs_sentinels_and_bcd() -> None:
    layout = {
        "byte_order": "little",
        "fields": {
            "i24": {"offset": 0, "type": "i24"},
            "nibble": {"offset": 3, "type": "u8", "bits": "4:4", "signed": True},
            "bcd": {"offset": 4, "type": "bcd", "length": 2},
            "gone": {"offset": 6, "type": "u16", "no_reading": [0xFFFF, 0x8000]},
        },
    }
    assert decode(layout, "feffff f0 1234 ffff".replace(" ", "")) == {
        "i24": -2,
        "nibble": -1,
        "bcd": 1234,
        "gone": NO_READING,
    }
    values = decode(layout, "000080 70 12f4 0080".replace(" ", ""))
    assert values == {"i24": -(2**23), "nibble": 7, "bcd": NO_READING, "gone": NO_READING}


def test_text_built_from_bytes() -> None:
    layout = {
        "fields": {
            "model": {"offset": 0, "type": "ascii", "length": 6},
            "serial": {"offset": 6, "type": "hex", "length": 4},
        }
    }
    assert decode(layout, b"EM300\x00".hex() + "24e1247c") == {
        "model": "EM300",
        "serial": "24e1247c",
    }
    assert decode(layout, "000000000000 00000000".replace(" ", ""))["model"] is NO_READING
    assert decode(layout, "ff4d33303000 00000000".replace(" ", ""))["model"] is NO_READING
    assert refusal(layout, "454d333030") == "too_short"


@pytest.mark.parametrize(
    ("epoch", "zone", "counter", "unix"),
    [
        ("2000-01-01", None, 0, 946_684_800),
        ("2013-01-01", None, 86_400, 1_357_084_800),
        ("2000-01-01", "Asia/Ho_Chi_Minh", 848_822_400, 1_795_482_000),  # 08:00 local = 01:00Z
        ("2013-01-01", "Europe/Paris", 15_552_000, 1_372_543_200),  # 2013-06-30 00:00 CEST
    ],
)
def test_device_clocks_count_from_their_epoch(
    epoch: str, zone: str | None, counter: int, unix: int
) -> None:
    clock: dict[str, Any] = {"offset": 0, "type": "u32", "epoch": epoch}
    if zone:
        clock["timezone"] = zone
    assert decode({"fields": {"t": clock}}, counter.to_bytes(4, "big").hex()) == {"t": unix}


def test_optional_trailing_groups_and_flagged_groups_shift_what_follows() -> None:
    layout = {
        "fields": {"flags": {"offset": 0, "type": "u8"}},
        "then": [
            {"present": {"flag": "flags", "bit": 0}, "fields": {"a": {"offset": 0, "type": "u8"}}},
            {"present": {"flag": "flags", "bit": 1}, "fields": {"b": {"offset": 0, "type": "u8"}}},
            {"fields": {"c": {"offset": 0, "type": "u8"}}},
            {"present": "room", "fields": {"d": {"offset": 0, "type": "u16"}}},
        ],
    }
    assert decode(layout, "03 0a 0b 0c 000d".replace(" ", "")) == {
        "flags": 3,
        "a": 10,
        "b": 11,
        "c": 12,
        "d": 13,
    }
    assert decode(layout, "02 0b 0c".replace(" ", "")) == {"flags": 2, "b": 11, "c": 12}
    assert decode(layout, "00 0c 00".replace(" ", "")) == {"flags": 0, "c": 12}  # d: no room
    assert refusal(layout, "01 0a") == "truncated"  # c is always sent


PROFILE = """\
id: t-layout
version: 1
domain: environment
match:
  topic: t/{device_id}
decode:
  format: binary
  fields:
    co2: {offset: 0, type: u16, no_reading: 0xffff}
    temp: {offset: 2, type: i8}
time:
  source: receive
output:
  measurement: m
fields:
  co2_ppm: {path: co2, type: int}
  temp_c: {path: temp, type: float}
"""


def test_a_sentinel_drops_the_field_with_reason_sentinel(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(PROFILE, encoding="utf-8")
    profile = load_file(file)
    document = decoder_for(profile.decode_spec)
    drops: list[tuple[str, str]] = []
    points = normalize(profile, document(bytes.fromhex("ffff19")), {"device_id": "x"}, 5, drops)
    assert [dict(point.fields) for point in points] == [{"temp_c": 25.0}]
    assert drops == [("co2_ppm", "sentinel")]
    drops.clear()
    points = normalize(profile, document(bytes.fromhex("0280e7")), {"device_id": "x"}, 5, drops)
    assert [dict(point.fields) for point in points] == [{"co2_ppm": 640, "temp_c": -25.0}]
    assert drops == []


TIMED = PROFILE.replace(
    "time:\n  source: receive\n", "time:\n  path: t\n  format: {fmt}\n"
).replace(
    PROFILE[PROFILE.index("format: binary") : PROFILE.index("time:")],
    "format: json\n",
)


@pytest.mark.parametrize(
    ("fmt", "sent", "ns"),
    [
        ("epoch_s_text", '"1795482000"', 1_795_482_000 * 10**9),
        ("epoch_ms_text", '"1795482000123.5"', 1_795_482_000_123_500_000),
        ("epoch_ms_text", "1795482000123", 1_795_482_000_123_000_000),
        ("'%Y/%m/%d %H:%M:%S'", '"2026/11/24 08:00:00"', 1_795_482_000 * 10**9),
        ("'%d/%m/%Y %H:%M:%S'", '"24/11/2026 08:00:00"', 1_795_482_000 * 10**9),
        ("'%d/%m/%Y %H:%M:%S%z'", '"24/11/2026 01:00:00+0000"', 1_795_482_000 * 10**9),
    ],
)
def test_time_as_text_epochs_and_strptime_patterns(
    tmp_path: Path, fmt: str, sent: str, ns: int
) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(TIMED.replace("{fmt}", fmt), encoding="utf-8")
    profile = load_file(file)
    drops: list[tuple[str, str]] = []
    payload = {"co2": 500, "temp": 20, "t": __import__("json").loads(sent)}
    points = normalize(profile, payload, {"device_id": "x"}, 0, drops)
    assert [point.time_ns for point in points] == [ns]
    for bad in ("yesterday", "17954820OO", ""):
        drops = []
        with pytest.raises(DecodeError):
            normalize(profile, {**payload, "t": bad}, {"device_id": "x"}, 0, drops)
        assert drops[-1] == ("(reading)", "bad_timestamp")


LORAWAN = """\
id: t-variants
version: 1
domain: water
match:
  topic: v3/app/devices/{device_id}/up
decode:
  format: tts_v3
  layout:
    variants:
      - when: {fport: 1}
        fields:
          a: {offset: 0, type: u8}
      - fields:
          b: {offset: 0, type: u8}
time:
  source: receive
output:
  measurement: m
fields:
  a: {path: payload.a, type: int}
"""


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            (
                "      - when: {fport: 1}\n",
                "      - fields: {z: {offset: 0, type: u8}}\n      - when: {fport: 1}\n",
            ),
            "p.yaml:8: decode.layout: variant 0 has no when: and would hide",
        ),
        (
            ("when: {fport: 1}", "when: {offset: 1}"),
            "p.yaml:10: decode.layout.variants.0.when: offset and equals go together",
        ),
        (
            ("format: tts_v3\n  layout:\n    variants:", "format: binary\n  variants:"),
            "p.yaml:6: decode: when.fport needs an envelope that carries the LoRaWAN port",
        ),
        (
            ("when: {fport: 1}", "when: {offset: 0, bits: '4:8', equals: 1}"),
            "p.yaml:10: decode.layout.variants.0.when: bits '4:8' do not fit a 8-bit u8",
        ),
        (
            ("b: {offset: 0, type: u8}", "b: {offset: 0, type: bcd}"),
            "p.yaml:14: decode.layout.variants.1.fields.b: length is the size of a bcd, ascii",
        ),
        (
            ("b: {offset: 0, type: u8}", "b: {offset: 0, type: u8, signed: true}"),
            "signed applies to bit fields",
        ),
        (
            (
                "b: {offset: 0, type: u8}",
                "a: {offset: 1, type: u8}\n          a2: {offset: 0, type: f32, epoch: 2000-01-01}",
            ),
            "epoch counts seconds in an integer type",
        ),
        (
            (
                "      - fields:\n          b:",
                "      - then: [{present: {flag: nope, bit: 0},\n"
                "                 fields: {c: {offset: 0, type: u8}}}]\n"
                "        fields:\n          b:",
            ),
            "present.flag 'nope' must name a plain integer field",
        ),
        (
            (
                "format: tts_v3\n  layout:\n    variants:",
                "format: tts_v3\n  layout:\n    fields: {a: {offset: 0, type: u8}}\n    variants:",
            ),
            "with variants, fields/then/channels/constants belong inside each variant",
        ),
    ],
)
def test_a_wrong_layout_names_file_line_field_and_what_is_valid(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    (tmp_path / "ok.yaml").write_text(LORAWAN, encoding="utf-8")
    load_file(tmp_path / "ok.yaml")
    changed = LORAWAN.replace(*edit)
    assert changed != LORAWAN
    (tmp_path / "p.yaml").write_text(changed, encoding="utf-8")
    with pytest.raises(ProfileError) as raised:
        load_file(tmp_path / "p.yaml")
    assert expected in str(raised.value).replace(str(tmp_path) + "/", ""), raised.value


def test_channel_tables_are_checked(tmp_path: Path) -> None:
    text = LORAWAN.replace(
        LORAWAN[LORAWAN.index("    variants:") : LORAWAN.index("time:")],
        "    channels:\n      entries:\n"
        "        - {channel: 1, type: 2, fields: {a: {offset: 0, type: u8}}}\n"
        "        - {channel: 1, type: 2, fields: {b: {offset: 0, type: u8}}}\n",
    )
    (tmp_path / "p.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError) as raised:
        load_file(tmp_path / "p.yaml")
    assert "decode.layout.channels: channel 1 type 2 is listed twice" in str(raised.value).replace(
        str(tmp_path) + "/", ""
    )


def test_a_sentinel_read_as_a_tag_is_a_missing_tag(tmp_path: Path) -> None:
    file = tmp_path / "p.yaml"
    file.write_text(
        PROFILE.replace("fields:\n  co2_ppm", "tags:\n  band: {path: co2}\nfields:\n  co2_ppm")
    )
    profile = load_file(file)
    decode = decoder_for(profile.decode_spec)
    drops: list[tuple[str, str]] = []
    points = normalize(profile, decode(bytes.fromhex("ffff19")), {"device_id": "x"}, 5, drops)
    assert [dict(point.tags) for point in points] == [{}]
    assert ("band", "missing_tag") in drops
    points = normalize(profile, decode(bytes.fromhex("000719")), {"device_id": "x"}, 5, [])
    assert [dict(point.tags) for point in points] == [{"band": "7"}]


VARIANT_FIELDS = LORAWAN.replace(
    "      - fields:\n          b: {offset: 0, type: u8}\n",
    "      - when: {fport: 2}\n"
    "        fields: {a: {offset: 0, type: u8}, b: {offset: 1, type: u8}}\n"
    "        then: [{present: room, fields: {c: {offset: 0, type: u8}}}]\n",
).replace(
    "fields:\n  a: {path: payload.a, type: int}\n",
    "tags:\n  band: {path: payload.b}\n"
    "fields:\n  a: {path: payload.a, type: int}\n"
    "  b: {path: payload.b, type: int}\n  c: {path: payload.c, type: int}\n",
)


def _variant_outcome(
    tmp_path: Path, text: str, frame_hex: str, fport: int
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    file = tmp_path / "p.yaml"
    file.write_text(text, encoding="utf-8")
    profile = load_file(file)
    uplink = {
        "uplink_message": {
            "f_port": fport,
            "frm_payload": base64.b64encode(bytes.fromhex(frame_hex)).decode(),
        }
    }
    document = decoder_for(profile.decode_spec)(json.dumps(uplink).encode())
    drops: list[tuple[str, str]] = []
    try:
        points = normalize(profile, document, {"device_id": "x"}, 5, drops)
    except DecodeError:
        points = []
    return [dict(point.fields) for point in points], drops


def test_a_field_the_chosen_variant_does_not_declare_is_absent_without_a_drop(
    tmp_path: Path,
) -> None:
    """b and c exist only in variant 2: a variant-1 frame gives a, and drops nothing for b, c
    (nor a missing tag for band, which reads b as every tag that is absent does)."""
    fields, drops = _variant_outcome(tmp_path, VARIANT_FIELDS, "07", 1)
    assert fields == [{"a": 7}]
    assert drops == [("band", "missing_tag")]
    # Variant 2 declares c in an optional trailing group: a frame without it still drops it.
    fields, drops = _variant_outcome(tmp_path, VARIANT_FIELDS, "0708", 2)
    assert fields == [{"a": 7, "b": 8}]
    assert drops == [("c", "missing")]
    fields, drops = _variant_outcome(tmp_path, VARIANT_FIELDS, "070809", 2)
    assert (fields, drops) == ([{"a": 7, "b": 8, "c": 9}], [])


def test_a_required_field_the_chosen_variant_does_not_declare_drops_the_reading(
    tmp_path: Path,
) -> None:
    required = VARIANT_FIELDS.replace(
        "b: {path: payload.b, type: int}", "b: {path: payload.b, type: int, required: true}"
    )
    fields, drops = _variant_outcome(tmp_path, required, "07", 1)
    assert fields == []
    assert drops[:2] == [("b", "missing"), ("(reading)", "required_b_missing")]
