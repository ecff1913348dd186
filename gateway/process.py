"""The message rules, in one place: what one MQTT message becomes.

    payload size -> device rate -> profile by topic (or availability) -> decode -> normalize
        -> known devices -> series budget -> readings limit -> retained readings

`MessageRules.process(message)` is the only code that applies these rules. The pipeline calls it
for every message, `gateway profiles test` and the golden vectors call it for a payload, and
`gateway deadletter replay` calls it for a dead letter, so a rule (a known-device list, a series
budget, a readings limit, privacy, clock tolerance) cannot be enforced by one and forgotten by
another. It does no I/O and keeps no state but the policies it is given (the series budget and
the rate limiter remember what they have seen); what to do with the outcome (batch the lines,
store the dead letter, acknowledge, log, count) is the caller's.

Outcomes:
- `Accepted`: readings to write (possibly none left after the series budget: then it is still
  acknowledged with the others), with the fields and readings dropped on the way;
- `Refused`: a dead letter, with what the store may keep of the payload (truncated past the
  size limit, private values removed) and a detail safe to log;
- `Availability`: a profile's availability (last will) message, a device state, not a reading;
- `AckOnly`: nothing to store (a retained message whose readings all carry the receive time,
  or a LoRaWAN uplink without an application payload).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from gateway.errors import DecodeError
from gateway.model import Drop, Message, Readings
from gateway.policies.message_limits import TOPIC_TOO_LONG, topic_too_long
from gateway.policies.privacy import SAFE_DETAIL_REASONS, WITHHELD_DETAIL, Redactor, redactors_for
from gateway.policies.rate_limit import DeviceRateLimit
from gateway.policies.series_budget import SeriesBudget, limits_of
from gateway.profiles.compile import CompiledLiveness, CompiledProfile
from gateway.profiles.registry import ProfileRegistry
from gateway.stages.decode import Decoder, decoder_for
from gateway.stages.layouts import skipped_drops
from gateway.stages.normalize import (
    MAX_TAG_VALUE_BYTES,
    Normalizer,
    at_receive_time,
    rows_normalizer,
)

UNKNOWN_DEVICE = "unknown_device"
UNKNOWN_TOPIC = "unknown_topic"
PAYLOAD_TOO_LARGE = "payload_too_large"
RATE_LIMITED = "rate_limited"
TOO_MANY_READINGS = "too_many_readings"
# Not dead letters: messages that are acknowledged with nothing to store.
EMPTY_FRAME = "empty_frame"  # raised by a LoRaWAN envelope decoder: fPort 0 / MAC commands only
RETAINED_AT_RECEIVE_TIME = "retained_at_receive_time"


class Accepted(NamedTuple):
    profile: CompiledProfile
    readings: Readings
    drops: list[Drop]
    device_id: str
    retained_skipped: int = 0  # receive-time readings of a retained message, not written


class Refused(NamedTuple):
    reason: str
    detail: str  # safe to log and store: withheld where it could quote a private value
    profile_id: str | None
    payload: bytes  # what the dead-letter store may keep
    drops: list[Drop]
    topic: str | None = None  # what the dead-letter store keeps of the topic, if not all of it


class Dropped(NamedTuple):
    """Acknowledged and counted, not stored: a flooding device's refusals beyond its share of
    the dead-letter store (gateway/policies/rate_limit.py keep_refused)."""

    reason: str


class Availability(NamedTuple):
    profile: CompiledProfile
    liveness: CompiledLiveness
    device_id: str
    online: bool | None  # None: the payload is neither the online nor the offline word


class AckOnly(NamedTuple):
    profile: CompiledProfile
    device_id: str
    why: str  # RETAINED_AT_RECEIVE_TIME or EMPTY_FRAME
    retained_skipped: int = 0


Outcome = Accepted | Refused | Availability | AckOnly | Dropped
_new_outcome = tuple.__new__
# One value for every refusal not kept: a flood yields it per message, without a construction.
_RATE_LIMITED_NOT_KEPT = Dropped(RATE_LIMITED)


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """[limits] of the configuration, as the rules need them."""

    max_payload_bytes: int = 65536
    max_readings: int = 1000
    max_topic_bytes: int = 1024
    max_tag_value_bytes: int = MAX_TAG_VALUE_BYTES


class _Compiled(NamedTuple):
    """Per profile id, what the rules run: built once per registry (start and hot reload)."""

    registry: ProfileRegistry
    decoders: dict[str, Decoder]
    normalizers: dict[str, Normalizer]
    redactors: dict[str, Redactor]
    # Profiles with channel/type streams: their decoded frames list the channels they skipped,
    # counted as drops (unknown_channel); other profiles pay nothing for it.
    skipping: frozenset[str]


def _compiled(registry: ProfileRegistry, max_tag_value_bytes: int) -> _Compiled:
    profiles = registry.profiles
    return _Compiled(
        registry,
        {p.id: decoder_for(p.decode_spec) for p in profiles},
        {p.id: rows_normalizer(p, max_tag_value_bytes) for p in profiles},
        redactors_for(profiles),
        frozenset(p.id for p in profiles if _has_channel_streams(p.decode_spec.model_dump())),
    )


def _has_channel_streams(spec: object) -> bool:
    if isinstance(spec, dict):
        if spec.get("channels") is not None:
            return True
        return any(_has_channel_streams(value) for value in spec.values())
    if isinstance(spec, list):
        return any(_has_channel_streams(value) for value in spec)
    return False


class MessageRules:
    """The rules with the profiles and policies they apply; see the module docstring."""

    def __init__(
        self,
        registry: ProfileRegistry,
        limits: MessageLimits | None = None,
        *,
        series: SeriesBudget | None = None,
        rate_limit: DeviceRateLimit | None = None,
    ) -> None:
        self.limits = limits or MessageLimits()
        self.series = series if series is not None else SeriesBudget.for_profiles(registry.profiles)
        self.rate_limit = rate_limit
        self._compiled = _compiled(registry, self.limits.max_tag_value_bytes)

    @property
    def registry(self) -> ProfileRegistry:
        return self._compiled.registry

    def install(self, registry: ProfileRegistry) -> None:
        """Swap in a new set of profiles (hot reload): every later message uses only them."""
        compiled = _compiled(registry, self.limits.max_tag_value_bytes)
        self.series.set_limits(limits_of(registry.profiles))
        self._compiled = compiled

    def process(self, message: Message) -> Outcome:
        """What `message` becomes under today's profiles and policies."""
        # Size and rate before any decoding work: a flood costs as little as possible.
        over = topic_too_long(message.topic, self.limits.max_topic_bytes)
        if over is not None:  # first: every later step keys something on the topic
            topic, detail = over
            # A cut topic resolves to no profile: with private fields anywhere, keep nothing.
            payload = b"" if self._compiled.redactors else message.payload
            return Refused(TOPIC_TOO_LONG, detail, None, payload, [], topic)
        if len(message.payload) > self.limits.max_payload_bytes:
            return self._too_large(message)
        rate_limit = self.rate_limit
        if rate_limit is not None and not rate_limit.allow(message.topic, message.received_ns):
            if not rate_limit.keep_refused(message.topic, message.received_ns):
                return _RATE_LIMITED_NOT_KEPT  # its share of the dead-letter store is used up
            return self._refused(message, RATE_LIMITED, "device over its rate limit", None)
        resolved = self._compiled.registry.resolve(message.topic, message.payload)
        if resolved is None:
            return self._unresolved(message)
        return self._readings(message, resolved.profile, resolved.segments)

    def _readings(
        self, message: Message, profile: CompiledProfile, segments: dict[str, str]
    ) -> Outcome:
        compiled = self._compiled
        drops: list[Drop] = []
        try:
            document = compiled.decoders[profile.id](message.payload)
            if profile.id in compiled.skipping:
                drops.extend(skipped_drops(document))
            readings = compiled.normalizers[profile.id](
                document, segments, message.received_ns, drops
            )
            # The topic's device id, else the first reading's device_id tag.
            device_id = segments.get("device_id") or readings.device_id
            if profile.known_devices is not None and device_id not in profile.known_devices:
                # before the budget: strangers spend none of it
                raise DecodeError(UNKNOWN_DEVICE, _unknown_device_detail(device_id))
            readings = self.series.admit(profile.id, readings, drops)
        except DecodeError as exc:
            if exc.reason == EMPTY_FRAME:
                return AckOnly(profile, segments.get("device_id", ""), EMPTY_FRAME)
            return self._refused(message, exc.reason, exc.detail, profile, drops)
        max_readings = self.limits.max_readings
        count = len(readings.lines)
        if count > max_readings:
            detail = f"{count} readings, limit {max_readings}"
            return self._refused(message, TOO_MANY_READINGS, detail, profile, drops)
        if not message.retained:
            # Accepted(...) would run NamedTuple's Python-level __new__: ~0.1 us per message.
            return _new_outcome(Accepted, (profile, readings, drops, device_id, 0))
        kept = _retained_readings(readings, message.received_ns)
        skipped = count - len(kept.lines)
        if not kept.lines:
            return AckOnly(profile, device_id, RETAINED_AT_RECEIVE_TIME, skipped)
        return Accepted(profile, kept, drops, device_id, skipped)

    def _unresolved(self, message: Message) -> Availability | Refused:
        found = self._compiled.registry.resolve_availability(message.topic)
        if found is None:
            return self._refused(message, UNKNOWN_TOPIC, "no profile matches this topic", None)
        profile, liveness, device_id = found
        return Availability(
            profile, liveness, device_id, liveness.availability_state(message.payload)
        )

    def _too_large(self, message: Message) -> Refused:
        size, limit = len(message.payload), self.limits.max_payload_bytes
        detail = f"{size} bytes, limit {limit}; the first {limit} bytes are kept"
        # Redacted whole, then cut: cut first, a CSV line with extra columns could come back
        # to the profile's column count and be read shifted, a plate in a public column.
        return self._refused(message, PAYLOAD_TOO_LARGE, detail, None, keep_bytes=limit)

    def _refused(
        self,
        message: Message,
        reason: str,
        detail: str,
        profile: CompiledProfile | None,
        drops: list[Drop] | None = None,
        *,
        keep_bytes: int | None = None,
    ) -> Refused:
        """A dead letter, with what may be kept of it (see gateway/policies/privacy.py), cut to
        `keep_bytes` after redaction when given."""
        redactors = self._compiled.redactors
        payload = message.payload
        profile_id = profile.id if profile is not None else None
        if redactors:
            if profile is None:  # refused before resolving (size, rate): resolve now
                resolved = self._compiled.registry.resolve(message.topic, message.payload)
                profile = resolved.profile if resolved is not None else None
            redact = redactors.get(profile.id) if profile is not None else None
            if redact is not None:
                payload = redact(payload)
                if reason not in SAFE_DETAIL_REASONS:
                    detail = WITHHELD_DETAIL  # decoder texts may quote the payload
        if keep_bytes is not None:
            payload = payload[:keep_bytes]
        return Refused(reason, detail, profile_id, payload, drops if drops is not None else [])


def _retained_readings(readings: Readings, received_ns: int) -> Readings:
    """The readings of a retained message that may be written.

    A retained message is the broker replaying a device's last reading on subscription,
    perhaps from a device dead for a week. Points carrying the device's own time are kept:
    written again they are the same point (InfluxDB overwrites it), and they fill the gap if it
    was never written. Points stamped with the receive time (`time.source: receive`, or a
    device clock out of tolerance) would claim the device reported just now, so they are
    skipped. Neither kind is a sign of life (the pipeline's liveness tracker is told so)."""
    return readings.only([not at_receive_time(t, received_ns) for t in readings.times_ns])


def _unknown_device_detail(device_id: str) -> str:
    return (
        f"device {device_id!r} is not among the profile's known devices "
        "(devices.known / known_file); add it there to accept its readings"
    )
