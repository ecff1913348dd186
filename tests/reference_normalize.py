"""The interpreter normalize() was before it was compiled to code per profile: the oracle that
tests/test_normalize_rows.py holds the generated code to.

It walks the compiled profile's fields, getters and converters one by one, the plain way; it
is kept here, not in the gateway, because only the tests run it.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import DecodeError
from gateway.model import Drop, FieldValue, Point
from gateway.profiles.compile import (
    MAX_NS,
    MIN_NS,
    MISSING,
    NOT_IN_VARIANT,
    BadTimestamp,
    CompiledProfile,
    FieldDropped,
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
                fields[field.name] = field.convert(raw)
                continue
            except FieldDropped as dropped:
                reason = dropped.args[0]
        drops.append((field.name, reason))
        if field.required:
            drops.append(("(reading)", f"required_{field.name}_{reason}"))
            return None
    if not fields:
        drops.append(("(reading)", "no_valid_field"))
        return None
    return fields


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
