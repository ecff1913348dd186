"""Fault injection: the ways real devices misbehave, chosen per report with seeded rates.

`--faults malformed=0.01,clock_reset=0.005` gives each report of each device that chance of
the named fault (`all=0.01` sets every fault). The fleet asks `FaultInjector.choose()` once per
report; faults that change the stream (a device that goes silent, bursts, repeats a message,
delivers one late or has a stranger beside it) are played by the fleet, faults that change one
message's bytes by `FaultInjector.corrupt`. Every faulty message carries a `FaultRecord` that
says what a correct gateway does with it (see simulators.gateway_spec), and its truth readings
are what that gateway stores.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from simulators import gateway_spec as spec
from simulators.clock import MS_PER_S
from simulators.surface import (
    WITH_OFFSET,
    FieldEdit,
    PayloadSurface,
    encode_time,
    read_slot,
    without_offset,
    write_slot,
)
from simulators.truth import Expect, FaultRecord, ReceiveTimeReading, TruthReading

if TYPE_CHECKING:
    from simulators.fleet import OutgoingMessage

FAULTS: dict[str, str] = {
    "malformed": "payload the decoder cannot read (cut-off JSON or CSV, key=value glitch, "
    "short frame): dead letter",
    "out_of_range": "one value outside the profile's min/max: that field dropped",
    "wrong_type": "one value of the wrong type (text for a number): that field dropped",
    "duplicate": "the same message twice: stored once",
    "out_of_order": "a report delivered after the device's next one: stored as stamped",
    "clock_reset": "device clock back at 1970 after a power cut: stored at the receive time",
    "clock_future": "device clock days ahead: stored at the receive time",
    "naive_time": "local time without its UTC offset: stored at the same instant",
    "burst": "a device sends a backlog of reports at once: all stored",
    "silent": "a device stops reporting for a while: nothing to store",
    "oversized": "a payload over the gateway's size limit: dead letter",
    "unknown_device": "a device nobody registered, on a known topic (see gateway_spec)",
    "unknown_topic": "a device without its id publishes on a topic no profile matches: dead letter",
}
ALL = "all"

STREAM_FAULTS = frozenset({"duplicate", "out_of_order", "burst", "silent", "unknown_device"})

# A backlog flushed after a short outage; far below the gateway's per-device burst allowance.
BURST_REPORTS = (5, 30)
SILENT_REPORTS = (5, 60)
# A clock reset starts counting at 1970-01-01 from the power-on: up to a few days of uptime.
MAX_UPTIME_MS = 3 * 86_400 * MS_PER_S
# Far enough ahead that even a long run cannot catch up with it (max_future_s is 5 minutes).
FUTURE_SKEW_MS = (2 * 86_400 * MS_PER_S, 400 * 86_400 * MS_PER_S)
OVERSIZE_EXTRA_BYTES = (1, 8192)


@dataclass(frozen=True, slots=True)
class FaultRates:
    """Chance per report of each fault, by name; the chances add up to at most 1."""

    rates: Mapping[str, float]

    @property
    def total(self) -> float:
        return sum(self.rates.values())


def parse_faults(text: str) -> FaultRates:
    """`name=rate,name=rate` with rates from 0 to 1; `all=rate` sets every fault."""
    rates: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, rate_text = item.partition("=")
        name = name.strip()
        if name != ALL and name not in FAULTS:
            msg = f"unknown fault {name!r} in {text!r}; valid names: {', '.join(FAULTS)}, {ALL}"
            raise ValueError(msg)
        rate = _rate(name, rate_text.strip() if equals else "", text)
        for each in FAULTS if name == ALL else (name,):
            rates[each] = rate
    if not rates:
        names = ", ".join(FAULTS)
        msg = f"no faults in {text!r}; write name=rate, e.g. malformed=0.01 (names: {names})"
        raise ValueError(msg)
    total = sum(rates.values())
    if total > 1:
        msg = f"fault rates in {text!r} add up to {total:g}; one fault per report: at most 1"
        raise ValueError(msg)
    return FaultRates({name: rate for name, rate in rates.items() if rate > 0})


def _rate(name: str, rate_text: str, text: str) -> float:
    try:
        rate = float(rate_text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:  # also NaN
        msg = f"rate {rate_text!r} for {name} in {text!r} is not a number from 0 to 1"
        raise ValueError(msg)
    return rate


class FaultInjector:
    """Seeded choices of faults and the bytes of faulty messages."""

    def __init__(self, rates: FaultRates, seed: int, now_ms: int) -> None:
        # Its own stream: the devices' payloads are the same with and without faults.
        self._rng = random.Random(f"{seed}/faults")
        self._names = list(rates.rates)
        self._cumulative = _cumulative(rates.rates.values())
        self._now_ms = now_ms
        self._corrupt: dict[str, Corrupter] = {
            "malformed": self._malformed,
            "oversized": self._oversized,
            "out_of_range": self._bad_value,
            "wrong_type": self._bad_value,
            "clock_reset": self._clock,
            "clock_future": self._clock,
            "naive_time": self._naive_time,
            "unknown_topic": self._unknown_topic,
        }

    def choose(self) -> str | None:
        draw = self._rng.random()
        for name, bound in zip(self._names, self._cumulative, strict=True):
            if draw < bound:
                return name
        return None

    def reports(self, fault: str) -> int:
        """How many reports a burst sends or a silence skips."""
        return self._rng.randint(*(BURST_REPORTS if fault == "burst" else SILENT_REPORTS))

    def corrupt(
        self, fault: str, surface: PayloadSurface | None, message: OutgoingMessage
    ) -> OutgoingMessage:
        """`message` with `fault` applied, or unchanged when the fault cannot apply to it."""
        corrupted = self._corrupt[fault](fault, surface, message)
        if corrupted is None:
            return message
        topic, payload, readings, receive_time, record = corrupted
        return message._replace(
            topic=topic,
            payload=payload,
            readings=readings,
            receive_time=receive_time,
            fault=replace(record, fault=fault, topic=topic),
        )

    # -- the faults that change a message's bytes ----------------------------------------------

    def _malformed(
        self, fault: str, surface: PayloadSurface | None, message: OutgoingMessage
    ) -> Corrupted:
        if surface is None:
            return None
        payload, rng = message.payload, self._rng
        match surface.format:
            case "json" | "binary":  # a transmission cut short
                broken = payload[: rng.randrange(1, len(payload))]
            case "csv":  # cut before the last delimiter: a column short
                last = payload.rindex(surface.delimiter.encode())
                broken = payload[: rng.randrange(1, last + 1)]
            case "keyvalue":  # a serial-line glitch eats one separator
                pairs = payload.split(surface.pair_separator.encode())
                index = rng.randrange(len(pairs))
                pairs[index] = pairs[index].replace(surface.kv_separator.encode(), b"", 1)
                broken = surface.pair_separator.encode().join(pairs)
        return _dead_letter(message, broken, spec.MALFORMED_REASON[surface.format])

    def _oversized(
        self, fault: str, surface: PayloadSurface | None, message: OutgoingMessage
    ) -> Corrupted:
        # Firmware that pads its buffer: whitespace is harmless to JSON, CSV and key=value
        # text, zeros to a frame, so only the size limit can refuse the message.
        filler = b"\x00" if surface is not None and surface.format == "binary" else b" "
        size = spec.MAX_PAYLOAD_BYTES + self._rng.randint(*OVERSIZE_EXTRA_BYTES)
        padded = message.payload + filler * (size - len(message.payload))
        return _dead_letter(message, padded, spec.PAYLOAD_TOO_LARGE)

    def _bad_value(
        self, fault: str, surface: PayloadSurface | None, message: OutgoingMessage
    ) -> Corrupted:
        if surface is None:
            return None
        out_of_range = fault == "out_of_range"
        edits = surface.out_of_range if out_of_range else surface.wrong_type
        usable = [e for e in edits if _has_field(message.readings, e)]
        if not usable:
            return None
        edit = self._rng.choice(usable)
        reason = spec.OUT_OF_RANGE if out_of_range else spec.WRONG_TYPE
        payload = write_slot(message.payload, surface, edit.slot, edit.value)
        readings = _without_field(message.readings, edit)
        record = FaultRecord("", "", message.readings[0].device_id, Expect.DROP_FIELD, reason)
        record = replace(record, drops=[(edit.field, reason)])
        if not readings:
            return _dead_letter(message, payload, spec.NO_VALID_READING)
        return message.topic, payload, readings, (), record

    def _clock(
        self, fault: str, surface: PayloadSurface | None, message: OutgoingMessage
    ) -> Corrupted:
        if surface is None or not message.readings:
            return None
        if fault == "clock_reset":
            device_ms, reason = self._rng.randrange(MAX_UPTIME_MS), spec.CLOCK_PAST
        else:
            device_ms = self._now_ms + self._rng.randrange(*FUTURE_SKEW_MS)
            reason = spec.CLOCK_FUTURE
        value = encode_time(surface.time.encoding, device_ms)
        payload = write_slot(message.payload, surface, surface.time.slot, value)
        record = FaultRecord("", "", message.readings[0].device_id, Expect.RECEIVE_TIME, reason)
        record = replace(record, drops=[("(time)", reason)], detail=f"device time {value}")
        return message.topic, payload, [], _at_receive_time(message.readings), record

    def _naive_time(
        self, fault: str, surface: PayloadSurface | None, message: OutgoingMessage
    ) -> Corrupted:
        if surface is None or surface.time.encoding not in WITH_OFFSET or not message.readings:
            return None
        stamped = str(read_slot(message.payload, surface, surface.time.slot))
        naive = without_offset(stamped)
        payload = write_slot(message.payload, surface, surface.time.slot, naive)
        record = FaultRecord("", "", message.readings[0].device_id, Expect.STORE)
        record = replace(record, detail=f"{naive} for {stamped}; the profile's zone is local")
        return message.topic, payload, message.readings, (), record

    def _unknown_topic(
        self, fault: str, surface: PayloadSurface | None, message: OutgoingMessage
    ) -> Corrupted:
        # A device that lost its id (a factory reset) publishes with an empty id level, which
        # the gateway's `+` subscription receives but no profile's named segment matches.
        if not message.readings:
            return None
        device_id = message.readings[0].device_id
        levels = message.topic.split("/")
        if device_id not in levels:
            return None
        topic = "/".join("" if level == device_id else level for level in levels)
        return _dead_letter(message, message.payload, spec.UNKNOWN_TOPIC, topic=topic)


Corrupted = (
    tuple[str, bytes, list[TruthReading], tuple[ReceiveTimeReading, ...], FaultRecord] | None
)
"""(topic, payload, readings, receive-time readings, record), or None: the fault cannot apply."""
Corrupter = Callable[[str, PayloadSurface | None, "OutgoingMessage"], Corrupted]


def _cumulative(rates: Iterable[float]) -> list[float]:
    bounds, total = [], 0.0
    for rate in rates:
        total += rate
        bounds.append(total)
    return bounds


def _dead_letter(
    message: OutgoingMessage, payload: bytes, reason: str, topic: str | None = None
) -> Corrupted:
    device_id = message.readings[0].device_id if message.readings else ""
    record = FaultRecord("", "", device_id, Expect.DEAD_LETTER, reason)
    return topic or message.topic, payload, [], (), record


def _has_field(readings: list[TruthReading], edit: FieldEdit) -> bool:
    return edit.reading < len(readings) and edit.field in readings[edit.reading].fields


def _without_field(readings: list[TruthReading], edit: FieldEdit) -> list[TruthReading]:
    """The readings a correct gateway keeps once `edit.field` of one reading is dropped."""
    kept = list(readings)
    target = readings[edit.reading]
    fields = {k: v for k, v in target.fields.items() if k != edit.field}
    if fields:
        kept[edit.reading] = replace(target, fields=fields)
    else:
        del kept[edit.reading]  # no valid field left: the gateway drops the reading
    return kept


def _at_receive_time(readings: list[TruthReading]) -> tuple[ReceiveTimeReading, ...]:
    """One point per reading at the receive time: the gateway offsets the k-th reading of a
    message by k ns, so readings of one series do not overwrite each other in InfluxDB."""
    return tuple(
        ReceiveTimeReading(
            reading.measurement,
            reading.device_id,
            reading.tags,
            {**reading.fields, spec.TIME_REPLACED_FIELD: True},
        )
        for reading in readings
    )
