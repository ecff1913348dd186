"""Vendor JavaScript codecs: the three APIs, the sandbox, the limits, and loading with a profile.

The codecs are tests/codecs/*.js, written for these tests in the vendors' formats."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import DecodeError, ProfileError
from gateway.profiles.registry import (
    ProfileRegistry,
    install_profile,
    load_directory,
    load_file,
)
from gateway.stages.codec import CodecLimits, CodecLoadError, JavascriptCodec, warning_counts
from gateway.stages.decode import decoder_for

CODECS = Path(__file__).parent / "codecs"
SHARED_TOPIC = "application/17c8/device/a84041000181c061/event/up"


def codec(name: str, limits: CodecLimits | None = None) -> JavascriptCodec:
    return JavascriptCodec((CODECS / name).read_text(), name, limits)


def chirpstack_up(frame: bytes, model: str, *, fport: int = 2, **extra: Any) -> bytes:
    event: dict[str, Any] = {
        "deviceInfo": {"deviceProfileName": model, "devEui": "a84041000181c061"},
        "fPort": fport,
        "data": base64.b64encode(frame).decode(),
        "time": "2026-11-24T01:00:00.123456789Z",
        "rxInfo": [{"gatewayId": "gw-a", "rssi": -97, "snr": 7.5}],
    }
    event.update(extra)
    return json.dumps(event).encode()


def test_ts013_decode_uplink_gets_bytes_and_port() -> None:
    result = codec("soil-probe-ts013.js").decode(bytes.fromhex("fc185a0bb8"), 2)
    assert result.data == {"temperature": -10.0, "moisture": 45.0, "battery_mv": 3000}
    assert result.warnings == ()


def test_ts013_warnings_are_counted() -> None:
    before = warning_counts().get("soil-probe-ts013.js", 0)
    result = codec("soil-probe-ts013.js").decode(bytes.fromhex("08fc5a09c3"), 2)
    assert result.warnings == ("battery low",)
    assert warning_counts()["soil-probe-ts013.js"] == before + 1


def test_chirpstack_v3_decode_and_ttn_v2_decoder() -> None:
    door = codec("door-sensor-cs3.js").decode(bytes([1, 0x01, 0x02]), 7)
    assert door.data == {"open": True, "open_count": 258, "port": 7}
    meter = codec("meter-ttn2.js").decode(bytes([0xFF, 0xFF, 0xFF, 0xFF]), 5)
    assert meter.data == {"pulses": 4294967295, "port": 5}


@pytest.mark.parametrize(
    ("frame", "reason", "detail"),
    [
        ("e1", "codec_timeout", "ran longer than 50 ms"),
        ("e2", "codec_memory", "needed more than 8 MB"),
        ("e3ff", "codec_error", "TypeError: cannot read frame type 255"),
        ("e4", "codec_error", "checksum mismatch"),
        ("e5", "codec_memory", "stack exhausted"),
    ],
)
def test_a_misbehaving_codec_is_a_dead_letter_and_the_next_frame_decodes(
    frame: str, reason: str, detail: str
) -> None:
    faulty = codec("misbehaving.js", CodecLimits(timeout_ms=50, memory_mb=8, stack_kb=128))
    with pytest.raises(DecodeError) as caught:
        faulty.decode(bytes.fromhex(frame), 1)
    assert (caught.value.reason, caught.value.detail) == (reason, f"misbehaving.js: {detail}")
    assert faulty.decode(bytes.fromhex("01f407"), 1).data == {"level_mm": 500, "seq": 7}


def test_the_memory_a_codec_leaks_comes_back_with_the_rebuilt_runtime() -> None:
    faulty = codec("misbehaving.js", CodecLimits(timeout_ms=100, memory_mb=4, stack_kb=128))
    for _ in range(3):  # each time the leak starts from an empty runtime, and hits the limit
        with pytest.raises(DecodeError, match="codec_memory"):
            faulty.decode(b"\xe2", 1)


def test_the_sandbox_has_no_require_timers_files_or_network() -> None:
    probe = JavascriptCodec(
        "function Decoder(bytes, port) { return {kinds: [typeof require, typeof setTimeout, "
        "typeof setInterval, typeof std, typeof os, typeof fetch, typeof XMLHttpRequest, "
        "typeof process, typeof import_meta]}; }",
        "probe.js",
    )
    assert set(probe.decode(b"\x00", 1).data["kinds"]) == {"undefined"}
    needs_require = JavascriptCodec(
        "function Decoder(b) { return require('fs').readFileSync('/etc/passwd'); }", "r.js"
    )
    with pytest.raises(DecodeError, match=r"codec_error: r\.js: ReferenceError"):
        needs_require.decode(b"\x00", 1)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("function decodeUplink(input) {", "x.js: SyntaxError"),
        ("var decode = 1;", "x.js: defines none of decodeUplink"),
        ("while (true) {}", "x.js: InternalError: interrupted"),
    ],
)
def test_a_codec_that_does_not_load_says_why(source: str, message: str) -> None:
    with pytest.raises(CodecLoadError, match=message):
        JavascriptCodec(source, "x.js", CodecLimits(timeout_ms=20))


@pytest.mark.parametrize(
    ("returned", "detail"),
    [("null", "returned nothing, not an object"), ("{data: 3}", "returned int as data")],
)
def test_a_codec_must_return_a_data_object(returned: str, detail: str) -> None:
    odd = JavascriptCodec(f"function decodeUplink(input) {{ return {returned}; }}", "odd.js")
    with pytest.raises(DecodeError, match=detail):
        odd.decode(b"\x01", 1)


def copy_profile(tmp_path: Path, profile: str, *codecs: str) -> Path:
    tmp_path.mkdir(exist_ok=True)
    for name in (profile, *codecs):
        (tmp_path / name).write_text((CODECS / name).read_text())
    return tmp_path / profile


def test_a_profile_with_bad_javascript_is_refused_naming_both_files(tmp_path: Path) -> None:
    profile = copy_profile(tmp_path, "soil-probe-cs.yaml")
    (tmp_path / "soil-probe-ts013.js").write_text("function decodeUplink(input) { return {")
    with pytest.raises(ProfileError) as caught:
        load_file(profile)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{profile}:11: decode.script: {tmp_path}/soil-probe-ts013.js:")
    assert "SyntaxError" in problem


def test_a_profile_whose_codec_is_missing_is_refused(tmp_path: Path) -> None:
    profile = copy_profile(tmp_path, "soil-probe-cs.yaml")
    with pytest.raises(
        ProfileError, match=r"yaml:11: decode.script: cannot read .*soil-probe-ts013"
    ):
        load_file(profile)


def test_codec_output_lands_under_payload_with_the_envelope_alongside() -> None:
    registry = load_directory(CODECS)
    message = chirpstack_up(bytes.fromhex("08fc5a0bb8"), "soil-probe")
    resolved = registry.resolve(SHARED_TOPIC, message)
    assert resolved is not None
    document = decoder_for(resolved.profile.decode_spec)(message)
    assert document["payload"] == {"temperature": 23.0, "moisture": 45.0, "battery_mv": 3000}
    assert document["deviceInfo"]["devEui"] == "a84041000181c061"
    assert document["radio"] == {
        "gateways": 1,
        "rssi": -97,
        "snr": 7.5,
        "time": "2026-11-24T01:00:00.123456789Z",
    }


def test_tts_envelope_and_raw_payload_reach_the_codec_with_their_port() -> None:
    registry = load_directory(CODECS)
    uplink = {
        "end_device_ids": {"device_id": "door-7"},
        "received_at": "2026-11-24T01:00:00.5Z",
        "uplink_message": {"f_port": 9, "frm_payload": base64.b64encode(b"\x00\x00\x05").decode()},
    }
    door = registry.get("test-door-sensor-tts")
    assert door is not None
    document = decoder_for(door.decode_spec)(json.dumps(uplink).encode())
    assert document["payload"] == {"open": False, "open_count": 5, "port": 9}
    meter = registry.get("test-pulse-meter-raw")
    assert meter is not None
    assert decoder_for(meter.decode_spec)(b"\x10\x00\x00\x00") == {
        "payload": {"pulses": 16, "port": 5}
    }
    with pytest.raises(DecodeError, match="empty_frame"):
        decoder_for(meter.decode_spec)(b"")


def registry_of(tmp_path: Path, *profiles: str) -> ProfileRegistry:
    for name in profiles:
        copy_profile(tmp_path, name)
    for name in ("soil-probe-ts013.js", "misbehaving.js"):
        (tmp_path / name).write_text((CODECS / name).read_text())
    return load_directory(tmp_path)


def test_several_models_on_one_topic_resolve_by_content_and_the_rest_to_the_fallback() -> None:
    registry = load_directory(CODECS)

    def profile_for(payload: bytes) -> str | None:
        resolved = registry.resolve(SHARED_TOPIC, payload)
        return resolved.profile.id if resolved else None

    assert profile_for(chirpstack_up(b"\x01", "soil-probe")) == "test-soil-probe-cs"
    assert profile_for(chirpstack_up(b"\x01", "tank-level")) == "test-tank-level-cs"
    assert profile_for(chirpstack_up(b"\x01", "weather-station")) == "test-lorawan-other-cs"
    assert profile_for(b"not json") == "test-lorawan-other-cs"
    assert profile_for(b"") == "test-lorawan-other-cs"  # no payload given: only the fallback


def test_without_a_fallback_an_unknown_model_resolves_to_nothing(tmp_path: Path) -> None:
    registry = registry_of(tmp_path, "soil-probe-cs.yaml", "tank-level-cs.yaml")
    assert registry.resolve(SHARED_TOPIC, chirpstack_up(b"\x01", "weather-station")) is None
    found = registry.resolve(SHARED_TOPIC, chirpstack_up(b"\x01", "tank-level"))
    assert found is not None
    assert found.profile.id == "test-tank-level-cs"


@pytest.mark.parametrize(
    ("tank_match", "complaint"),
    [
        (
            "  content: {path: deviceInfo.deviceProfileName, equals: soil-probe}",
            "their match.content tests can both pass",
        ),
        (
            "  content: {path: deviceInfo.devEui, prefix: a840}",
            "their match.content tests can both pass",
        ),
        ("  fallback: false", "has no match.content test: give both profiles one"),
    ],
)
def test_overlapping_content_tests_are_refused_naming_both_files(
    tmp_path: Path, tank_match: str, complaint: str
) -> None:
    copy_profile(tmp_path, "soil-probe-cs.yaml")
    tank = (CODECS / "tank-level-cs.yaml").read_text()
    original = "  content: {path: deviceInfo.deviceProfileName, equals: tank-level}"
    (tmp_path / "tank-level-cs.yaml").write_text(tank.replace(original, tank_match))
    with pytest.raises(ProfileError) as caught:
        registry_of(tmp_path)
    text = "\n".join(caught.value.problems)
    assert complaint in text
    assert "soil-probe-cs.yaml" in text
    assert "tank-level-cs.yaml" in text


def test_two_fallbacks_on_one_topic_are_refused(tmp_path: Path) -> None:
    copy_profile(tmp_path, "lorawan-other-cs.yaml")
    second = (CODECS / "lorawan-other-cs.yaml").read_text().replace("test-lorawan-other", "x")
    (tmp_path / "second-other.yaml").write_text(second)
    with pytest.raises(ProfileError, match=r"both are match\.fallback"):
        load_directory(tmp_path)


def test_profiles_add_installs_the_codec_next_to_the_profile(tmp_path: Path) -> None:
    source = copy_profile(tmp_path / "new", "pulse-meter-raw.yaml", "meter-ttn2.js")
    installed_dir = tmp_path / "installed"
    installed_dir.mkdir()
    installed = install_profile(source, installed_dir)
    assert installed.path == installed_dir / "water" / "pulse-meter-raw.yaml"
    codec = installed_dir / "water" / "meter-ttn2.js"
    assert codec.read_text() == (CODECS / "meter-ttn2.js").read_text()
    assert load_directory(installed_dir).get("test-pulse-meter-raw") is not None
