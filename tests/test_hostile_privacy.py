"""Private keys never reach the dead-letter store in clear, whatever shape the payload has
(issue 18): nested one level deeper, inside arrays, a root that is an array, and a payload the
profile cannot read at all. The ANPR camera profile hashes `plate` and drops `snapshot`.

CSV and key=value payloads keep what the decoder reads of them without the private cells and
pairs (hypothesis: random lines never keep a private value, and decode to the same public
values); what the decoder cannot read is withheld. The last test runs them through the
pipeline into the dead-letter store."""

from __future__ import annotations

import csv
import functools
import io
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import DecodeError
from gateway.model import Message
from gateway.policies.privacy import redactor_for
from gateway.policies.tenants import profile_policy
from gateway.process import MessageLimits, MessageRules, Refused
from gateway.profiles.compile import CompiledProfile
from gateway.profiles.registry import ProfileRegistry, load_directory, load_file, load_text
from gateway.stages.deadletter import DeadLetterStore
from gateway.stages.decode import decoder_for
from tests.fakes import run_and_drain
from tests.test_isolation import HASH_KEY, gateway_for, sink_of, write_profile
from tests.test_isolation import settings as settings_for

ANPR = Path(__file__).resolve().parent.parent / "device_profiles/traffic/anpr-camera-json.yaml"
PLATE = "29A-123.45"
SNAPSHOT = "https://cam.local/img/8812.jpg"
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    "payload",
    [
        {"cam": "anpr-0003", "t": 1, "plate": PLATE, "snapshot": SNAPSHOT},
        {"data": {"plate": PLATE, "snapshot": SNAPSHOT}, "t": "not a time"},
        [{"plate": PLATE}, {"vehicle": {"snapshot": SNAPSHOT}}],
        {"vehicles": [{"plate": PLATE, "v": [{"plate": PLATE}]}], "snapshot": [SNAPSHOT]},
        [[[[{"x": {"plate": PLATE}}]]]],
    ],
)
def test_private_keys_are_removed_at_any_depth_and_in_arrays(payload: object) -> None:
    redact = redactor_for(load_file(ANPR))
    kept = redact(orjson.dumps(payload))
    assert PLATE.encode() not in kept
    assert SNAPSHOT.encode() not in kept
    assert kept  # the rest stays, for inspection and replay


def test_what_is_not_private_stays() -> None:
    redact = redactor_for(load_file(ANPR))
    kept = orjson.loads(redact(orjson.dumps({"data": {"plate": PLATE, "lane": 2}, "cls": "car"})))
    assert kept == {"data": {"lane": 2}, "cls": "car"}


def test_a_deeply_nested_payload_is_redacted_without_recursion() -> None:
    redact = redactor_for(load_file(ANPR))
    for depth in (200, 1000):  # orjson reads 1,024 levels and writes only 255
        payload = b"[" * depth + b'{"plate": "29A-123.45", "lane": 2}' + b"]" * depth
        kept = redact(payload)
        assert PLATE.encode() not in kept
        assert (b'"lane":2' in kept) is (depth == 200)  # too deep to write back: withheld


def test_a_payload_that_is_not_json_is_withheld() -> None:
    redact = redactor_for(load_file(ANPR))
    assert redact(b"plate=" + PLATE.encode()) == b""


# ---- CSV and key=value ----------------------------------------------------------------------
# A camera reporting the same vehicle as one CSV line, or as key=value text: the private cell or
# pair is removed, the rest stays as the decoder reads it; what cannot be located is withheld.

CAMERA = """\
id: test-anpr-FORMAT
version: 1
domain: traffic
match:
  topic: t/anpr/{device_id}/FORMAT
decode: DECODE
time:
  path: ts
  format: iso8601
output:
  measurement: plate_FORMAT
tags:
  device_id: {topic: device_id}
fields:
  plate_hash: {path: plate, type: string, privacy: hash}
  lane: {path: lane, type: int}
  speed_kmh: {path: speed, type: float}
  snapshot: {path: $.snapshot, type: string, privacy: drop}
"""
CSV_CAMERA = CAMERA.replace("FORMAT", "csv").replace(
    "DECODE", '{format: csv, delimiter: "DELIMITER", columns: [ts, lane, plate, speed, snapshot]}'
)
KV_CAMERA = CAMERA.replace("FORMAT", "kv").replace(
    "DECODE", '{format: keyvalue, pair_separator: "PAIRS", kv_separator: "KV"}'
)
RAW_TEXT = """\
id: test-anpr-raw
version: 1
domain: traffic
match: {topic: "t/anpr/{device_id}/raw"}
decode: {format: raw, value_type: text}
time: {source: receive}
output: {measurement: plate_raw}
fields:
  plate_hash: {path: value, type: string, privacy: hash}
"""
PRIVATE = ("plate", "snapshot")


