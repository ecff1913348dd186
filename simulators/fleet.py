"""A town's worth of devices and the order in which they report.

Devices report round-robin: message n comes from device n mod N, and each device advances its
own `SimClock` by its reporting interval after every report. So the run is a function of the
seed, the device counts, the message total and the start time, and nothing else.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from simulators.clock import MS_PER_S, SimClock
from simulators.devices import KINDS, Device, DeviceKind, DeviceSpec
from simulators.truth import TruthReading

# Wards of Mỹ Hào town (Hưng Yên) as ASCII slugs; they appear in topics and as the district tag.
DISTRICTS = (
    "ban-yen-nhan",
    "di-su",
    "phan-dinh-phung",
    "nhan-hoa",
    "bach-sam",
    "minh-duc",
    "phung-chi-kien",
)


class OutgoingMessage(NamedTuple):
    kind: str
    topic: str
    payload: bytes
    readings: list[TruthReading]


@dataclass(slots=True)
class _Slot:
    kind: DeviceKind
    device: Device
    clock: SimClock
    quota: int


class Fleet:
    """The devices of one run and their share of the message total."""

    def __init__(self, slots: list[_Slot]) -> None:
        self._slots = slots

    @property
    def devices(self) -> list[Device]:
        return [slot.device for slot in self._slots]

    @property
    def total_messages(self) -> int:
        return sum(slot.quota for slot in self._slots)

    def reports_per_second(self) -> float:
        """Messages per simulated second if every device kept its own schedule."""
        return sum(1 / slot.device.interval_s for slot in self._slots if slot.quota)

    def messages(self) -> Iterator[OutgoingMessage]:
        """All messages of the run, interleaved round-robin across devices."""
        rounds = max((slot.quota for slot in self._slots), default=0)
        for round_index in range(rounds):
            for slot in self._slots:
                if round_index < slot.quota:
                    yield self._report(slot)

    @staticmethod
    def _report(slot: _Slot) -> OutgoingMessage:
        payload, readings = slot.device.next_message(slot.clock.now_ms)
        slot.clock.advance(slot.device.interval_s)
        return OutgoingMessage(slot.kind.name, slot.device.topic, payload, readings)


def build_fleet(
    device_counts: Mapping[str, int],
    *,
    seed: int,
    total_messages: int,
    start_ms: int | None,
    now_ms: int,
) -> Fleet:
    """Create the devices named by `device_counts` (kind name -> count).

    With `start_ms` every device starts reporting then. Without it each device starts early
    enough that its last report lands one interval before `now_ms`, so a run's readings end
    near the present and show up in a dashboard's default time range.
    """
    unknown = set(device_counts) - set(KINDS)
    if unknown:
        msg = f"unknown device kinds {sorted(unknown)}; known: {sorted(KINDS)}"
        raise ValueError(msg)
    specs = [
        (kind, _spec(kind, index, seed))
        for kind in KINDS.values()
        for index in range(1, device_counts.get(kind.name, 0) + 1)
    ]
    if not specs:
        msg = "no devices: ask for at least one of " + ", ".join(f"--{name}" for name in KINDS)
        raise ValueError(msg)
    slots: list[_Slot] = []
    for position, (kind, spec) in enumerate(specs):
        quota = _quota(position, len(specs), total_messages)
        first_ms = start_ms if start_ms is not None else now_ms - quota * kind.interval_s * MS_PER_S
        slots.append(_Slot(kind, kind.build(spec), SimClock(first_ms), quota))
    return Fleet(slots)


def _spec(kind: DeviceKind, index: int, seed: int) -> DeviceSpec:
    device_id = kind.device_id(index)
    # A string seed is hashed with SHA-512 by `random.seed`, stable across runs and platforms
    # (unlike hash()), and gives every device an independent stream.
    rng = random.Random(f"{seed}/{device_id}")
    return DeviceSpec(device_id=device_id, district=rng.choice(DISTRICTS), rng=rng)


def _quota(position: int, devices: int, total_messages: int) -> int:
    """Round-robin share: the first `total % devices` devices send one message more."""
    share, extra = divmod(total_messages, devices)
    return share + (1 if position < extra else 0)
