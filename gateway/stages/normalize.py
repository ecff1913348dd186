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

import linecache
import math
from collections.abc import Callable
from typing import Any

from gateway.errors import DecodeError
from gateway.model import Drop, Point, Readings
from gateway.profiles.compile import (
    MAX_NS,
    MIN_NS,
    MISSING,
    NO_READING,
    NOT_IN_VARIANT,
    BadTimestamp,
    CompiledField,
    CompiledProfile,
)
from gateway.profiles.schema import TIME_REPLACED_FIELD
from gateway.stages.field_rules import field_drop, field_source, indent
from gateway.stages.lineprotocol import (
    STRING_ESCAPES,
    decode_line,
    field_prefix,
    series_key_uncached,
)

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


Normalizer = Callable[[Any, dict[str, str], int, list[Drop]], Readings]
"""normalizer(document, segments, received_ns, drops) -> Readings."""


def normalize(
    profile: CompiledProfile,
    document: Any,
    segments: dict[str, str],
    received_ns: int,
    drops: list[Drop],
) -> list[Point]:
    """Points for every valid reading in `document`; dropped items are appended to `drops`.

    For tools and tests that want Points: the lines of the one generated normalizer, read back
    from their line protocol (so there is one output path, the one the pipeline writes)."""
    cached = _normalizers.get(id(profile))
    if cached is None or cached[0] is not profile:  # an id can be reused once a profile is gone
        if len(_normalizers) >= _MAX_CACHED:
            _normalizers.clear()
        cached = _normalizers[id(profile)] = (profile, rows_normalizer(profile))
    readings: Readings = cached[1](document, segments, received_ns, drops)
    return [
        decode_line(line, profile.database, profile.retention_policy) for line in readings.lines
    ]


_normalizers: dict[int, tuple[CompiledProfile, Normalizer]] = {}
_MAX_CACHED = 1024


MAX_TAG_VALUE_BYTES = 256
"""Default of `[limits] max_tag_value_bytes`: a longer tag value is dropped (tag_too_long).
InfluxDB keeps every tag value in its series index for good, and the tag cache below holds
them too: a 60 KB topic level or payload tag must not become a series."""


def rows_normalizer(
    profile: CompiledProfile, max_tag_value_bytes: int = MAX_TAG_VALUE_BYTES
) -> Normalizer:
    """The normalizer of `profile`: Readings with their line protocol, no Point or fields dict
    in between."""
    return _generate(profile, max_tag_value_bytes)


def _generate(
    profile: CompiledProfile, max_tag_value_bytes: int = MAX_TAG_VALUE_BYTES
) -> Normalizer:
    """Compile the profile into the source of one function and exec it.

    Why generated code: normalizing and encoding were ~55% of the gateway's CPU per message
    (py-spy over the full benchmark's drain), mostly calls and loops over the profile's fields
    (getter, converter, dict, then a type dispatch per value in encode_point). Unrolled, each
    field is an inline subscript, its rule's checks inline (field_rules.py) and a concatenation
    whose format is known from the field's type. tests/test_normalize_rows.py holds it to the
    plain interpreter in tests/reference_normalize.py. The source is registered with linecache,
    so a traceback through it shows its lines, and `gateway profiles code ID` prints it.
    """
    names: dict[str, object] = {
        "MISSING": MISSING,
        "NOT_IN_VARIANT": NOT_IN_VARIANT,
        "NO_READING": NO_READING,
        "BadTimestamp": BadTimestamp,
        "DecodeError": DecodeError,
        "Readings": Readings,
        # tuple.__new__(Readings, ...) is what Readings(...) does after a Python-level call.
        "new_tuple": tuple.__new__,
        "LOOKUP_ERRORS": (KeyError, IndexError, TypeError),
        "MIN_NS": MIN_NS,
        "MAX_NS": MAX_NS,
        "CLOCK_SET_NS": CLOCK_SET_NS,
        "ESCAPES": STRING_ESCAPES,
        "STRUCTURES": (dict, list),
        "isfinite": math.isfinite,
        "readings_of": profile.readings,
        "time_of": profile.time_ns,
        "measurement": profile.measurement,
        "database": profile.database,
        "retention_policy": profile.retention_policy,
        "max_future_ns": profile.max_future_ns,
        "max_past_ns": profile.max_past_ns,
        "MAX_TAG_BYTES": max_tag_value_bytes,  # read by _tags_lookup_source
    }
    source = "\n".join(_source(profile, names)) + "\n"
    filename = source_name(profile)
    # linecache keeps the source for tracebacks: an entry without a file on disk stays until
    # something replaces it (checkcache skips names in angle brackets' fashion: no mtime).
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), names)  # noqa: S102  # our own source, from a validated profile
    function: Normalizer = names["normalize"]  # type: ignore[assignment]  # defined by the source
    return function


