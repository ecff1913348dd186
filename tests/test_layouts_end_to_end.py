"""The declarative-layout devices through real processes: simulators -> mosquitto -> gateway ->
influxd. A channel/type stream (air stations), fPort/header variants (water meters) and flag
groups with an optional status word (river probes), each in a The Things Stack v3 uplink, and
fPort variants in ChirpStack v4 events (water meters sharing ChirpStack's topic with the
streetlights, told apart by their device profile) are stored exactly as the simulators' truth
says: values, types and times, with the sentinel readings ("no reading") left out rather than
stored as numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import GatewayProcess, assert_stored_as_sent, gateway_config, simulate_and_wait
from tests.servers import Influxd, Mosquitto

pytestmark = pytest.mark.integration


def test_layout_devices_are_stored_exactly(
    tmp_path: Path, mosquitto: Mosquitto, influxd: Influxd, influx_db: str
) -> None:
    config = gateway_config(tmp_path / "gateway.toml", mosquitto, influxd, influx_db)
    with GatewayProcess(config) as gateway:
        truth, expected, stored = simulate_and_wait(
            mosquitto, influxd, influx_db, tmp_path / "truth.jsonl",
            "--air-stations", "20", "--water-meters", "20", "--river-probes", "20",
            "--lorawan-meters", "20", "--lorawan-lights", "10",
            "--messages", "3000", "--rate", "0", "--seed", "5",
        )  # fmt: skip
        assert gateway.stop() == 0
    assert set(expected) == {"air_quality", "water_meter", "river_level", "streetlight"}
    assert stored == expected
    assert sum(expected.values()) == 3000
    assert_stored_as_sent(influxd, influx_db, truth)
    sentinel_left_out = [
        row
        for row in truth
        if row["measurement"] == "air_quality" and "co2_ppm" not in row["fields"]
    ]
    assert sentinel_left_out, "the run should include CO2 cells warming up (ffff)"
    assert "Traceback" not in gateway.log()
