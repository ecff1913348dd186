"""Battery-powered water flow and pressure meter on a district main.

Demand follows the town's day: low at night, a sharp morning peak (06:00-08:00 local) when
households fill their rooftop tanks, a midday plateau and an evening peak (18:00-20:00).
Pressure falls with the square of the flow (pipe friction losses), the totalizer integrates
the flow and the battery drains slowly. The meter reports every five minutes with a local
ISO 8601 timestamp, as the NB-IoT meters in the network do.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from simulators.clock import NS_PER_MS, local_hour, local_iso_ms
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, gauss_factor
from simulators.surface import FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 300
MEASUREMENT = "water_flow"

NIGHT_DEMAND = 0.25
# (centre hour, width in hours, height) of the demand peaks on top of the night floor.
DEMAND_PEAKS = ((7.0, 0.9, 1.5), (19.0, 1.1, 1.2), (12.5, 2.5, 0.45))
PEAK_DEMAND = 1.8
MIN_PRESSURE_KPA = 250.0
BATTERY_DRAIN_PCT_PER_REPORT = 0.002


def demand_factor(hour: float) -> float:
    """Demand relative to the meter's base flow at a local hour (≈0.25 at night, ≈1.8 at 7)."""
    peaks = sum(
        height * math.exp(-0.5 * ((hour - centre) / width) ** 2)
        for centre, width, height in DEMAND_PEAKS
    )
    return NIGHT_DEMAND + peaks


class WaterMeter:
    """One flow/pressure meter."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"city/water/{spec.district}/{spec.device_id}/telemetry"
        self.interval_s = INTERVAL_S
        self._tags = {"district": spec.district, "device_id": spec.device_id}
        self._base_flow_lps = self._rng.uniform(3.0, 12.0)
        self._static_kpa = self._rng.uniform(360.0, 400.0)
        self._total_m3 = self._rng.uniform(1_000.0, 50_000.0)
        self._battery_pct = self._rng.uniform(40.0, 100.0)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        # NB-IoT modules wake on their own timer; the stamp carries their millisecond jitter.
        time_ms = sim_time_ms + self._rng.randrange(1000)
        flow_lps = self._flow_lps(local_hour(time_ms))
        self._total_m3 += flow_lps * self.interval_s / 1000
        self._battery_pct = max(0.0, self._battery_pct - BATTERY_DRAIN_PCT_PER_REPORT)
        payload: dict[str, Any] = {
            "time": local_iso_ms(time_ms),
            "flow": {"value": round(flow_lps, 2), "unit": "L/s"},
            "pressure_kpa": round(self._pressure_kpa(flow_lps), 1),
            "totalizer_m3": round(self._total_m3, 3),
            "battery_pct": int(self._battery_pct),
        }
        return Telemetry(orjson.dumps(payload), [self._reading(time_ms, payload)])

    def _flow_lps(self, hour: float) -> float:
        return self._base_flow_lps * demand_factor(hour) * gauss_factor(self._rng, 0.05)

    def _pressure_kpa(self, flow_lps: float) -> float:
        load = min(flow_lps / (self._base_flow_lps * PEAK_DEMAND), 1.05)
        drop = (self._static_kpa - MIN_PRESSURE_KPA) * load**2
        return max(self._static_kpa - drop + self._rng.gauss(0.0, 1.5), 200.0)

    def _reading(self, time_ms: int, payload: dict[str, Any]) -> TruthReading:
        # Converted exactly as the rules state (value * 3.6, kPa / 100) so tests can compare
        # the gateway's unit conversion with a 1e-9 relative tolerance.
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._tags,
            time_ns=time_ms * NS_PER_MS,
            fields={
                "flow_m3h": payload["flow"]["value"] * 3.6,
                "pressure_bar": payload["pressure_kpa"] / 100,
                "total_m3": payload["totalizer_m3"],
                "battery_pct": payload["battery_pct"],
            },
        )


def _build(spec: DeviceSpec) -> Device:
    return WaterMeter(spec)


SURFACE = PayloadSurface(
    format="json",
    time=TimeSlot(JsonPath(("time",)), "iso_local"),
    out_of_range=(
        FieldEdit(JsonPath(("pressure_kpa",)), "pressure_bar", 3000.0),  # 30 bar, max 25
        FieldEdit(JsonPath(("battery_pct",)), "battery_pct", 140),  # max 100
    ),
    wrong_type=(
        FieldEdit(JsonPath(("battery_pct",)), "battery_pct", 55.5),  # not an integer
        FieldEdit(JsonPath(("flow", "value")), "flow_m3h", "n/a"),  # text
    ),
)

KIND = DeviceKind(
    name="water",
    label="water flow/pressure meters",
    id_prefix="wm",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