def source_name(profile: CompiledProfile) -> str:
    """The file name of a profile's generated normalizer, as tracebacks show it."""
    return f"<normalize {profile.id}>"


def generated_source(profile: CompiledProfile) -> str:
    """The Python source normalizing `profile`'s readings (for `gateway profiles code`)."""
    return "\n".join(_source(profile, {})) + "\n"


def _source(profile: CompiledProfile, names: dict[str, object]) -> list[str]:
    topic_tags = profile.tags_from_topic_only
    code = ["def normalize(document, segments, received_ns, drops):"]
    if profile.readings is None:
        code.append("    readings = (document,)")
    else:
        code += [
            "    readings = readings_of(document, document)",
            "    if type(readings) is not list:",
            "        raise DecodeError('missing_readings', "
            "'the readings array is absent or not an array')",
        ]
    code += indent(_static_tags_source(profile), 1)
    if topic_tags:
        # Tags taken from the topic and constants are the same for every reading of a message:
        # looked up once. Their drops are still reported per kept reading.
        code += indent(_tags_lookup_source(profile, names, "static", "()"), 1)
    code += [
        "    lines = []",
        "    keys = []",
        "    times = []",
        "    first_device = ''",
        "    position = -1",
        "    for reading in readings:",
        "        position += 1",
    ]
    code.append("        parts = []")
    for number, field in enumerate(profile.fields):
        code += indent(_field_source(number, field, names), 2)
    code += [
        "        if not parts:",
        "            drops.append(('(reading)', 'no_valid_field'))",
        "            continue",
        # Each reading gets its own nanosecond of receive time: readings of one series in one
        # message that fall back to the receive time would otherwise share a timestamp.
        "        received = received_ns + position",
    ]
    code += indent(_device_time_source(profile, names), 2)
    code += indent(_time_source(profile), 2)
    if not topic_tags:
        code += indent(_payload_tags_source(profile, names), 2)
    code += ["        if tag_drops:", "            drops.extend(tag_drops)"]
    code += [
        "        if not lines:",
        "            first_device = device",
        "        lines.append(f\"{key} {','.join(parts)} {time_ns}\")",
        "        keys.append(key)",
        "        times.append(time_ns)",
        "    if not lines:",
        "        reasons = sorted({reason for _, reason in drops}) or ['empty']",
        "        raise DecodeError('no_valid_reading', ', '.join(reasons))",
        "    return new_tuple(Readings, (lines, keys, times, first_device))",
    ]
    return code


def _read_source(
    target: str, path: tuple[bool, tuple[str | int, ...]], getter: str, names: dict[str, object]
) -> list[str]:
    """`target` = the value at `path`, None where it is absent (or null); without a path (a
    hashed tag, a field built by hand) the getter named `getter` (in `names`) is called."""
    from_root, keys = path
    if not keys:
        return [
            f"{target} = {getter}(reading, document)",
            f"if {target} is MISSING:",
            f"    {target} = None",
        ]
    node = "document" if from_root else "reading"
    lookup = node + "".join(f"[{key!r}]" for key in keys)
    return ["try:", f"    {target} = {lookup}", "except LOOKUP_ERRORS:", f"    {target} = None"]


