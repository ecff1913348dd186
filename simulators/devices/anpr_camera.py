"""Automatic number-plate recognition (ANPR) camera: one JSON message per vehicle it reads.

The camera watches every lane of a road section (the first half inbound, the rest outbound,
as at the radars) and publishes each plate it recognises as it happens, e.g.
{"cam": "anpr-0003", "t": 1795482001234, "plate": "29A-123.45", "lane": 2, "dir": "in",
"cls": "car", "conf": 0.97, "v_kmh": 43.5, "snapshot": "https://cam.local/img/anpr-0003/8812.jpg"}.

Vehicles arrive as a Poisson process whose rate follows the loop counters' day (weekday
commuter peaks, quieter weekends and nights): each gap is drawn at the current rate, which
changes over hours while gaps last seconds. Plates come from one pool of the town's vehicles
in Vietnamese format (province code, series, number: cars "89A-123.45", motorbikes
"89B1-234.56"); a minority of regular commuters makes most trips, so the same plate passes a
camera several times a day and passes several cameras.

The plate is personal data: a correct gateway stores only its keyed hash (`privacy: hash`)
and never the snapshot URL (`privacy: drop`), so the truth holds exactly that, hashed with the
gateway's key (DeviceSpec.privacy_key).
"""

from __future__ import annotations

import functools
import math
import random
from typing import Any, NamedTuple

import orjson

from simulators.clock import MS_PER_S, NS_PER_MS, local_hour, local_weekday
from simulators.devices.base import Device, DeviceKind, DeviceSpec, Telemetry, gauss_factor
from simulators.devices.radar import CLASSES, LANE_CHOICES, MIN_SPEED_KMH, vehicle_tags
from simulators.devices.traffic import demand_factor
from simulators.gateway_spec import private_hash
from simulators.surface import FieldEdit, JsonPath, PayloadSurface, TimeSlot
from simulators.truth import TruthReading

MEASUREMENT = "traffic_plate"

# The same for every camera (no per-camera spread, unlike the radars' lanes): the fleet places
# a run in time by the kind's mean interval, which only a common rate makes exact on average.
PEAK_VEHICLES_PER_MIN = 20.0
# Two plates closer than this are one read for the camera's recognition pipeline.
MIN_HEADWAY_S = 0.3
# Lanes fill towards the weekday peak; speeds fall with the load as in the radar model.
PEAK_LOAD = 0.6
# Small two-line motorbike plates are read less surely than car plates.
CONFIDENCE = {"motorbike": (0.80, 0.95), "other": (0.86, 0.99)}

# The town's vehicles: Hưng Yên (89) plates first, then its neighbours on National Road 5:
# Hà Nội (29, 30), Hải Dương (34), Hải Phòng (15), Bắc Ninh (99), Quảng Ninh (14).
PROVINCE_WEIGHTS = {"89": 55, "29": 10, "30": 8, "34": 10, "15": 7, "99": 5, "14": 5}
# Series letters as commonly issued: A private cars, B buses, C trucks; motorbikes a letter and
# a digit.
SERIES_OF_CLASS = {"car": "A", "bus": "B", "truck": "C"}
MOTORBIKE_SERIES_LETTERS = "BCDEFGHKLMNPSTUVXYZ"
POOL_SIZE = 4000
POOL_SEED = "mh-town-vehicles"  # the town's vehicles do not change with a run's seed
REGULARS = 600  # the first vehicles of the pool: daily commuters
REGULAR_TRIP_SHARE = 0.6


class Vehicle(NamedTuple):
    plate: str
    cls: str


def plate_for(rng: random.Random, cls: str) -> str:
    """A Vietnamese plate as cameras print it: 29A-123.45 (car), 89B1-234.56 (motorbike)."""
    code = rng.choices(list(PROVINCE_WEIGHTS), weights=list(PROVINCE_WEIGHTS.values()))[0]
    if cls == "motorbike":
        series = f"{rng.choice(MOTORBIKE_SERIES_LETTERS)}{rng.randint(1, 9)}"
    else:
        series = SERIES_OF_CLASS[cls]
    number = rng.randrange(100_000)
    return f"{code}{series}-{number // 100:03d}.{number % 100:02d}"


@functools.cache
def town_vehicles() -> tuple[Vehicle, ...]:
    """The pool every camera reads plates from, in the radars' class mix, plates unique."""
    rng = random.Random(POOL_SEED)
    names = list(CLASSES)
    shares = [CLASSES[name][0] for name in names]
    vehicles: dict[str, Vehicle] = {}
    while len(vehicles) < POOL_SIZE:
        cls = rng.choices(names, weights=shares)[0]
        plate = plate_for(rng, cls)
        vehicles.setdefault(plate, Vehicle(plate, cls))
    return tuple(vehicles.values())


