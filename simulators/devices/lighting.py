"""Streetlight controller: an LED luminaire on a photocell-and-timer schedule.

Lit from dusk (~17:30 local) to dawn (~06:00), full output until 23:00 and half output after,
the usual energy-saving night dimming for Vietnamese urban lighting. The controller reports
every minute with a running energy meter; rarely the lamp fails (fault 3) and stays dark while
the schedule says it should be lit, until a crew or a power cycle clears it.
"""

from __future__ import annotations

import math
import random
from typing import Any

import orjson

from simulators.clock import NS_PER_MS, local_hour
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, gauss_factor
from simulators.surface import FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 60
MEASUREMENT = "streetlight"

DUSK_H = 17.5
DAWN_H = 6.0
NIGHT_DIM_FROM_H = 23.0
EVENING_DIM_PCT = 100
NIGHT_DIM_PCT = 50
# Each photocell switches a few minutes apart from its neighbours.
PHOTOCELL_SPREAD_H = 10 / 60

RATED_W_CHOICES = (100.0, 120.0, 150.0)
STANDBY_W = 0.5
NOMINAL_V = 230.0
# Low-voltage grid in the evening peak sags a few volts; the noise keeps within ~±5 V.
EVENING_SAG_V = 3.0
VOLTAGE_NOISE_V = 1.0

FAULT_NONE = 0
FAULT_LAMP_FAILURE = 3
# Per lit report: a fault roughly every few nights per device, visible in a short demo run.
FAULT_ONSET_P = 0.0003
# Per report while faulted: cleared after ~50 minutes on average.
FAULT_RECOVERY_P = 0.02


def scheduled_dim_pct(hour: float, dusk_h: float = DUSK_H, dawn_h: float = DAWN_H) -> int:
    """Commanded output at a local hour: 0 by day, 100 in the evening, 50 late at night."""
    if dawn_h <= hour < dusk_h:
        return 0
    if dusk_h <= hour < NIGHT_DIM_FROM_H:
        return EVENING_DIM_PCT
    return NIGHT_DIM_PCT


def next_fault(
    rng: random.Random,
    fault: int,
    *,
    scheduled_on: bool,
    onset_p: float = FAULT_ONSET_P,
    recovery_p: float = FAULT_RECOVERY_P,
) -> int:
    """The lamp's fault code at this report: a lamp fails now and then while the schedule has
    it lit, and stays dark until a crew or a power cycle clears it (chances per report)."""
    if fault != FAULT_NONE:
        return FAULT_NONE if rng.random() < recovery_p else fault
    if scheduled_on and rng.random() < onset_p:
        return FAULT_LAMP_FAILURE
    return FAULT_NONE


class Streetlight:
    """One streetlight controller."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"city/lighting/{spec.district}/{spec.device_id}/telemetry"
        self.interval_s = INTERVAL_S
        self._tags = {"district": spec.district, "device_id": spec.device_id}
        self._rated_w = self._rng.choice(RATED_W_CHOICES)
        self._dusk_h = DUSK_H + self._rng.uniform(-PHOTOCELL_SPREAD_H, PHOTOCELL_SPREAD_H)
        self._dawn_h = DAWN_H + self._rng.uniform(-PHOTOCELL_SPREAD_H, PHOTOCELL_SPREAD_H)
        self._energy_kwh = self._rng.uniform(100.0, 5000.0)
        self._fault = FAULT_NONE

    def next_message(self, sim_time_ms: int) -> Telemetry:
        # Controllers stamp reports from their own RTC, a few hundred ms after the minute.
        ts_ms = sim_time_ms + self._rng.randrange(1000)
        hour = local_hour(ts_ms)
        dim = scheduled_dim_pct(hour, self._dusk_h, self._dawn_h)
        self._fault = next_fault(self._rng, self._fault, scheduled_on=dim > 0)
        lamp_on = dim > 0 and self._fault == FAULT_NONE
        power_w = self._power_w(dim) if lamp_on else STANDBY_W * gauss_factor(self._rng, 0.1)
        voltage_v = self._voltage_v(hour)
        self._energy_kwh += power_w * self.interval_s / 3_600_000
        payload: dict[str, Any] = {
            "ts": ts_ms,
            "lamp": {"state": "ON" if lamp_on else "OFF", "dim": dim, "fault": self._fault},
            "elec": {
                "p_w": round(power_w, 1),
                "v": round(voltage_v, 1),
                "i_a": round(power_w / voltage_v, 3),
                "e_kwh": round(self._energy_kwh, 3),
            },
        }
        return Telemetry(orjson.dumps(payload), [self._reading(payload)])

    def _power_w(self, dim_pct: int) -> float:
        return self._rated_w * dim_pct / 100 * gauss_factor(self._rng, 0.01)

    def _voltage_v(self, hour: float) -> float:
        evening_sag = EVENING_SAG_V * math.exp(-0.5 * ((hour - 19.0) / 1.5) ** 2)
        noise = self._rng.gauss(0.0, VOLTAGE_NOISE_V)
        return min(max(NOMINAL_V - evening_sag + noise, NOMINAL_V - 5), NOMINAL_V + 5)

    def _reading(self, payload: dict[str, Any]) -> TruthReading:
        lamp, elec = payload["lamp"], payload["elec"]
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._tags,
            time_ns=payload["ts"] * NS_PER_MS,
            fields={
                "power_w": elec["p_w"],
                "energy_kwh": elec["e_kwh"],
                "voltage_v": elec["v"],
                "current_a": elec["i_a"],
                "dim_pct": lamp["dim"],
                "lamp_on": 1 if lamp["state"] == "ON" else 0,
                "fault_code": lamp["fault"],
            },
        )


def _build(spec: DeviceSpec) -> Device:
    return Streetlight(spec)


SURFACE = PayloadSurface(
    format="json",
    time=TimeSlot(JsonPath(("ts",)), "epoch_ms"),
    out_of_range=(
        FieldEdit(JsonPath(("elec", "p_w")), "power_w", 2500.0),  # max 1000 W
        FieldEdit(JsonPath(("lamp", "dim")), "dim_pct", 180),  # max 100 %
        FieldEdit(JsonPath(("elec", "i_a")), "current_a", 25.0),  # max 10 A
    ),
    wrong_type=(
        FieldEdit(JsonPath(("elec", "v")), "voltage_v", "230.1"),  # text
        FieldEdit(JsonPath(("lamp", "fault")), "fault_code", 1.5),  # not an integer
    ),
)

KIND = DeviceKind(
    name="lighting",
    label="streetlight controllers",
    id_prefix="sl",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