def _field_source(number: int, field: CompiledField, names: dict[str, object]) -> list[str]:
    """One field: read it, then check, convert and emit it or record why not (field_rules.py).

    A missing value (absent path or null) is "missing"; a required field's drop drops the
    reading. A value the chosen layout variant does not declare (NOT_IN_VARIANT) is no field
    and no drop, unless the field is required."""
    names[f"get_{number}"] = field.get
    code = _read_source("raw", field.path, f"get_{number}", names)
    if field.by_variant:
        code += ["if raw is NOT_IN_VARIANT:"]
        code += indent(field_drop(field, "missing") if field.required else ["pass"], 1)
        code += ["elif raw is not None:"]
    else:
        code += ["if raw is not None:"]
    code += indent(field_source(number, field, names), 1)
    return [*code, "else:", *indent(field_drop(field, "missing"), 1)]


def _device_time_source(profile: CompiledProfile, names: dict[str, object]) -> list[str]:
    """`time_ns` as the profile's time says (compile._compile_time; epoch times inline), or
    the reading is dropped as bad_timestamp."""
    rule = profile.time_rule
    if rule == "receive":
        return ["time_ns = received"]
    bad = ["drops.append(('(reading)', 'bad_timestamp'))", "continue"]
    if rule is None:
        return [
            "try:",
            "    time_ns = time_of(reading, document, received)",
            "except BadTimestamp:",
            *indent(bad, 1),
        ]
    path, scale = rule
    names["time_scale"] = scale
    return [
        *_read_source("raw", path, "time_of", names),  # a path always has keys
        "if type(raw) is int:",
        "    time_ns = raw * time_scale",
        "elif type(raw) is float and isfinite(raw * time_scale):",
        "    time_ns = round(raw * time_scale)",  # round(inf) would raise OverflowError
        "else:",
        *indent(bad, 1),
    ]


def _time_source(profile: CompiledProfile) -> list[str]:
    """The device time, or the receive time (flagged) when the device clock is implausible.

    A clock outside the tolerance is only judged once the gateway's own clock is set
    (CLOCK_SET_NS); a time InfluxDB cannot store is refused only when it was not replaced."""
    flag = f"parts.append({field_prefix(TIME_REPLACED_FIELD) + 'true'!r})"
    checks = []
    if profile.max_future_ns != math.inf:
        checks.append(("time_ns > received + max_future_ns", "clock_future"))
    if profile.max_past_ns != math.inf:
        checks.append(("time_ns < received - max_past_ns", "clock_past"))
    code = []
    for index, (test, reason) in enumerate(checks):
        keyword = "if" if index == 0 else "elif"
        code += [
            f"{keyword} received >= CLOCK_SET_NS and {test}:",
            f"    drops.append(('(time)', {reason!r}))",
            f"    {flag}",
            "    time_ns = received",
        ]
    keyword = "elif" if checks else "if"
    code += [
        f"{keyword} not MIN_NS <= time_ns <= MAX_NS:",
        "    drops.append(('(reading)', 'bad_timestamp'))",
        "    continue",
    ]
    return code


def _static_tags_source(profile: CompiledProfile) -> list[str]:
    """`static`: the values of the profile's topic tags, the same for every reading of a
    message (with the payload tags' values, the key of the tag cache)."""
    segments = [f"segments[{tag.topic_segment!r}]" for tag in profile.tags if tag.topic_segment]
    code = [f"static = ({', '.join(segments)}{',' if len(segments) == 1 else ''})"]
    if not profile.tags_from_topic_only:
        # In the per-reading cache key as one string: its hash is computed once per message,
        # a tuple's at every lookup. Topic levels never contain "/", so the join is unique.
        code.append("static_key = '/'.join(static)")
    return code


def _payload_tags_source(profile: CompiledProfile, names: dict[str, object]) -> list[str]:
    """One reading's payload tag values as text (`text_N`, None when absent, null or a
    structure), then its tags from the cache."""
    code = []
    texts = []
    for number, tag in enumerate(profile.tags):
        if tag.get is None:
            continue
        names[f"tag_get_{number}"] = tag.get
        code += _read_source("raw", tag.path, f"tag_get_{number}", names)
        code += [
            "if type(raw) is str:",
            # Length is checked in the tag builder, once per new combination: a long value
            # costs one hash here (bounded by the payload's size), a check per reading would
            # cost every reading of every message.
            f"    text_{number} = raw",
            "elif raw is None or isinstance(raw, STRUCTURES):",
            f"    text_{number} = None",
            "else:",
            f"    text_{number} = str(raw)",
        ]
        texts.append(f"text_{number}")
    payload = f"({', '.join(texts)}{',' if len(texts) == 1 else ''})"
    combo = f"(static_key, {', '.join(texts)})"
    return code + _tags_lookup_source(profile, names, combo, payload)


