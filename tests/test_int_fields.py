"""Int fields hold what InfluxDB stores as int64: a larger value is dropped, not sent.

InfluxDB refuses a whole line for an int field beyond int64, and before the line is found the
batch it is in: one bad counter cost thousands of write requests (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.model import Drop
from gateway.profiles.registry import load_file
from gateway.stages.normalize import normalize

PROFILE = """\
id: test-counter
version: 1
domain: water
match:
  topic: test/counter/{device_id}
decode:
  format: json
time:
  source: receive
output:
  measurement: counter
tags:
  device_id: {topic: device_id}
fields:
  pulses: {path: n, type: int}
  capped: {path: n, type: int, max: 100000000000000000000}
  level: {path: level, type: float}
"""


@pytest.mark.parametrize(
    ("raw", "stored"),
    [(2**63 - 1, 2**63 - 1), (-(2**63), -(2**63)), (2**63, None), (-(2**63) - 1, None),
     (1e19, None), (9.2e18, 9_200_000_000_000_000_000)],
)  # fmt: skip
def test_int_fields_stay_within_int64(tmp_path: Path, raw: float, stored: int | None) -> None:
    file = tmp_path / "counter.yaml"
    file.write_text(PROFILE)
    drops: list[Drop] = []
    [point] = normalize(load_file(file), {"n": raw, "level": 1.0}, {"device_id": "c-1"}, 1, drops)
    assert point.fields.get("pulses") == stored
    assert point.fields.get("capped") == stored  # a max beyond int64 is capped too
    expected = (
        [] if stored is not None else [("pulses", "out_of_range"), ("capped", "out_of_range")]
    )
    assert drops == expected