@functools.cache
def csv_camera(delimiter: str = ",") -> CompiledProfile:
    return load_text(CSV_CAMERA.replace("DELIMITER", delimiter), "csv-camera.yaml")


@functools.cache
def kv_camera(pairs: str = ";", kv: str = "=") -> CompiledProfile:
    text = KV_CAMERA.replace("PAIRS", pairs.replace("\n", "\\n")).replace("KV", kv)
    return load_text(text, "kv-camera.yaml")


def public(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key not in PRIVATE}


@pytest.mark.parametrize(
    ("payload", "kept"),
    [
        (
            b"2026-12-03T10:00:00Z,2,29A-123.45,43.5,https://x/1.jpg",
            b"2026-12-03T10:00:00Z,2,,43.5,",
        ),
        (b"2026-12-03T10:00:00Z,2,,43.5,\r\n", b"2026-12-03T10:00:00Z,2,,43.5,"),
        # Quoted cells are read and written back by the csv module: same cells, fewer quotes.
        (b'"2026-12-03T10:00:00Z","2","29A-123.45",43.5,"a,b"', b"2026-12-03T10:00:00Z,2,,43.5,"),
        (b'soon,"lane ""2""",29A-123.45,"4,5",', b'soon,"lane ""2""",,"4,5",'),
    ],
)
def test_a_csv_line_keeps_its_columns_without_the_private_cells(
    payload: bytes, kept: bytes
) -> None:
    assert redactor_for(csv_camera())(payload) == kept


@pytest.mark.parametrize(
    ("payload", "kept"),
    [
        (
            b"ts=2026-12-03T10:00:00Z;plate=29A-123.45;lane=2;snapshot=https://x/1.jpg",
            b"ts=2026-12-03T10:00:00Z;lane=2",
        ),
        (b" plate = 29A-123.45 ;lane=2;;plate=29A-123.45;", b"lane=2;;"),  # every copy of the key
        (b"lane=2;plate=29A=123.45;speed=4=5", b"lane=2;speed=4=5"),  # a separator in a value
    ],
)
def test_a_keyvalue_payload_keeps_every_pair_but_the_private_ones(
    payload: bytes, kept: bytes
) -> None:
    assert redactor_for(kv_camera())(payload) == kept


@pytest.mark.parametrize(
    ("profile", "payload"),
    [
        (csv_camera(), b"2026-12-03T10:00:00Z,2,29A-123.45,43.5"),  # which column is the plate?
        (csv_camera(), b"2026-12-03T10:00:00Z,2,29A-123.45,43.5,,extra"),
        (csv_camera(), b"t,2,29A-123.45,43.5,\nt,2,29A-123.45,43.5,"),  # two lines
        (csv_camera(), b't,2,"29A-123.45,43.5,'),  # a quote never closed
        (csv_camera(), b't,2,"29A"-123.45,43.5,'),  # text after a closing quote
        (csv_camera(), b"t,2,29A-123.45\xff,43.5,"),  # not UTF-8
        (kv_camera(), b"lane=2;plate 29A-123.45"),  # a pair without its separator
        (kv_camera(), b"lane=2;=29A-123.45"),  # a value without a key
        (kv_camera(), b"plate=29A-123.45\xff;lane=2"),
        (kv_camera(), b"plate=29A-123.45;snapshot=x"),  # nothing left that decodes
    ],
)
def test_what_the_decoder_cannot_read_is_withheld(profile: CompiledProfile, payload: bytes) -> None:
    assert redactor_for(profile)(payload) == b""


