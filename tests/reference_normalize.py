"""The interpreter normalize() was before it was compiled to code per profile: the oracle that
tests/test_normalize_rows.py holds the generated code to.

It walks the compiled profile's fields and getters one by one, the plain way, and applies each
field's rule with its own code (_converted), written from the profile reference, not from the
generator in gateway/stages/field_rules.py; it is kept here, not in the gateway, because only
the tests run it.
"""

from __future__ import annotations

import math
from typing import Any

from gateway.errors import DecodeError
from gateway.model import Drop, FieldValue, Point
from gateway.profiles.compile import (
    MAX_NS,
    MIN_NS,
    MISSING,
    NO_READING,
    NOT_IN_VARIANT,
    BadTimestamp,
    CompiledField,
    CompiledProfile,
    NumberRule,
)
from gateway.profiles.schema import TIME_REPLACED_FIELD
from gateway.stages.normalize import CLOCK_SET_NS, MAX_TAG_VALUE_BYTES


def reference_normalize(
    profile: CompiledProfile,
    document: Any,
    segments: dict[str, str],
    received_ns: int,
    drops: list[Drop],
) -> list[Point]:
    """Points for every valid reading in `document`; dropped items are appended to `drops`."""
    if profile.readings is None:
        readings: Any = (document,)
    else:
        readings = profile.readings(document, document)
        if type(readings) is not list:
            raise DecodeError("missing_readings", "the readings array is absent or not an array")
    # Tags taken from the topic and constants are the same for every reading of a message:
    # computed once here. Their drops are still reported per kept reading, as before.
    topic_tags: tuple[tuple[str, str], ...] | None = None
    topic_tag_drops: list[Drop] = []
    if profile.tags_from_topic_only:
        topic_tags = _tags(profile, None, document, segments, topic_tag_drops)
    points = []
    # Each reading gets its own nanosecond of receive time: readings of one series in one
    # message that fall back to the receive time (a reset device clock, `time.source: receive`)
    # would otherwise share a timestamp, and InfluxDB would keep only the last. The offset is
    # the reading's position, so a redelivery with the recorded receive time gives the same
    # points.
    for position, reading in enumerate(readings):
        fields = _fields(profile, reading, document, drops)
        if fields is None:
            continue
        try:
            device_ns = profile.time_ns(reading, document, received_ns + position)
            time_ns = _plausible_time(profile, device_ns, received_ns + position, fields, drops)
        except BadTimestamp:
            drops.append(("(reading)", "bad_timestamp"))
            continue
        if topic_tags is None:
            tags = _tags(profile, reading, document, segments, drops)
        else:
            tags = topic_tags
            if topic_tag_drops:
                drops.extend(topic_tag_drops)
        # Positional: a NamedTuple built with keywords costs a third more.
        point = Point(
            profile.measurement, tags, fields, time_ns, profile.database, profile.retention_policy
        )
        points.append(point)
    if not points:
        reasons = sorted({reason for _, reason in drops}) or ["empty"]
        raise DecodeError("no_valid_reading", ", ".join(reasons))
    return points


def _fields(
    profile: CompiledProfile, reading: Any, root: Any, drops: list[Drop]
) -> dict[str, FieldValue] | None:
    """The reading's valid fields; None (with the reason in `drops`) when it has none or lacks
    a required one."""
    fields: dict[str, FieldValue] = {}
    for field in profile.fields:
        raw = field.get(reading, root)
        if raw is NOT_IN_VARIANT and not field.required:
            continue  # the chosen layout variant does not declare it: no field, no drop
        if raw is MISSING or raw is None or raw is NOT_IN_VARIANT:
            reason = "missing"
        else:
            try:
                fields[field.name] = _converted(field, raw)
                continue
            except _Dropped as dropped:
                reason = dropped.reason
        drops.append((field.name, reason))
        if field.required:
            drops.append(("(reading)", f"required_{field.name}_{reason}"))
            return None
    if not fields:
        drops.append(("(reading)", "no_valid_field"))
        return None
    return fields


