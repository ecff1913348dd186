"""Whatever a device sends, decoding and normalizing raise nothing but DecodeError.

The pipeline catches exactly one exception type per message (STYLE.md, practice 4); anything
else would take the gateway down. Hypothesis throws random bytes, random JSON and
near-valid payloads at every shipped profile and at each decoder format directly.
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from gateway.errors import DecodeError
from gateway.model import Drop
from gateway.profiles.compile import CompiledProfile
from gateway.profiles.registry import load_directory
from gateway.profiles.schema import DecodeSpec
from gateway.stages.decode import decoder_for, parse_scalar
from gateway.stages.lineprotocol import encode_point
from gateway.stages.normalize import normalize

PROFILES = load_directory(Path(__file__).resolve().parent.parent / "device_profiles").profiles
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _encode(value: Any) -> bytes:
    """JSON bytes; NaN/inf are written as the bare words some firmware emits (json module)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson refuses integers beyond 64 bits
        return json.dumps(value).encode()


def _segments(profile: CompiledProfile) -> dict[str, str]:
    return {name: f"{name}-1" for name in profile.pattern.segment_names}


def _run(profile: CompiledProfile, payload: bytes) -> None:
    drops: list[Drop] = []
    try:
        document = decoder_for(profile.decode_spec)(payload)
        points = normalize(profile, document, _segments(profile), 0, drops)
    except DecodeError:
        return
    for point in points:
        encode_point(point)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.id)
@SETTINGS
@given(payload=st.binary(max_size=200))
def test_random_bytes(profile: CompiledProfile, payload: bytes) -> None:
    _run(profile, payload)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.id)
@SETTINGS
@given(document=json_values, use_json_module=st.booleans())
def test_random_json(profile: CompiledProfile, document: Any, use_json_module: bool) -> None:
    payload = json.dumps(document).encode() if use_json_module else _encode(document)
    _run(profile, payload)


def _paths(profile: CompiledProfile) -> list[str]:
    """Every payload path the profile's file names (fields, tags, time, readings)."""
    spec = yaml.safe_load(Path(profile.file).read_text(encoding="utf-8"))
    items = [*spec["fields"].values(), *spec.get("tags", {}).values(), spec["time"]]
    paths = [item["path"].removeprefix("$.") for item in items if item.get("path")]
    if spec.get("readings"):
        paths += [f"{spec['readings']['path']}.0.{path}" for path in paths]
    return paths


def _place(document: Any, keys: list[str], leaf: Any) -> Any:
    """`document` with `leaf` stored at the dotted `keys` (digits make a one-element list)."""
    if not keys:
        return leaf
    head, rest = keys[0], keys[1:]
    if head.isdigit():
        inner = document[0] if isinstance(document, list) and document else None
        return [_place(inner, rest, leaf)]
    base = document if isinstance(document, dict) else {}
    return {**base, head: _place(base.get(head), rest, leaf)}


@st.composite
def documents_at_profile_paths(draw: st.DrawFn, profile: CompiledProfile) -> Any:
    """Documents with random values at the profile's own paths, so getters and converters run."""
    document: Any = {}
    for path in draw(st.lists(st.sampled_from(_paths(profile)), max_size=8)):
        document = _place(document, path.split("."), draw(json_values))
    return document


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.id)
@SETTINGS
@given(data=st.data())
def test_documents_near_the_profile(profile: CompiledProfile, data: st.DataObject) -> None:
    document = data.draw(documents_at_profile_paths(profile))
    _run(profile, _encode(document))


# --- per format -------------------------------------------------------------------------------

_SPEC: TypeAdapter[Any] = TypeAdapter(DecodeSpec)  # type: ignore[arg-type]  # Annotated union: valid for pydantic, not expressible to mypy
LAYOUT = {
    "byte_order": "little",
    "fields": {
        "a": {"offset": 0, "type": "u16"},
        "b": {"offset": 1, "type": "i64"},
        "c": {"offset": 3, "type": "f32"},
        "d": {"offset": 9, "type": "i16", "bits": "3:9"},
        "e": {"offset": 2, "type": "f64"},
    },
}
SPECS = {
    "csv": {"format": "csv", "columns": ["ts", "a", "b"]},
    "csv_tab": {"format": "csv", "delimiter": "\t", "columns": ["x"]},
    "keyvalue": {"format": "keyvalue"},
    "keyvalue_multi": {"format": "keyvalue", "pair_separator": "&&", "kv_separator": ":="},
    "raw_number": {"format": "raw", "value_type": "number"},
    "raw_text": {"format": "raw", "value_type": "text"},
    "binary": {"format": "binary", **LAYOUT},
    "json_hex": {"format": "json", "binary": {"path": "d.0", "encoding": "hex", "layout": LAYOUT}},
    "chirpstack_v4": {"format": "chirpstack_v4", "layout": LAYOUT},
    "tts_v3": {"format": "tts_v3", "layout": LAYOUT},
}
DECODERS = {name: decoder_for(_SPEC.validate_python(spec)) for name, spec in SPECS.items()}

