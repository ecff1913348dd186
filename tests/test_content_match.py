"""match.content on a shared topic: the byte test that spares a fallback's messages a second
JSON parse (registry._Choice) never answers otherwise than parsing would."""

from __future__ import annotations

import json
import shutil
import tempfile
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.profiles.content import content_needle, content_test
from gateway.profiles.registry import ProfileRegistry, load_directory
from gateway.profiles.schema import ContentMatchSpec

CODECS = Path(__file__).parent / "codecs"
SHARED_TOPIC = "application/17c82e96/device/a84041000181c061/event/up"
# The tank's model name needs escapes in ASCII-only JSON (\\u00e9): a byte test that ignored
# them would send its messages to the fallback.
TANK = "tank-l\u00e9v\u00e8l"
MODELS = {"soil-probe": "test-soil-probe-cs", TANK: "test-tank-level-cs"}

# Names that escape in JSON (quotes, backslashes, control and non-ASCII characters), and the
# models' own names, inside other text or alone.
names = st.one_of(
    st.sampled_from([*MODELS, "soil-probe ", '"soil-probe"', "tank-level", "soil-próbe"]),
    st.text(alphabet=st.sampled_from('soil-prbetankv"\\\n\u00e9\u1ec7/'), max_size=14),
)


@cache
def shared_topic_registry() -> ProfileRegistry:
    folder = Path(tempfile.mkdtemp(prefix="content-match-"))
    for name in (
        "soil-probe-cs.yaml",
        "lorawan-other-cs.yaml",
        "soil-probe-ts013.js",
        "misbehaving.js",
    ):
        shutil.copy(CODECS / name, folder / name)
    tank = (CODECS / "tank-level-cs.yaml").read_text(encoding="utf-8")
    assert "equals: tank-level}" in tank
    tank = tank.replace("equals: tank-level}", f"equals: {TANK}}}")
    (folder / "tank-level-cs.yaml").write_text(tank, encoding="utf-8")
    return load_directory(folder)


def uplink(model: str, *, ascii_only: bool, decoy: str) -> bytes:
    event = {
        "deviceInfo": {"deviceProfileName": model, "deviceName": decoy},
        "fPort": 2,
        "data": "AQ==",
    }
    return json.dumps(event, ensure_ascii=ascii_only).encode()


@settings(max_examples=400, deadline=None)
@given(names, st.booleans(), names)
def test_a_shared_topic_resolves_as_parsing_the_message_would(
    model: str, ascii_only: bool, decoy: str
) -> None:
    registry = shared_topic_registry()
    resolved = registry.resolve(SHARED_TOPIC, uplink(model, ascii_only=ascii_only, decoy=decoy))
    assert resolved is not None
    assert resolved.profile.id == MODELS.get(model, "test-lorawan-other-cs")


@settings(max_examples=400, deadline=None)
@given(names, names, st.booleans(), st.booleans())
def test_a_payload_without_the_needle_or_a_backslash_never_passes(
    wanted: str, value: str, prefix: bool, ascii_only: bool
) -> None:
    spec = ContentMatchSpec(path="a.b", **{"prefix" if prefix else "equals": wanted or "x"})
    payload = json.dumps({"a": {"b": value}}, ensure_ascii=ascii_only).encode()
    needle = content_needle(spec)
    assert needle is not None
    if b"\\" not in payload and needle not in payload:
        assert not content_test(spec)(json.loads(payload))


def test_tests_that_need_the_parsed_message_have_no_needle() -> None:
    assert content_needle(ContentMatchSpec(path="a", present=True)) is None
    assert content_needle(ContentMatchSpec(path="a", equals=7)) is None
    assert content_needle(ContentMatchSpec(path="a", equals="7")) == b'"7"'
    assert content_needle(ContentMatchSpec(path="a", prefix="wm-")) == b'"wm-'