class _Dropped(Exception):  # noqa: N818  # a field's drop, not an error
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _converted(field: CompiledField, raw: Any) -> FieldValue:
    """The stored value of a present field, or _Dropped with the reason of the first step that
    refuses it: sentinel, value map, the type's rule, then the privacy hash."""
    if field.sentinel and raw is NO_READING:
        raise _Dropped("sentinel")
    if field.value_map is not None:
        if isinstance(raw, bool):
            key = "true" if raw else "false"
        else:
            key = raw if isinstance(raw, str) else str(raw)
        if key not in field.value_map:
            raise _Dropped("unmapped_value")
        raw = field.value_map[key]
    value: FieldValue
    if field.number is not None:
        value = _number(field.number, raw)
    elif field.kind is bool:
        value = _boolean(raw)
    else:
        value = _text(raw)
    return value if field.digest is None else field.digest(str(value))


def _number(rule: NumberRule, raw: Any) -> float | int:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _Dropped("wrong_type")
    if isinstance(raw, float) and not math.isfinite(raw):
        raise _Dropped("not_finite")
    value: float | int = raw
    if rule.linear is not None:
        scale, shift, factor, digits = rule.linear
        value = (raw * scale + shift) * factor
        if not math.isfinite(value):
            raise _Dropped("not_finite")
        value = float(f"{value:.{digits}g}")
    if value < rule.low or value > rule.high:
        raise _Dropped("out_of_range")
    if not rule.integer:
        return float(value)
    if not -(2**63) <= value < 2**63:  # InfluxDB's int64, whatever the profile's range
        raise _Dropped("out_of_range")
    if value != math.floor(value):
        raise _Dropped("wrong_type")
    return int(value)


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return raw == 1
    raise _Dropped("wrong_type")


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise _Dropped("wrong_type")
    if len(raw) > 64 * 1024:  # InfluxDB's limit for a string field
        raise _Dropped("string_too_long")
    return raw


def _plausible_time(
    profile: CompiledProfile,
    time_ns: int,
    received_ns: int,
    fields: dict[str, FieldValue],
    drops: list[Drop],
) -> int:
    """The device time, or the receive time (flagged) when the device clock is implausible."""
    if received_ns >= CLOCK_SET_NS:
        if time_ns > received_ns + profile.max_future_ns:
            drops.append(("(time)", "clock_future"))
            fields[TIME_REPLACED_FIELD] = True
            return received_ns
        if time_ns < received_ns - profile.max_past_ns:
            drops.append(("(time)", "clock_past"))
            fields[TIME_REPLACED_FIELD] = True
            return received_ns
    if not MIN_NS <= time_ns <= MAX_NS:  # only reachable without a tolerance on that side
        raise BadTimestamp("bad_timestamp")
    return time_ns


def _tags(
    profile: CompiledProfile,
    reading: Any,
    root: Any,
    segments: dict[str, str],
    drops: list[Drop],
) -> tuple[tuple[str, str], ...]:
    tags = []
    for tag in profile.tags:  # already sorted by name
        if tag.topic_segment is not None:
            value = segments[tag.topic_segment]
        elif tag.get is not None:
            raw = tag.get(reading, root)
            if raw is MISSING or raw is None or isinstance(raw, dict | list):
                drops.append((tag.name, "missing_tag"))
                continue
            value = raw if type(raw) is str else str(raw)
        else:
            value = tag.constant or ""
        # InfluxDB 1.x reads a tag value's final backslash as escaping the separator after it
        # and refuses the whole line ("invalid tag format"), so such values are refused here.
        # Line protocol cannot escape a line break in a tag. Two `in` tests, not any() over a
        # generator: this runs for every tag of every reading (measured 3% of the hot path).
        if len(value.encode()) > MAX_TAG_VALUE_BYTES:
            drops.append((tag.name, "tag_too_long"))
            continue
        if not value or value[-1] == "\\" or "\n" in value or "\r" in value:
            drops.append((tag.name, "invalid_tag"))
            continue
        tags.append((tag.name, value))
    return tuple(tags)
