"""What every device model offers the fleet, and how a model is registered."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from simulators.gateway_spec import OFFLINE_HASH_KEY
from simulators.surface import PayloadSurface
from simulators.truth import TruthReading


class Telemetry(NamedTuple):
    """One MQTT message as a device would send it, and the readings it carries."""

    payload: bytes
    readings: list[TruthReading]


class Device(Protocol):
    """A device model: a topic, a reporting interval and a way to report at a simulated time.

    `interval_s` is read after each report: the time until the device's next one (constant for
    periodic devices, the gap to the next event for event-driven ones)."""

    @property
    def device_id(self) -> str: ...

    @property
    def topic(self) -> str: ...

    @property
    def interval_s(self) -> float: ...

    def next_message(self, sim_time_ms: int) -> Telemetry:
        """The report due at `sim_time_ms` (epoch ms); advances the device's own state."""
        ...


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """Who a device is. `rng` is the device's own seeded stream, so adding devices of one kind
    never changes what the others send. `privacy_key` is the gateway's [privacy] hash key, for
    devices whose truth holds a hashed value (the key is the operator's, not the device's, but
    only with it can the simulator say what a correct gateway stores)."""

    device_id: str
    district: str
    rng: random.Random
    privacy_key: bytes = OFFLINE_HASH_KEY


@dataclass(frozen=True, slots=True)
class DeviceKind:
    """A registered device model: `name` is its CLI flag (--lighting) and summary key, `label`
    what the help text calls the devices, `surface` where fault injection finds the time and
    the values in its payloads (a model without one gets only the faults that need no such
    knowledge: duplicates, bursts, silence, late delivery, oversized payloads, strangers and
    wrong topics). An `event_driven` model reports once per event (a vehicle passing), so its
    `interval_s` is the mean gap over a weekday, not a fixed one: a run of N reports covers
    about, not exactly, N intervals."""

    name: str
    label: str
    id_prefix: str
    measurement: str
    interval_s: int
    build: Callable[[DeviceSpec], Device]
    surface: PayloadSurface | None = None
    event_driven: bool = False

    def device_id(self, index: int) -> str:
        """Device ids are the kind's prefix and a 1-based, zero-padded index: sl-0001."""
        return f"{self.id_prefix}-{index:04d}"


def gauss_factor(rng: random.Random, sigma: float) -> float:
    """Multiplicative noise around 1, never negative."""
    return max(0.0, rng.gauss(1.0, sigma))


WORKING_HOURS = (8.0, 17.0)
"""Local hours when maintenance crews open cabinets (door-open reports)."""


def visit_countdown(
    rng: random.Random, hour: float, remaining: int, onset_p: float, reports: tuple[int, int]
) -> int:
    """Reports left of a crew visit: counts down, or starts one during working hours."""
    if remaining:
        return remaining - 1
    if WORKING_HOURS[0] <= hour < WORKING_HOURS[1] and rng.random() < onset_p:
        return rng.randint(*reports)
    return 0
