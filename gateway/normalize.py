"""A decoded payload + its compiled profile -> points. Pure and synchronous.

Lenient with devices: a bad field is dropped with a reason and the rest of the reading kept; a
reading without any valid field is dropped; a message without any valid reading raises
DecodeError so the pipeline can dead-letter it.

Device clocks drift, reset to 1970 after a power cut, or were never set. A device time outside
the profile's tolerance around the receive time (`time.max_future_s`, `time.max_past_s`) is
replaced by the receive time: the reading is kept, the drop list gets ("(time)", "clock_future")
or ("(time)", "clock_past") so the pipeline counts it, and the point carries the boolean field
`time_replaced=true` so an operator can find such readings. Tags are exactly the profile's
declared `tags`: payload keys never become tags by themselves.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import DecodeError
from gateway.model import FieldValue, Point
from gateway.profiles.compile import (
    MAX_NS,
    MIN_NS,
    MISSING,
    BadTimestamp,
    CompiledProfile,
    FieldDropped,
)
from gateway.profiles.schema import TIME_REPLACED_FIELD

Drop = tuple[str, str]
"""(field or tag name, reason slug), e.g. ("dim_pct", "out_of_range")."""


# A receive time before 2025 means the gateway's own clock is not set (a board without a
# real-time clock boots at 1970 until NTP syncs): it cannot judge the device's, which is kept.
# Golden vectors without `received` run this way (receive time 0).
CLOCK_SET_NS = 1_735_689_600 * 10**9  # 2025-01-01T00:00:00Z


# The k-th reading of a message that falls back to the receive time is stamped receive time
# + k ns (see normalize). A payload under the size cap cannot hold a million readings, so a
# time less than 1 ms after the receive time is a receive-time stamp.
RECEIVE_TIME_SPREAD_NS = 1_000_000


def at_receive_time(time_ns: int, received_ns: int) -> bool:
    """True when a point's time is its message's receive time (plus its reading's offset)."""
    return 0 <= time_ns - received_ns < RECEIVE_TIME_SPREAD_NS


def normalize(
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
        if raw is MISSING or raw is None:
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
        if not value or value[-1] == "\\" or "\n" in value or "\r" in value:
            drops.append((tag.name, "invalid_tag"))
            continue
        tags.append((tag.name, value))
    return tuple(tags)
