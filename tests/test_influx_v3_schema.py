"""InfluxDB 3 refuses a field named like a tag of the same table: with `[influx] api = "v3"`
profiles that do so across files are refused when they load, naming the file and the field
(within one file schema.py refuses it whatever the engine); v1 and v2 keep them."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import GatewaySettings, InfluxSettings
from gateway.errors import ProfileError
from gateway.policies.tenants import profile_policy
from gateway.profiles.registry import load_directory

METER = """\
id: {id}
version: 1
domain: water
match:
  topic: city/{prefix}/{{district}}/{{device_id}}/telemetry
decode:
  format: json
time:
  path: time
  format: epoch_s
output:
  measurement: water_flow
tags:
{tags}
fields:
  {field}: {{path: value, type: float}}
"""
TAGS = {"district": "  district: {topic: district}", "device_id": "  device_id: {topic: device_id}"}


def write_profile(directory: Path, stem: str, tags: list[str], field: str) -> Path:
    """A meter profile writing measurement water_flow with these tags and one field."""
    directory.mkdir(exist_ok=True)
    tag_lines = "\n".join(TAGS[tag] for tag in tags)
    text = METER.format(id=f"meter-{stem}", prefix=stem, tags=tag_lines, field=field)
    path = directory / f"{stem}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def settings(api: str) -> GatewaySettings:
    influx = {"api": api, "token": "t"} | ({"org": "o", "bucket": "b"} if api == "v2" else {})
    return GatewaySettings(influx=InfluxSettings.model_validate(influx))


def test_a_field_named_like_a_tag_of_its_measurement_is_refused_for_influxdb_3(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "profiles"
    tagged = write_profile(directory, "district-meter", ["district", "device_id"], "flow_m3h")
    clashing = write_profile(directory, "plain-meter", ["device_id"], "district")
    with pytest.raises(ProfileError) as raised:
        load_directory(directory, profile_policy(settings("v3")))
    [problem] = raised.value.problems
    assert problem.startswith(f"{clashing}: fields.district: InfluxDB 3"), problem
    assert f"in {tagged}" in problem
    assert "rename the field or the tag" in problem


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_influxdb_1_and_2_keep_such_profiles(tmp_path: Path, api: str) -> None:
    directory = tmp_path / "profiles"
    write_profile(directory, "district-meter", ["district", "device_id"], "flow_m3h")
    write_profile(directory, "plain-meter", ["device_id"], "district")
    registry = load_directory(directory, profile_policy(settings(api)))
    assert len(registry.profiles) == 2