def _tags_lookup_source(
    profile: CompiledProfile, names: dict[str, object], combo: str, payload: str
) -> list[str]:
    """`tags`, `key` and `tag_drops` for the tag values `combo`, from the profile's tag cache.

    Tags repeat: a device's topic values on every message, a radar's few lanes, directions and
    vehicle classes on every vehicle. Checking the values, building the pairs and the series
    key once per distinct combination instead of once per reading saved ~1 us per radar
    vehicle. The cache is bounded (_MAX_TAG_COMBINATIONS, then it starts over) and replaces
    lineprotocol.series_key's own cache for these series (the key is built uncached here).
    It is keyed by the values' hash, not the values: topic levels may be a kilobyte each, and
    str hashes are keyed per process (SipHash), so no sender can aim for a collision."""
    names["tag_cache"] = {}
    cap = names.get("MAX_TAG_BYTES", MAX_TAG_VALUE_BYTES)  # absent for `profiles code`
    names["tags_for"] = _tags_builder(profile, cap if isinstance(cap, int) else MAX_TAG_VALUE_BYTES)
    return [
        f"combo = hash({combo})",
        "found = tag_cache.get(combo)",
        "if found is None:",
        f"    found = tags_for(static, {payload})",
        f"    if len(tag_cache) >= {_MAX_TAG_COMBINATIONS}:",
        "        tag_cache.clear()",
        "    tag_cache[combo] = found",
        "device, key, tag_drops = found",
    ]


_MAX_TAG_COMBINATIONS = 16_384  # per profile; ~0.2 kB a combination (the key string is shared)


TagsFound = tuple[str, str, tuple[Drop, ...]]
"""(device id, series key, drops)."""


def _tags_builder(
    profile: CompiledProfile, max_tag_value_bytes: int = MAX_TAG_VALUE_BYTES
) -> Callable[[tuple[str, ...], tuple[str | None, ...]], TagsFound]:
    """(topic tag values, payload tag texts) -> (tags, series key, drops): the tags in name
    order, each value checked as line protocol needs (see _invalid_tag_value)."""
    # Per tag, in name order: where its value is in `static + texts`, or its constant.
    places: list[tuple[str, int | None, str]] = []
    topics = sum(1 for tag in profile.tags if tag.topic_segment is not None)
    topic = payload = 0
    for tag in profile.tags:
        if tag.topic_segment is not None:
            places.append((tag.name, topic, ""))
            topic += 1
        elif tag.get is not None:
            places.append((tag.name, topics + payload, ""))
            payload += 1
        else:
            places.append((tag.name, None, tag.constant or ""))
    measurement = profile.measurement
    # UTF-8 takes at most 4 bytes a character: a text this short fits without encoding it.
    surely_fits = max_tag_value_bytes // 4

    def build(static: tuple[str, ...], texts: tuple[str | None, ...]) -> TagsFound:
        values = static + texts
        pairs: list[tuple[str, str]] = []
        drops: list[Drop] = []
        device = ""
        for name, index, constant in places:
            value = constant if index is None else values[index]
            if value is None:  # only a payload value can be absent
                drops.append((name, "missing_tag"))
            elif len(value) > surely_fits and len(value.encode()) > max_tag_value_bytes:
                drops.append((name, "tag_too_long"))
            elif _invalid_tag_value(value):
                drops.append((name, "invalid_tag"))
            else:
                pairs.append((name, value))
                if name == "device_id":
                    device = value
        key = series_key_uncached(measurement, tuple(pairs))
        return device, key, tuple(drops)

    return build


def _invalid_tag_value(value: str) -> bool:
    """A tag value line protocol cannot carry: empty, with a line break (a tag cannot escape
    one), or ending in a backslash, which InfluxDB 1.x reads as escaping the separator after it
    and then refuses the whole line ("invalid tag format")."""
    return not value or value[-1] == "\\" or "\n" in value or "\r" in value
