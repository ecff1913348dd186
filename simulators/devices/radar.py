"""Side-fire traffic radar that records every vehicle and publishes a batch each minute.

Each record carries the moment the vehicle crossed the beam (epoch ms), its lane and
direction, its class and the speed (m/s) and length (cm) the radar measured. Demand follows
the loop counters' day (weekday commuter peaks, quieter weekends and nights) and the mix is
mostly motorbikes, as on Vietnamese roads. Vehicles slow as a lane fills (Greenshields, as in
the loop counter model), so peak-hour speeds are lower. The radars watch National Road 5 and
the town's arterials, where even at night a minute without any vehicle is rare; the model
always records at least one, because a batch without records carries no reading at all.
"""

from __future__ import annotations

from typing import Any

import orjson

from simulators.clock import NS_PER_MS, local_hour, local_weekday
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, gauss_factor
from simulators.devices.traffic import demand_factor, poisson
from simulators.surface import EVERY, FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

INTERVAL_S = 60
MEASUREMENT = "traffic_vehicle"
WINDOW_MS = INTERVAL_S * 1000

LANE_CHOICES = (2, 4)  # lanes in both directions: the first half inbound, the rest outbound
LANE_CAPACITY_PER_MINUTE = 40
# class: (share of vehicles, free-flow speed km/h, length range cm)
CLASSES: dict[str, tuple[float, float, tuple[int, int]]] = {
    "motorbike": (0.78, 42.0, (175, 210)),
    "car": (0.16, 58.0, (390, 500)),
    "truck": (0.04, 50.0, (650, 1200)),
    "bus": (0.02, 48.0, (850, 1200)),
}
MIN_SPEED_KMH = 4.0
# The truth holds the decimal each conversion means (11.83 m/s = 42.588 km/h, 192 cm = 1.92 m),
# computed in integers and divided once, which gives the float nearest to it.
CM_PER_M = 100


class TrafficRadar:
    """One radar covering every lane of a road section."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self.device_id = spec.device_id
        self.topic = f"city/traffic/{spec.district}/{spec.device_id}/vehicles"
        self.interval_s = INTERVAL_S
        self._district = spec.district
        self.lanes = self._rng.choice(LANE_CHOICES)
        self._peak_per_lane = self._rng.uniform(12.0, 30.0)
        self._speed_factor = self._rng.uniform(0.9, 1.15)  # a wide arterial or a busy street
        self._seq = self._rng.randrange(100_000)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        # The batch holds the vehicles of the minute before `sent`.
        window_start_ms = sim_time_ms - WINDOW_MS
        demand = demand_factor(local_hour(sim_time_ms), local_weekday(sim_time_ms))
        counts = [poisson(self._rng, self._peak_per_lane * demand) for _ in range(self.lanes)]
        if not any(counts):
            counts[self._rng.randrange(self.lanes)] = 1
        lanes = [lane for lane, count in enumerate(counts, start=1) for _ in range(count)]
        self._rng.shuffle(lanes)
        # Distinct milliseconds: no two records of one radar share a timestamp (and a series).
        offsets_ms = sorted(self._rng.sample(range(WINDOW_MS), len(lanes)))
        vehicles = [
            self._vehicle(window_start_ms + offset_ms, lane, counts[lane - 1])
            for offset_ms, lane in zip(offsets_ms, lanes, strict=True)
        ]
        self._seq += 1
        payload: dict[str, Any] = {
            "dev": self.device_id,
            "seq": self._seq,
            "sent": sim_time_ms // 1000,
            "vehicles": vehicles,
        }
        return Telemetry(orjson.dumps(payload), [self._reading(v) for v in vehicles])

    def _vehicle(self, time_ms: int, lane: int, lane_count: int) -> dict[str, Any]:
        names = list(CLASSES)
        cls = self._rng.choices(names, weights=[CLASSES[name][0] for name in names])[0]
        _, free_kmh, (shortest_cm, longest_cm) = CLASSES[cls]
        load = min(lane_count / LANE_CAPACITY_PER_MINUTE, 1.0)
        speed_kmh = free_kmh * self._speed_factor * (1 - 0.7 * load**2)
        speed_kmh = max(speed_kmh * gauss_factor(self._rng, 0.12), MIN_SPEED_KMH)
        return {
            "t": time_ms,
            "lane": lane,
            "dir": "in" if lane <= self.lanes // 2 else "out",
            "cls": cls,
            "v_ms": round(speed_kmh / 3.6, 2),
            "len_cm": self._rng.randint(shortest_cm, longest_cm),
        }

    def _reading(self, vehicle: dict[str, Any]) -> TruthReading:
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=vehicle_tags(self._district, self.device_id, vehicle),
            time_ns=vehicle["t"] * NS_PER_MS,
            fields={
                "speed_kmh": round(vehicle["v_ms"] * 100) * 36 / 1000,  # cm/s x 0.036
                "length_m": vehicle["len_cm"] / CM_PER_M,
            },
        )


def _build(spec: DeviceSpec) -> Device:
    return TrafficRadar(spec)


SURFACE = PayloadSurface(
    format="json",
    time=TimeSlot(JsonPath(("vehicles", EVERY, "t")), "epoch_ms"),
    out_of_range=(
        FieldEdit(JsonPath(("vehicles", 0, "len_cm")), "length_m", 4500),  # 45 m, max 30
        FieldEdit(JsonPath(("vehicles", 0, "v_ms")), "speed_kmh", 90.0),  # 324 km/h, max 250
    ),
    wrong_type=(FieldEdit(JsonPath(("vehicles", 0, "v_ms")), "speed_kmh", "11.8"),),
)

KIND = DeviceKind(
    name="radars",
    label="per-vehicle traffic radars",
    id_prefix="rd",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
)


def vehicle_tags(district: str, device_id: str, vehicle: dict[str, Any]) -> dict[str, str]:
    """The tags of one vehicle record, as the radar and ANPR camera profiles declare them."""
    return {
        "district": district,
        "device_id": device_id,
        "lane": str(vehicle["lane"]),
        "direction": vehicle["dir"],
        "vehicle_class": vehicle["cls"],
    }