text_payloads = st.text(alphabet=st.sampled_from('0123456789.,;=:&+-eE \t\r\n"xnaif_\x00é'))


@pytest.mark.parametrize("name", sorted(DECODERS))
@SETTINGS
@given(payload=st.binary(max_size=64) | text_payloads.map(str.encode))
def test_each_decoder_raises_only_decode_error(name: str, payload: bytes) -> None:
    try:
        decoded = DECODERS[name](payload)
    except DecodeError:
        return
    assert isinstance(decoded, dict)


frames = st.binary(max_size=24)
frame_texts = st.one_of(
    frames.map(lambda raw: base64.b64encode(raw).decode()),
    frames.map(bytes.hex),
    st.text(max_size=30),
)


@pytest.mark.parametrize("name", ["json_hex", "chirpstack_v4", "tts_v3"])
@SETTINGS
@given(text=frame_texts, extra=json_values)
def test_envelopes_with_random_frames(name: str, text: str, extra: Any) -> None:
    document = {
        "d": [text],
        "data": text,
        "uplink_message": {"frm_payload": text, "rx_metadata": [extra]},
        "extra": extra,
    }
    try:
        decoded = DECODERS[name](_encode(document))
    except DecodeError:
        return
    assert set(decoded["payload"]) == set(LAYOUT["fields"])
    assert "extra" in decoded  # the rest of the envelope stays addressable


@SETTINGS
@given(value=st.integers(min_value=-(2**63), max_value=2**63 - 1) | st.floats(allow_nan=False))
def test_numbers_in_text_round_trip(value: float) -> None:
    parsed = parse_scalar(f" {value!r} ")
    if isinstance(value, float) and math.isinf(value):
        assert parsed == repr(value)  # 'inf' is not a plain decimal number: kept as text
    else:
        assert parsed == value
        assert type(parsed) is type(value)


leaves = st.one_of(
    st.just(1),
    st.sampled_from([1.7e308, -1.7e308, 5e-324, 2**63 - 1, -(2**63), 1795482000]),  # extremes
    st.floats(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from(["2026-11-24T08:00:00+07:00", "0001-01-01T00:00:00+14:00", "ON", ""]),
    json_values,
)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda profile: profile.id)
@SETTINGS
@given(data=st.data())
def test_normalize_of_any_structure(profile: CompiledProfile, data: st.DataObject) -> None:
    """normalize() directly, with plausible and extreme values at every path the profile reads."""
    document: Any = {}
    for path in _paths(profile):
        document = _place(document, path.split("."), data.draw(leaves))
    drops: list[Drop] = []
    try:
        points = normalize(profile, document, _segments(profile), 0, drops)
    except DecodeError:
        return
    for point in points:
        encode_point(point)


def _parse_scalar_by_patterns(text: str) -> int | float | str | None:
    """parse_scalar as it was before its fast paths: the regular expressions only."""
    value = text.strip()
    if not value:
        return None
    if re.fullmatch(r"[+-]?[0-9]+", value, re.ASCII) and len(value) <= 20:
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number
    if re.fullmatch(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", value, re.ASCII):
        return float(value)
    return value


@settings(max_examples=3000, deadline=None)
@given(
    text=st.text(alphabet="0123456789.+-eE _²٣x ", max_size=24)
    | st.from_regex(r"\s*[+-]?[0-9]{0,22}\.?[0-9]{0,5}\s*", fullmatch=True)
)
def test_scalar_fast_paths_agree_with_the_patterns(text: str) -> None:
    expected = _parse_scalar_by_patterns(text)
    parsed = parse_scalar(text)
    assert parsed == expected
    assert type(parsed) is type(expected)
