"""Inductive-loop traffic counter with one loop per lane.

Every minute the counter reports, per lane, the vehicles counted, the share of time the loop
was occupied and the mean speed. Weekdays have a morning (07:00-08:30 local) and an evening
(16:30-18:30) commuter peak; weekends and nights are quieter. Speed falls as the lane fills
(Greenshields: speed drops with density), and occupancy follows from count, vehicle length and
speed. Traffic here is mostly motorbikes, so the effective vehicle length is short.
"""

from __future__ import annotations

import math
import random
from typing import Any

import orjson

from simulators.clock import NS_PER_S, local_hour, local_weekday
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, gauss_factor
from simulators.surface import FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 60
MEASUREMENT = "traffic_flow"

MIN_LANES = 2
MAX_LANES = 4
# Kerb-side lane 1 carries the motorbikes and most of the flow; inner lanes less.
LANE_SHARE = (1.0, 0.8, 0.6, 0.5)
LANE_CAPACITY_PER_PERIOD = 45
# Vehicle plus loop length seen by the detector, for a motorbike-heavy mix.
EFFECTIVE_LENGTH_M = 5.0
SATURDAY = 5
NIGHT_DEMAND = 0.04
# (centre hour, width in hours, height) of demand bumps relative to the peak-hour demand.
WEEKDAY_DEMAND = ((7.75, 0.55, 1.0), (17.5, 0.7, 0.95), (12.5, 3.0, 0.4), (20.0, 1.5, 0.25))
WEEKEND_DEMAND = ((10.5, 2.5, 0.5), (19.0, 2.0, 0.5))
# Above this mean, a Poisson count is indistinguishable from a rounded normal.
POISSON_NORMAL_ABOVE = 30.0


def demand_factor(hour: float, weekday: int) -> float:
    """Traffic demand relative to the weekday peak at a local hour and day (Monday = 0)."""
    bumps = WEEKEND_DEMAND if weekday >= SATURDAY else WEEKDAY_DEMAND
    return NIGHT_DEMAND + sum(
        height * math.exp(-0.5 * ((hour - centre) / width) ** 2) for centre, width, height in bumps
    )


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson variate (Knuth's product method for small means)."""
    if mean > POISSON_NORMAL_ABOVE:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


class TrafficCounter:
    """One multi-lane loop counter."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"city/traffic/{spec.district}/{spec.device_id}/counts"
        self.interval_s = INTERVAL_S
        self.lanes = self._rng.randint(MIN_LANES, MAX_LANES)
        self._lane_tags = [
            {"district": spec.district, "device_id": spec.device_id, "lane": str(lane)}
            for lane in range(1, self.lanes + 1)
        ]
        self._peak_per_lane = self._rng.uniform(15.0, 35.0)
        self._free_speed_kmh = self._rng.uniform(45.0, 60.0)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        # `t` is the end of the counting period, whole seconds, as the counter stamps it.
        period_end_s = sim_time_ms // 1000
        demand = demand_factor(local_hour(sim_time_ms), local_weekday(sim_time_ms))
        lanes = [
            self._lane_report(lane, self._peak_per_lane * share * demand)
            for lane, share in enumerate(LANE_SHARE[: self.lanes], start=1)
        ]
        payload: dict[str, Any] = {
            "device": self.device_id,
            "t": period_end_s,
            "period_s": self.interval_s,
            "lanes": lanes,
        }
        return Telemetry(orjson.dumps(payload), self._readings(payload))

    def _lane_report(self, lane: int, mean_count: float) -> dict[str, Any]:
        count = poisson(self._rng, mean_count)
        load = min(count / LANE_CAPACITY_PER_PERIOD, 1.0)
        if count == 0:
            # Nothing crossed the loop: the counter reports zero speed, not a guess.
            return {"lane": lane, "count": 0, "occ": 0.0, "speed_kmh": 0.0}
        speed_kmh = max(
            self._free_speed_kmh * (1 - 0.75 * load**2) * gauss_factor(self._rng, 0.05), 5.0
        )
        occupied_s = count * EFFECTIVE_LENGTH_M / (speed_kmh / 3.6)
        occ_pct = min(100 * occupied_s / self.interval_s, 100.0)
        return {
            "lane": lane,
            "count": count,
            "occ": round(occ_pct, 1),
            "speed_kmh": round(speed_kmh, 1),
        }

    def _readings(self, payload: dict[str, Any]) -> list[TruthReading]:
        time_ns = payload["t"] * NS_PER_S
        return [
            TruthReading(
                measurement=MEASUREMENT,
                device_id=self.device_id,
                tags=self._lane_tags[lane["lane"] - 1],
                time_ns=time_ns,
                fields={
                    "vehicle_count": lane["count"],
                    "occupancy_pct": lane["occ"],
                    "speed_kmh": lane["speed_kmh"],
                    "period_s": payload["period_s"],
                },
            )
            for lane in payload["lanes"]
        ]


def _build(spec: DeviceSpec) -> Device:
    return TrafficCounter(spec)


SURFACE = PayloadSurface(
    format="json",
    time=TimeSlot(JsonPath(("t",)), "epoch_s"),
    out_of_range=(
        FieldEdit(JsonPath(("lanes", 0, "occ")), "occupancy_pct", 130.0),  # max 100 %
        FieldEdit(JsonPath(("lanes", 0, "speed_kmh")), "speed_kmh", 420.0),  # max 300
    ),
    wrong_type=(FieldEdit(JsonPath(("lanes", 0, "count")), "vehicle_count", "12"),),
)

KIND = DeviceKind(
    name="traffic",
    label="traffic loop counters",
    id_prefix="tc",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)
