"""Private keys never reach the dead-letter store in clear, whatever shape the payload has
(issue 18): nested one level deeper, inside arrays, a root that is an array, and a payload the
profile cannot read at all. The ANPR camera profile hashes `plate` and drops `snapshot`."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from gateway.policies.privacy import redactor_for
from gateway.profiles.registry import load_file

ANPR = Path(__file__).resolve().parent.parent / "device_profiles/traffic/anpr-camera-json.yaml"
PLATE = "29A-123.45"
SNAPSHOT = "https://cam.local/img/8812.jpg"


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
