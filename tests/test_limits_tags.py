"""Tag values are capped in bytes ([limits] max_tag_value_bytes): a longer one is dropped with
the reason tag_too_long, as a bad field is, and never reaches InfluxDB's series index."""

from __future__ import annotations

import pytest

from gateway.profiles.registry import load_text
from gateway.stages.decode import decoder_for
from gateway.stages.normalize import rows_normalizer
from tests.fakes import LEVEL_PROFILE


@pytest.mark.parametrize("length", [256, 257, 60_000])
def test_a_tag_value_over_the_cap_is_dropped_with_a_reason(length: int) -> None:
    profile = load_text(LEVEL_PROFILE, "level.yaml")
    normalize = rows_normalizer(profile, max_tag_value_bytes=256)
    device = "d" * length
    drops: list[tuple[str, str]] = []
    document = decoder_for(profile.decode_spec)(b"1.5")
    [line] = normalize(document, {"device_id": device}, 1_000, drops).lines
    if length <= 256:
        assert drops == []
        assert line.startswith(f"tank_level,device_id={device} ")
    else:
        assert drops == [("device_id", "tag_too_long")]
        assert line.startswith("tank_level level_m=1.5")
