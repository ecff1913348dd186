"""Energy meter in a lighting cabinet: one feeder of streetlights, reported every 15 minutes.

The cabinet's contactor follows the same dusk-to-dawn schedule as the lamps it feeds (100 %
until 23:00, 50 % after), so its power is the sum of its lamps' (a few dozen LED luminaires)
plus the control gear's standby. The meter measures the three phases and reports the phase
voltage, the mean phase current, the total active power, the energy register and the power
factor as key=value text with a Unix timestamp, e.g.
ts=1795482000;V=230.1;I=12.5;P=2876.3;E=12345.6;PF=0.98. LED drivers at full load keep the
power factor near 0.97; at night dimming it falls a little, and with the lamps off the meter
sees only the control gear's small, poorly compensated load.
"""

from __future__ import annotations

import math

from simulators.clock import NS_PER_S, local_hour
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, gauss_factor
from simulators.devices.lighting import (
    DAWN_H,
    DUSK_H,
    NOMINAL_V,
    PHOTOCELL_SPREAD_H,
    RATED_W_CHOICES,
    scheduled_dim_pct,
)
from simulators.surface import FieldEdit, Key, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 900
MEASUREMENT = "lighting_cabinet"

LAMPS_PER_CABINET = (20, 60)
CONTROL_GEAR_W = 35.0
PHASES = 3
POWER_FACTOR_LIT = 0.97
POWER_FACTOR_DIMMED = 0.93
POWER_FACTOR_STANDBY = 0.55


class CabinetMeter:
    """One cabinet and its feeder."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"city/lighting/{spec.district}/{spec.device_id}/cabinet"
        self.interval_s = INTERVAL_S
        self._tags = {"district": spec.district, "device_id": spec.device_id}
        lamps = self._rng.randint(*LAMPS_PER_CABINET)
        self._lamp_load_w = lamps * self._rng.choice(RATED_W_CHOICES)
        self._dusk_h = DUSK_H + self._rng.uniform(-PHOTOCELL_SPREAD_H, PHOTOCELL_SPREAD_H)
        self._dawn_h = DAWN_H + self._rng.uniform(-PHOTOCELL_SPREAD_H, PHOTOCELL_SPREAD_H)
        self._energy_kwh = self._rng.uniform(5_000.0, 80_000.0)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        ts_s = sim_time_ms // 1000
        hour = local_hour(sim_time_ms)
        dim = scheduled_dim_pct(hour, self._dusk_h, self._dawn_h)
        power_w = CONTROL_GEAR_W + self._lamp_load_w * dim / 100 * gauss_factor(self._rng, 0.01)
        power_factor = self._power_factor(dim)
        voltage_v = NOMINAL_V - 3.0 * math.exp(-0.5 * ((hour - 19.0) / 1.5) ** 2)
        voltage_v += self._rng.gauss(0.0, 0.8)
        current_a = power_w / (PHASES * voltage_v * power_factor)
        self._energy_kwh += power_w * self.interval_s / 3_600_000
        # The meter's display resolution; the truth reads the same text back.
        values = {
            "ts": str(ts_s),
            "V": f"{voltage_v:.1f}",
            "I": f"{current_a:.2f}",
            "P": f"{power_w:.1f}",
            "E": f"{self._energy_kwh:.1f}",
            "PF": f"{power_factor:.2f}",
        }
        payload = ";".join(f"{key}={value}" for key, value in values.items())
        return Telemetry(payload.encode(), [self._reading(ts_s, values)])

    def _power_factor(self, dim_pct: int) -> float:
        if dim_pct == 0:
            nominal = POWER_FACTOR_STANDBY
        elif dim_pct < 100:
            nominal = POWER_FACTOR_DIMMED
        else:
            nominal = POWER_FACTOR_LIT
        return min(nominal + self._rng.gauss(0.0, 0.005), 0.99)

    def _reading(self, ts_s: int, values: dict[str, str]) -> TruthReading:
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._tags,
            time_ns=ts_s * NS_PER_S,
            fields={
                "voltage_v": float(values["V"]),
                "current_a": float(values["I"]),
                "power_w": float(values["P"]),
                "energy_kwh": float(values["E"]),
                "power_factor": float(values["PF"]),
            },
        )


def _build(spec: DeviceSpec) -> Device:
    return CabinetMeter(spec)


SURFACE = PayloadSurface(
    format="keyvalue",
    time=TimeSlot(Key("ts"), "epoch_s"),
    out_of_range=(
        FieldEdit(Key("PF"), "power_factor", 1.4),  # max 1
        FieldEdit(Key("V"), "voltage_v", 650.0),  # max 500 V
        FieldEdit(Key("I"), "current_a", 520.0),  # max 400 A
    ),
    wrong_type=(
        FieldEdit(Key("V"), "voltage_v", "ERR"),
        FieldEdit(Key("E"), "energy_kwh", "n/a"),
    ),
)

KIND = DeviceKind(
    name="cabinets",
    label="lighting cabinet energy meters",
    id_prefix="cab",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
