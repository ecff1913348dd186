"""Multi-parameter water-quality probe at a reservoir outlet.

Every five minutes the datalogger reads five electrodes and publishes JSON stamped with its
local clock (ICT, no offset). Each parameter drifts around the probe's own baseline as a
mean-reverting random walk; water temperature follows the day, and free chlorine decays faster
in the warm afternoon. Now and then an incident pulls one parameter towards a value outside
the QCVN 01-1:2018/BYT limits for a few hours (a lime-dosing fault pushes pH below 6.0 or above
8.5, works on a main stir up sediment past 2 NTU, the chlorinator under- or over-doses outside
0.2-1.0 mg/L) and it relaxes back afterwards. Conductivity is reported in mS/cm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from simulators.clock import NS_PER_S, local_hour, local_naive_s
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry
from simulators.surface import FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 300
MEASUREMENT = "water_quality"

# Share of the gap to the current target a parameter closes per report (~20 min time constant).
REVERSION = 0.25
INCIDENT_ONSET_P = 0.0015  # per report: about one incident per probe every two or three days
INCIDENT_REPORTS = (12, 48)  # one to four hours
# Where each kind of incident pulls its parameter (outside the limits, sometimes well outside).
INCIDENT_TARGETS: dict[str, tuple[float, float]] = {
    "ph_low": (5.4, 5.9),
    "ph_high": (8.6, 9.2),
    "turbidity": (2.5, 6.0),
    "chlorine_low": (0.05, 0.15),
    "chlorine_high": (1.1, 1.6),
}
INCIDENT_PARAMETER = {
    "ph_low": "ph",
    "ph_high": "ph",
    "turbidity": "turbidity",
    "chlorine_low": "chlorine",
    "chlorine_high": "chlorine",
}
NOISE = {"ph": 0.02, "turbidity": 0.03, "chlorine": 0.015, "conductivity": 2.0}
US_PER_MS = 1000


@dataclass(slots=True)
class _Incident:
    parameter: str
    target: float
    reports_left: int


class WaterQualityProbe:
    """One probe and its datalogger."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"city/water/{spec.district}/{spec.device_id}/quality"
        self.interval_s = INTERVAL_S
        self._tags = {"district": spec.district, "device_id": spec.device_id}
        self._baseline = {
            "ph": self._rng.uniform(7.0, 7.6),
            "turbidity": self._rng.uniform(0.2, 0.8),
            "chlorine": self._rng.uniform(0.4, 0.7),
            "conductivity": self._rng.uniform(300.0, 600.0),  # uS/cm
        }
        self._value = dict(self._baseline)
        self._incident: _Incident | None = None

    def next_message(self, sim_time_ms: int) -> Telemetry:
        ts_s = sim_time_ms // 1000
        hour = local_hour(sim_time_ms)
        self._update_incident()
        for name in self._value:
            self._step(name, self._target(name, hour))
        temp_c = 26.0 + 1.2 * math.sin(2 * math.pi * (hour - 9.0) / 24) + self._rng.gauss(0, 0.1)
        payload: dict[str, Any] = {
            "ts": local_naive_s(ts_s, sep=" "),
            "ph": round(self._value["ph"], 2),
            "turb_ntu": round(max(self._value["turbidity"], 0.0), 2),
            "cl_mgl": round(max(self._value["chlorine"], 0.0), 2),
            "cond_mscm": round(self._value["conductivity"] / 1000, 3),
            "temp_c": round(temp_c, 1),
            "wiper": "idle",
        }
        return Telemetry(orjson.dumps(payload), [self._reading(ts_s, payload)])

    def _update_incident(self) -> None:
        if self._incident is not None:
            self._incident.reports_left -= 1
            if self._incident.reports_left <= 0:
                self._incident = None
        elif self._rng.random() < INCIDENT_ONSET_P:
            kind = self._rng.choice(sorted(INCIDENT_TARGETS))
            self._incident = _Incident(
                parameter=INCIDENT_PARAMETER[kind],
                target=self._rng.uniform(*INCIDENT_TARGETS[kind]),
                reports_left=self._rng.randint(*INCIDENT_REPORTS),
            )

    def _target(self, name: str, hour: float) -> float:
        if self._incident is not None and self._incident.parameter == name:
            return self._incident.target
        if name == "chlorine":
            # Chlorine decays faster in warm water: ~15 % lower mid-afternoon than at dawn.
            warmth = 1 + math.sin(2 * math.pi * (hour - 9.0) / 24)  # 0 at 03:00, 2 at 15:00
            return self._baseline[name] * (1 - 0.075 * warmth)
        return self._baseline[name]

    def _step(self, name: str, target: float) -> None:
        value = self._value[name]
        noise = self._rng.gauss(0.0, NOISE[name])
        self._value[name] = value + REVERSION * (target - value) + noise

    def _reading(self, ts_s: int, payload: dict[str, Any]) -> TruthReading:
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._tags,
            time_ns=ts_s * NS_PER_S,
            fields={
                "ph": payload["ph"],
                "turbidity_ntu": payload["turb_ntu"],
                "free_chlorine_mgl": payload["cl_mgl"],
                # 0.452 mS/cm is 452 uS/cm: a whole number at the probe's resolution.
                "conductivity_uscm": float(round(payload["cond_mscm"] * US_PER_MS)),
                "temperature_c": payload["temp_c"],
            },
        )


def _build(spec: DeviceSpec) -> Device:
    return WaterQualityProbe(spec)


SURFACE = PayloadSurface(
    format="json",
    time=TimeSlot(JsonPath(("ts",)), "naive_space"),
    out_of_range=(
        FieldEdit(JsonPath(("ph",)), "ph", 15.2),  # max 14
        FieldEdit(JsonPath(("temp_c",)), "temperature_c", 75.0),  # max 60 °C
    ),
    wrong_type=(
        FieldEdit(JsonPath(("turb_ntu",)), "turbidity_ntu", "high"),
        FieldEdit(JsonPath(("ph",)), "ph", "7.2"),
    ),
)

KIND = DeviceKind(
    name="quality-probes",
    label="water-quality probes",
    id_prefix="wq",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
