"""Line protocol encoding: escaping, types, tag order."""

from __future__ import annotations

import pytest

from gateway.model import Point
from gateway.stages.lineprotocol import encode_point


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
