"""A town's worth of devices and the order in which they report.

Devices report round-robin: turn n goes to device n mod N (skipping devices whose reports
are used up), and each device advances its own `SimClock` by its reporting interval after
every report. So the run is a function of the seed, the device counts, the message total, the
start time and the fault rates, and nothing else.

With faults (see simulators.faults) a turn may be played differently: a device goes silent
for a while, flushes a backlog in a burst, repeats a message, delivers one late, has a
stranger publish beside it, or sends bytes that something broke. The total stays a bound: the
stream ends once `total_messages` messages were published.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from simulators import gateway_spec
from simulators.clock import MS_PER_S, SimClock
from simulators.devices import KINDS, Device, DeviceKind, DeviceSpec
from simulators.faults import STREAM_FAULTS, FaultInjector, FaultRates
from simulators.gateway_spec import OFFLINE_HASH_KEY
from simulators.truth import Expect, FaultRecord, ReceiveTimeReading, TruthReading

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
# Strangers (fault unknown_device) are numbered from here: five digits, never a fleet id.
STRANGER_BASE_INDEX = 10_000
DAY_S = 86_400


class OutgoingMessage(NamedTuple):
    kind: str
    topic: str
    payload: bytes
    readings: list[TruthReading]
    receive_time: Sequence[ReceiveTimeReading] = ()
    """Readings a correct gateway stores at its receive time (the device's clock is off)."""
    fault: FaultRecord | None = None
    report_index: int = 0
    """How many reports its device sent before this one (see runner.DeviceRateGuard)."""

    @property
    def published(self) -> bool:
        """False for the record of a device that went silent: nothing goes to the broker."""
        return self.fault is None or self.fault.expect is not Expect.NOTHING


@dataclass(slots=True)
class _Slot:
    kind: DeviceKind
    device: Device
    clock: SimClock
    quota: int
    sent: int = 0
    held: OutgoingMessage | None = None  # a report delivered after the next one
    until_ms: int | None = None
    """No report after this time (runs that end at "now": a device time in the future is
    one a correct gateway replaces, and an event-driven device may get there early)."""

    @property
    def remaining(self) -> int:
        if self.until_ms is not None and self.clock.now_ms > self.until_ms:
            return 0
        return self.quota - self.sent


class Fleet:
    """The devices of one run and their share of the message total."""

    def __init__(
        self,
        slots: list[_Slot],
        total_messages: int,
        seed: int,
        faults: FaultInjector | None,
        privacy_key: bytes = OFFLINE_HASH_KEY,
    ) -> None:
        self._slots = slots
        self._total_messages = total_messages
        self._seed = seed
        self._faults = faults
        self._privacy_key = privacy_key
        self._strangers = 0

    @property
    def devices(self) -> list[Device]:
        return [slot.device for slot in self._slots]

    @property
    def total_messages(self) -> int:
        return min(self._total_messages, sum(slot.quota for slot in self._slots))

    def reports_per_second(self) -> float:
        """Messages per simulated second if every device kept its own schedule."""
        return sum(1 / slot.device.interval_s for slot in self._slots if slot.quota)

    def messages(self) -> Iterator[OutgoingMessage]:
        """All messages of the run, interleaved round-robin across devices."""
        budget = self.total_messages
        for message in self._turns():
            if message.published:
                if budget == 0:
                    return
                budget -= 1
            yield message

    def _turns(self) -> Iterator[OutgoingMessage]:
        while any(slot.remaining for slot in self._slots):
            for slot in self._slots:
                if slot.remaining:
                    yield from self._turn(slot)
        for slot in self._slots:
            if slot.held is not None:
                yield slot.held

    def _turn(self, slot: _Slot) -> Iterator[OutgoingMessage]:
        fault = self._faults.choose() if self._faults is not None else None
        if fault is None:
            yield self._report(slot)
        elif fault in STREAM_FAULTS:
            yield from self._stream_fault(fault, slot)
        else:
            assert self._faults is not None  # a fault was chosen by it
            yield self._faults.corrupt(fault, slot.kind.surface, self._report(slot))
        if slot.held is not None and fault != "out_of_order":
            yield slot.held
            slot.held = None

    def _stream_fault(self, fault: str, slot: _Slot) -> Iterator[OutgoingMessage]:
        assert self._faults is not None  # only called for a chosen fault
        if fault == "silent":
            yield self._silence(slot, min(self._faults.reports(fault), slot.remaining))
            return
        if fault == "burst":
            reports = min(self._faults.reports(fault), slot.remaining)
            first = self._report(slot)
            detail = f"{reports} reports at once"
            yield _with_fault(first, "burst", Expect.STORE, detail)
            for _ in range(reports - 1):
                if not slot.remaining:  # an event-driven device reached the end of its run
                    return
                yield self._report(slot)
            return
        report = self._report(slot)
        if fault == "out_of_order" and slot.held is None and slot.remaining:
            slot.held = _with_fault(report, fault, Expect.STORE, "sent after the next report")
            return
        yield report
        if fault == "duplicate":
            yield _with_fault(report, fault, Expect.STORE, "the same message again")
        elif fault == "unknown_device":
            yield self._stranger(slot)

    def _silence(self, slot: _Slot, reports: int) -> OutgoingMessage:
        slot.clock.advance(slot.device.interval_s * reports)
        slot.sent += reports
        record = FaultRecord(
            "silent", slot.device.topic, slot.device.device_id, Expect.NOTHING,
            detail=f"{reports} reports not sent",
        )  # fmt: skip
        return OutgoingMessage(slot.kind.name, slot.device.topic, b"", [], fault=record)

    def _stranger(self, slot: _Slot) -> OutgoingMessage:
        """A report from a device of the same kind that is not part of the fleet."""
        self._strangers += 1
        kind = slot.kind
        index = STRANGER_BASE_INDEX + self._strangers
        stranger = kind.build(_spec(kind, index, self._seed, self._privacy_key))
        payload, readings = stranger.next_message(slot.clock.now_ms - kind.interval_s * MS_PER_S)
        expect, reason = gateway_spec.unknown_device_expectation()
        record = FaultRecord("unknown_device", stranger.topic, stranger.device_id, expect, reason)
        kept = readings if expect is Expect.STORE else []
        return OutgoingMessage(kind.name, stranger.topic, payload, kept, fault=record)

    @staticmethod
    def _report(slot: _Slot) -> OutgoingMessage:
        payload, readings = slot.device.next_message(slot.clock.now_ms)
        slot.clock.advance(slot.device.interval_s)
        index, slot.sent = slot.sent, slot.sent + 1
        return OutgoingMessage(
            slot.kind.name, slot.device.topic, payload, readings, report_index=index
        )


def _with_fault(
    message: OutgoingMessage, fault: str, expect: Expect, detail: str
) -> OutgoingMessage:
    device_id = message.readings[0].device_id if message.readings else ""
    record = FaultRecord(fault, message.topic, device_id, expect, detail=detail)
    return message._replace(fault=record)


def build_fleet(
    device_counts: Mapping[str, int],
    *,
    seed: int,
    total_messages: int,
    start_ms: int | None,
    now_ms: int,
    faults: FaultRates | None = None,
    span_s: int | None = None,
    privacy_key: bytes = OFFLINE_HASH_KEY,
) -> Fleet:
    """Create the devices named by `device_counts` (kind name -> count).

    With `start_ms` every device starts reporting then. Without it each device starts early
    enough that its last report lands one interval before `now_ms`, so a run's readings end
    near the present and show up in a dashboard's default time range.

    Each device's share of `total_messages` is even, or with `span_s` (backfill) as many
    reports as fit its own interval into that span, so every device covers the same time.
    An event-driven device covers about as much (its interval is a mean), and without
    `start_ms` never reports after `now_ms`.

    `privacy_key` is the gateway's [privacy] hash key, for the truth of hashed fields.
    """
    unknown = set(device_counts) - set(KINDS)
    if unknown:
        msg = f"unknown device kinds {sorted(unknown)}; known: {sorted(KINDS)}"
        raise ValueError(msg)
    specs = [
        (kind, _spec(kind, index, seed, privacy_key))
        for kind in KINDS.values()
        for index in range(1, device_counts.get(kind.name, 0) + 1)
    ]
    if not specs:
        msg = "no devices: ask for at least one of " + ", ".join(f"--{name}" for name in KINDS)
        raise ValueError(msg)
    slots: list[_Slot] = []
    for position, (kind, spec) in enumerate(specs):
        if span_s is None:
            quota = _quota(position, len(specs), total_messages)
        else:
            quota = span_s // kind.interval_s
        first_ms = start_ms if start_ms is not None else now_ms - quota * kind.interval_s * MS_PER_S
        until_ms = now_ms if start_ms is None else None
        slots.append(_Slot(kind, kind.build(spec), SimClock(first_ms), quota, until_ms=until_ms))
    injector = FaultInjector(faults, seed, now_ms) if faults is not None else None
    return Fleet(slots, total_messages, seed, injector, privacy_key)


def _spec(kind: DeviceKind, index: int, seed: int, privacy_key: bytes) -> DeviceSpec:
    device_id = kind.device_id(index)
    # A string seed is hashed with SHA-512 by `random.seed`, stable across runs and platforms
    # (unlike hash()), and gives every device an independent stream.
    rng = random.Random(f"{seed}/{device_id}")
    district = rng.choice(DISTRICTS)
    return DeviceSpec(device_id, district, rng, privacy_key)


def _quota(position: int, devices: int, total_messages: int) -> int:
    """Round-robin share: the first `total % devices` devices send one message more."""
    share, extra = divmod(total_messages, devices)
    return share + (1 if position < extra else 0)