def mean_gap_s() -> int:
    """Mean seconds between vehicles over a weekday, rounded down: a run of N reports then
    covers at least N intervals on a weekday, and the fleet stops a run at `now`."""
    minutes = range(24 * 60)
    mean_demand = sum(demand_factor(minute / 60, 0) for minute in minutes) / len(minutes)
    return math.floor(60 / (PEAK_VEHICLES_PER_MIN * mean_demand))


INTERVAL_S = mean_gap_s()


class AnprCamera:
    """One camera over every lane of a road section."""

    def __init__(self, spec: DeviceSpec) -> None:
        self._rng = spec.rng
        self._key = spec.privacy_key
        self.device_id = spec.device_id
        self.topic = f"city/traffic/{spec.district}/{spec.device_id}/plates"
        self.interval_s: float = INTERVAL_S
        self._district = spec.district
        self.lanes = self._rng.choice(LANE_CHOICES)
        self._speed_factor = self._rng.uniform(0.9, 1.15)  # a wide arterial or a busy street
        self._seq = self._rng.randrange(100_000)

    def next_message(self, sim_time_ms: int) -> Telemetry:
        demand = demand_factor(local_hour(sim_time_ms), local_weekday(sim_time_ms))
        vehicle = self._next_vehicle()
        lane = self._rng.randint(1, self.lanes)
        low, high = CONFIDENCE["motorbike" if vehicle.cls == "motorbike" else "other"]
        self._seq += 1
        payload: dict[str, Any] = {
            "cam": self.device_id,
            "t": sim_time_ms,
            "plate": vehicle.plate,
            "lane": lane,
            "dir": "in" if lane <= self.lanes // 2 else "out",
            "cls": vehicle.cls,
            "conf": round(self._rng.uniform(low, high), 2),
            "v_kmh": round(self._speed_kmh(vehicle.cls, demand), 1),
            "snapshot": f"https://cam.local/img/{self.device_id}/{self._seq}.jpg",
        }
        self.interval_s = self._gap_s(demand)
        return Telemetry(orjson.dumps(payload), [self._reading(payload)])

    def _next_vehicle(self) -> Vehicle:
        pool = town_vehicles()
        if self._rng.random() < REGULAR_TRIP_SHARE:
            return pool[self._rng.randrange(REGULARS)]
        return pool[self._rng.randrange(REGULARS, len(pool))]

    def _speed_kmh(self, cls: str, demand: float) -> float:
        load = min(demand * PEAK_LOAD, 1.0)
        speed_kmh = CLASSES[cls][1] * self._speed_factor * (1 - 0.7 * load**2)
        return max(speed_kmh * gauss_factor(self._rng, 0.12), MIN_SPEED_KMH)

    def _gap_s(self, demand: float) -> float:
        """Seconds to the next vehicle, whole milliseconds (the payload's resolution)."""
        rate_per_s = PEAK_VEHICLES_PER_MIN / 60 * demand
        gap_s = max(self._rng.expovariate(rate_per_s), MIN_HEADWAY_S)
        return round(gap_s * MS_PER_S) / MS_PER_S

    def _reading(self, payload: dict[str, Any]) -> TruthReading:
        return TruthReading(
            measurement=MEASUREMENT,
            device_id=self.device_id,
            tags=vehicle_tags(self._district, self.device_id, payload),
            time_ns=payload["t"] * NS_PER_MS,
            fields={
                "plate_hash": private_hash(self._key, payload["plate"]),
                "confidence": payload["conf"],
                "speed_kmh": payload["v_kmh"],
            },
        )


def _build(spec: DeviceSpec) -> Device:
    return AnprCamera(spec)


# No edit of the plate: it is a required field, so a bad plate is a dead letter, not a drop.
SURFACE = PayloadSurface(
    format="json",
    time=TimeSlot(JsonPath(("t",)), "epoch_ms"),
    out_of_range=(
        FieldEdit(JsonPath(("conf",)), "confidence", 1.4),  # max 1
        FieldEdit(JsonPath(("v_kmh",)), "speed_kmh", 320.0),  # max 250
    ),
    wrong_type=(
        FieldEdit(JsonPath(("conf",)), "confidence", "0.93"),
        FieldEdit(JsonPath(("v_kmh",)), "speed_kmh", "43.5"),
    ),
)

KIND = DeviceKind(
    name="anpr-cameras",
    label="licence-plate (ANPR) cameras",
    id_prefix="anpr",
    measurement=MEASUREMENT,
    interval_s=INTERVAL_S,
    build=_build,
    surface=SURFACE,
    event_driven=True,
)
