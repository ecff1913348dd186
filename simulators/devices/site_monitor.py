"""Site monitoring unit in a mobile base station (BTS) or street cabinet.

A 48 V battery string (100-200 Ah) backs up the rectifiers that feed the site's DC load. The
grid fails now and then (about every other day somewhere in a ward, for two hours on average);
the battery then carries the load, its voltage and charge fall, and the air-conditioner stops
so the cabinet warms up. When the charge reaches the low-voltage disconnect the load is cut
(the site goes off air) until mains returns and the rectifiers recharge the battery at a tenth
of its capacity per hour. Technicians visit in working hours and open the door. The RTU
publishes a 13-byte binary frame every five minutes.
"""

from __future__ import annotations

import math
import struct

from simulators.clock import NS_PER_S, local_hour
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, visit_countdown
from simulators.surface import FieldEdit, Packed, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 300
MEASUREMENT = "connectivity_site"

# version, time s, battery 0.01 V, charge %, temperature 0.1 °C, load 0.1 A, status bits
FRAME = struct.Struct(">BIHBhHB")
FRAME_VERSION = 1
MAINS_BIT, DOOR_BIT = 0x01, 0x02

MAINS_FAILURE_P = 0.002  # per report
MAINS_RETURN_P = 0.04  # per report: outages last two hours on average
FLOAT_V = 54.0
CHARGE_RATE_C = 0.1  # rectifier current limit, in capacities per hour
LOW_VOLTAGE_DISCONNECT_PCT = 5.0
INTERNAL_RESISTANCE_OHM = 0.02
COOLED_C = 27.0  # air-conditioned setpoint
VISIT_ONSET_P = 0.002  # per working-hours report
VISIT_REPORTS = (4, 15)
# The frame counts 0.01 V, 0.1 °C and 0.1 A; the truth holds the decimals they mean.
CENTI_PER_UNIT, DECI_PER_UNIT = 100, 10


class SiteMonitor:
    """One telecom site: mains, rectifiers, battery, load and cabinet."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"city/connectivity/{spec.district}/{spec.device_id}/site"
        self.interval_s = INTERVAL_S
        self._tags = {"district": spec.district, "device_id": spec.device_id}
        self._capacity_ah = self._rng.choice((100.0, 150.0, 200.0))
        self._load_a = self._rng.uniform(15.0, 35.0)
        self._soc_pct = 100.0
        self._mains = True
        self._cabinet_c = COOLED_C
        self._visit_reports = 0

    def next_message(self, sim_time_ms: int) -> Telemetry:
        ts_s = sim_time_ms // 1000
        hour = local_hour(sim_time_ms)
        self._update_mains_and_visits(hour)
        load_a = self._load(hour)
        self._update_battery(load_a)
        self._update_cabinet(hour)
        values = (
            FRAME_VERSION,
            ts_s,
            round(self._battery_v(load_a) * 100),
            math.floor(self._soc_pct),
            round(self._cabinet_c * 10),
            round(load_a * 10),
            (MAINS_BIT if self._mains else 0) | (DOOR_BIT if self._visit_reports else 0),
        )
        return Telemetry(FRAME.pack(*values), [self._reading(values)])

    def _update_mains_and_visits(self, hour: float) -> None:
        rng = self._rng
        if self._mains:
            self._mains = rng.random() >= MAINS_FAILURE_P
        else:
            self._mains = rng.random() < MAINS_RETURN_P
        self._visit_reports = visit_countdown(
            rng, hour, self._visit_reports, VISIT_ONSET_P, VISIT_REPORTS
        )

    def _load(self, hour: float) -> float:
        if not self._mains and self._soc_pct <= LOW_VOLTAGE_DISCONNECT_PCT:
            return 0.0  # disconnected: the site is off air
        # Radio load follows the day's traffic: ~10 % more in the evening than before dawn.
        busy = 0.05 * (1 + math.sin(2 * math.pi * (hour - 14.0) / 24))
        return self._load_a * (1 + busy) * math.exp(self._rng.gauss(0.0, 0.02))

    def _update_battery(self, load_a: float) -> None:
        hours = self.interval_s / 3600
        if self._mains:
            self._soc_pct += CHARGE_RATE_C * hours * 100
        else:
            self._soc_pct -= load_a * hours / self._capacity_ah * 100
        self._soc_pct = min(max(self._soc_pct, 0.0), 100.0)

    def _battery_v(self, load_a: float) -> float:
        if self._mains:
            charging = 0.8 if self._soc_pct < 99.0 else 0.0  # bulk charge sits above float
            return FLOAT_V + charging + self._rng.gauss(0.0, 0.03)
        # A 24-cell lead-acid string under load: ~50.4 V full, ~44 V near the disconnect.
        resting_v = 44.0 + 7.0 * self._soc_pct / 100
        return resting_v - load_a * INTERNAL_RESISTANCE_OHM + self._rng.gauss(0.0, 0.03)

    def _update_cabinet(self, hour: float) -> None:
        # Without mains the air-conditioner stops and the cabinet drifts towards ~10 °C above
        # the air; with mains it is pulled back to its setpoint.
        air_c = 26.0 + 5.0 * math.sin(2 * math.pi * (hour - 9.0) / 24)
        target_c = COOLED_C if self._mains else air_c + 10.0
        self._cabinet_c += 0.3 * (target_c - self._cabinet_c) + self._rng.gauss(0.0, 0.2)

    def _reading(self, values: tuple[int, ...]) -> TruthReading:
        _, ts_s, battery_cv, soc_pct, temp_dc, load_da, status = values
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=self._tags,
            time_ns=ts_s * NS_PER_S,
            fields={
                "mains_present": status & MAINS_BIT,
                "door_open": (status & DOOR_BIT) >> 1,
                "battery_v": battery_cv / CENTI_PER_UNIT,
                "battery_pct": soc_pct,
                "temperature_c": temp_dc / DECI_PER_UNIT,
                "load_current_a": load_da / DECI_PER_UNIT,
            },
        )


def _build(spec: DeviceSpec) -> Device:
    return SiteMonitor(spec)


# A frame has no types to get wrong: only values out of range.
SURFACE = PayloadSurface(
    format="binary",
    time=TimeSlot(Packed(1, ">I"), "epoch_s"),
    out_of_range=(
        FieldEdit(Packed(8, ">h"), "temperature_c", 1200),  # 120 °C, max 90
        FieldEdit(Packed(7, ">B"), "battery_pct", 150),  # max 100
        FieldEdit(Packed(5, ">H"), "battery_v", 9000),  # 90 V, max 65
    ),
)

KIND = DeviceKind(
    name="site-monitors",
    label="BTS/cabinet site monitors",
    id_prefix="sm",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
