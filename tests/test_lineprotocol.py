"""Line protocol encoding: escaping, types, tag order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.model import FieldValue, Point
from gateway.stages.lineprotocol import decode_line, encode_point


def test_types_and_tag_order() -> None:
    point = Point(
        "streetlight",
        (("device_id", "sl-1"), ("district", "di-su")),
        {"power_w": 152.3, "dim_pct": 100, "ok": True, "note": "fine"},
        1795482000123000000,
    )
    assert encode_point(point) == (
        "streetlight,device_id=sl-1,district=di-su "
        'power_w=152.3,dim_pct=100i,ok=true,note="fine" 1795482000123000000'
    )


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "expected"),
    [
        ("a b,c", (), {"f": 1}, r"a\ b\,c f=1i 0"),
        ("m", (("k y", "v,a=l"),), {"f": 1}, r"m,k\ y=v\,a\=l f=1i 0"),
        ("m", (), {"f i=eld": 1.5}, r"m f\ i\=eld=1.5 0"),
        ("m", (), {"s": 'say "hi" \\'}, r'm s="say \"hi\" \\" 0'),
        ("m", (), {"tiny": 1e-300, "big": 1e300}, "m tiny=1e-300,big=1e+300 0"),
    ],
)
def test_escaping(
    measurement: str, tags: tuple[tuple[str, str], ...], fields: dict[str, object], expected: str
) -> None:
    assert encode_point(Point(measurement, tags, fields, 0)) == expected  # type: ignore[arg-type]  # FieldValue union


# Names and tag values without backslashes: before a comma, space or `=`, or at the end, one is
# ambiguous in line protocol itself (see decode_line). String field values may hold any.
_TEXT = st.text(
    st.characters(codec="utf-8", exclude_characters="\\\n\r"),
    min_size=1,
    max_size=12,
)
_FIELD = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.text(max_size=20),
)


@given(
    measurement=_TEXT,
    tags=st.dictionaries(_TEXT, _TEXT, max_size=4),
    fields=st.dictionaries(_TEXT, _FIELD, min_size=1, max_size=4),
    time_ns=st.integers(-(2**62), 2**62),
)  # fmt: skip
def test_decode_line_reads_back_what_encode_point_wrote(
    measurement: str, tags: dict[str, str], fields: dict[str, FieldValue], time_ns: int
) -> None:
    point = Point(measurement, tuple(sorted(tags.items())), fields, time_ns)
    assert decode_line(encode_point(point)) == point