@pytest.mark.parametrize(
    ("text", "payload"),
    [
        # A private path that is not one column or key: the flat structure has no such value.
        (CSV_CAMERA.replace("path: plate,", "path: plate.text,"), b"t,2,29A-123.45,43.5,"),
        (CSV_CAMERA.replace("path: plate,", "path: number,"), b"t,2,29A-123.45,43.5,"),
        (KV_CAMERA.replace("path: plate,", "path: plate.0,"), b"lane=2;plate=29A-123.45"),
        (RAW_TEXT, b"29A-123.45"),  # raw: the payload is the value
    ],
)
def test_a_value_that_cannot_be_located_is_withheld(text: str, payload: bytes) -> None:
    profile = load_text(
        text.replace("DELIMITER", ",").replace("PAIRS", ";").replace("KV", "="), "p.yaml"
    )
    assert profile.private_paths
    assert redactor_for(profile)(payload) == b""


# Private values start with Z, which no public text has, so "not in the payload" is exact;
# every text may hold delimiters, quotes and spaces, so the csv module's quoting is exercised.
private_values = st.text(alphabet='ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-. ,;"', max_size=12).map(
    "Z".__add__
)
public_values = st.text(alphabet='abcdefghij0123456789-. :,;|\t"', max_size=12)


def maybe_cut(draw: st.DrawFn, payload: bytes) -> bytes:
    """The payload, or sometimes its first bytes only, as a payload_too_large letter keeps."""
    return payload[: draw(st.integers(0, len(payload)))] if draw(st.booleans()) else payload


