"""Battery pressure logger at a hydrant or a district-metered-area boundary.

Every five minutes it sends one CSV line, "epoch seconds,pressure in bar,water temperature in
degC" (e.g. 1795482000,2.85,24.1). Pressure falls with the town's demand, most at the morning
and evening peaks (friction losses grow with the square of the flow, as at the flow meters),
and recovers at night; each logger sits at its own elevation, so its static head differs.
Water temperature in the buried mains follows the day only faintly.
"""

from __future__ import annotations

import math

from simulators.clock import NS_PER_S, local_hour
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry
from simulators.devices.water import PEAK_DEMAND, demand_factor
from simulators.surface import Column, FieldEdit, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 300
MEASUREMENT = "water_pressure"

STATIC_BAR = (3.2, 4.0)
PEAK_DROP_SHARE = (0.25, 0.4)  # of the static pressure, lost at the height of the demand
MIN_PRESSURE_BAR = 1.2


class PressureLogger:
    """One logger on the distribution network."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"city/water/{spec.district}/{spec.device_id}/pressure"
        self.interval_s = INTERVAL_S
        self._tags = {"district": spec.district, "device_id": spec.device_id}
        self._static_bar = self._rng.uniform(*STATIC_BAR)
        self._peak_drop_bar = self._static_bar * self._rng.uniform(*PEAK_DROP_SHARE)
        self._ground_c = self._rng.uniform(24.0, 27.0)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        ts_s = sim_time_ms // 1000
        hour = local_hour(sim_time_ms)
        load = min(demand_factor(hour) / PEAK_DEMAND, 1.05)
        pressure = self._static_bar - self._peak_drop_bar * load**2 + self._rng.gauss(0, 0.02)
        temperature = self._ground_c + 0.6 * math.sin(2 * math.pi * (hour - 10.0) / 24)
        temperature += self._rng.gauss(0.0, 0.05)
        cells = [str(ts_s), f"{max(pressure, MIN_PRESSURE_BAR):.2f}", f"{temperature:.1f}"]
        return Telemetry(",".join(cells).encode(), [self._reading(ts_s, cells)])

    def _reading(self, ts_s: int, cells: list[str]) -> TruthReading:
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._tags,
            time_ns=ts_s * NS_PER_S,
            fields={"pressure_bar": float(cells[1]), "temperature_c": float(cells[2])},
        )


def _build(spec: DeviceSpec) -> Device:
    return PressureLogger(spec)


SURFACE = PayloadSurface(
    format="csv",
    time=TimeSlot(Column(0), "epoch_s"),
    out_of_range=(
        FieldEdit(Column(1), "pressure_bar", "31.50"),  # max 25 bar
        FieldEdit(Column(1), "pressure_bar", "-0.40"),  # a sensor offset below zero
        FieldEdit(Column(2), "temperature_c", "75.0"),  # max 60 °C
    ),
    wrong_type=(
        FieldEdit(Column(2), "temperature_c", "ERR"),
        FieldEdit(Column(1), "pressure_bar", "n/a"),
    ),
)

KIND = DeviceKind(
    name="pressure-loggers",
    label="network pressure loggers",
    id_prefix="pl",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