def redact_and_decode(
    profile: CompiledProfile, payload: bytes, secrets: list[str]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(the payload, what its redaction kept), both decoded, once checked that nothing private
    was kept; None when the decoder cannot read the payload or it has no public value (then
    nothing is kept)."""
    kept = redactor_for(profile)(payload)
    for secret in secrets:
        assert secret.encode() not in kept
    assert not re.search(b"[A-Z]", kept), "a piece of a private value"  # public text has no A-Z
    decode = decoder_for(profile.decode_spec)
    try:
        original = decode(payload)
    except DecodeError:
        assert kept == b""
        return None
    if not public(original):
        assert kept == b""
        return None
    return original, decode(kept)


@st.composite
def csv_lines(draw: st.DrawFn) -> tuple[str, bytes, list[str]]:
    delimiter = draw(st.sampled_from([",", ";", "|", "\t"]))
    cells = [draw(public_values), draw(public_values), draw(private_values)]
    cells += [draw(public_values), draw(private_values)]
    secrets = [cells[2], cells[4]]
    quoting = draw(st.sampled_from(["minimal", "all", "none"]))
    if quoting == "none":  # written without quoting: may split into more cells, or not parse
        # Not cut: the redactor reads a line with extra cells cut back to the profile's count
        # shifted, as if whole; process.py redacts payload_too_large letters before cutting
        # them (test_a_payload_too_large_is_redacted_before_it_is_cut).
        return delimiter, delimiter.join(cells).encode(), secrets
    written = io.StringIO()
    if quoting == "all":
        writer = csv.writer(written, delimiter=delimiter, quoting=csv.QUOTE_ALL)
    else:
        writer = csv.writer(written, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(cells)
    line = written.getvalue().removesuffix("\r\n") + draw(st.sampled_from(["", "\n", "\r\n"]))
    return delimiter, maybe_cut(draw, line.encode()), secrets


@SETTINGS
@given(csv_lines())
def test_a_redacted_csv_line_never_holds_a_private_value(
    case: tuple[str, bytes, list[str]],
) -> None:
    delimiter, payload, secrets = case
    decoded = redact_and_decode(csv_camera(delimiter), payload, secrets)
    if decoded is not None:
        original, redacted = decoded
        assert public(redacted) == public(original)
        assert [redacted[name] for name in PRIVATE] == [None, None]  # emptied, columns kept


SEPARATORS = [(";", "="), ("&", "="), (",", ":"), ("\n", "="), ("; ", ": ")]
keys = st.sampled_from(["ts", "lane", "speed", "mode", "x-y", "a.b"]) | st.text(
    alphabet="abcdefghij_", min_size=1, max_size=6
).filter(lambda key: key not in PRIVATE)


@st.composite
def keyvalue_payloads(draw: st.DrawFn) -> tuple[str, str, bytes, list[str]]:
    pairs, kv = draw(st.sampled_from(SEPARATORS))
    values = public_values.map(lambda text: text.replace(pairs, ""))
    secrets = draw(st.lists(private_values.map(lambda text: text.replace(pairs, "")), max_size=3))
    items = [f"{draw(keys)}{kv}{draw(values)}" for _ in range(draw(st.integers(0, 4)))]
    for secret in secrets:
        padding = draw(st.sampled_from(["", " "]))
        items.append(f"{padding}{draw(st.sampled_from(PRIVATE))}{padding}{kv}{secret}")
    items += draw(st.lists(st.sampled_from(["", " ", "bare"]), max_size=1))  # doubled, no kv
    shuffled = draw(st.permutations(items))
    return pairs, kv, maybe_cut(draw, pairs.join(shuffled).encode()), secrets


@SETTINGS
@given(keyvalue_payloads())
def test_a_redacted_keyvalue_payload_never_holds_a_private_value(
    case: tuple[str, str, bytes, list[str]],
) -> None:
    pairs, kv, payload, secrets = case
    decoded = redact_and_decode(kv_camera(pairs, kv), payload, secrets)
    if decoded is not None:
        original, redacted = decoded
        assert redacted == public(original)


async def test_csv_and_keyvalue_dead_letters_keep_all_but_the_plate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    profiles = tmp_path / "profiles"
    write_profile(profiles, CSV_CAMERA.replace("DELIMITER", ","), "csv.yaml")
    write_profile(profiles, KV_CAMERA.replace("PAIRS", ";").replace("KV", "="), "kv.yaml")
    config = settings_for(tmp_path, profiles, privacy={"hash_key": HASH_KEY})
    instance = gateway_for(config, load_directory(profiles, profile_policy(config)))
    now = datetime.now(UTC).isoformat()
    messages = [
        ("t/anpr/cam-1/csv", f"{now},2,{PLATE},43.5,{SNAPSHOT}"),  # stored, hashed
        ("t/anpr/cam-1/csv", f"soon,2,{PLATE},43.5,{SNAPSHOT}"),  # no time: the cells kept
        ("t/anpr/cam-1/csv", f"{now},2,{PLATE},43.5"),  # a column missing: withheld
        ("t/anpr/cam-1/kv", f"ts=soon;plate={PLATE};lane=2;snapshot={SNAPSHOT}"),  # pairs kept
        ("t/anpr/cam-1/kv", f"ts={now};plate {PLATE}"),  # no separator: withheld
    ]
    for n, (topic, payload) in enumerate(messages):
        instance.on_message(Message(topic, payload.encode(), 1_000 + n, False, n))
    await run_and_drain(instance)

    [line] = sink_of(instance).lines
    assert line.startswith("plate_csv,device_id=cam-1 ")
    stored = [
        letter
        for _, letter in DeadLetterStore(instance.dead_letters.path).select(None, None, 0, 10)
    ]
    assert [(letter.reason, letter.payload) for letter in stored] == [
        ("no_valid_reading", b"soon,2,,43.5,"),
        ("wrong_column_count", b""),
        ("no_valid_reading", b"ts=soon;lane=2"),
        ("invalid_keyvalue", b""),
    ]
    everything = repr(sink_of(instance).writes) + repr(stored) + caplog.text
    assert PLATE not in everything
    assert SNAPSHOT not in everything


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        # Seven cells: cut to 24 bytes it would be five, read as ts, lane, plate=X,
        # speed=29A-123.45 (the plate!), snapshot=43.5. Redacted whole it is withheld.
        (b"soon,2,X,29A-123.45,43.5,url,more", b""),
        # Five cells: redacted, then cut at the limit.
        (b"soon,2,29A-123.45,43.5,http://cam/1.jpg", b"soon,2,,43.5,"),
    ],
)
def test_a_payload_too_large_is_redacted_before_it_is_cut(line: bytes, kept: bytes) -> None:
    rules = MessageRules(ProfileRegistry([csv_camera()]), MessageLimits(max_payload_bytes=24))
    outcome = rules.process(Message("t/anpr/cam-1/csv", line, 1_795_482_000 * 10**9))
    assert isinstance(outcome, Refused)
    assert (outcome.reason, outcome.payload) == ("payload_too_large", kept)
    assert b"29A" not in outcome.payload
