"""Turn a validated profile into immutable plain functions for the hot path.

Everything that can be decided once is decided here: dotted paths become getters, units become
an affine factor computed with pint, a field's type, map, range and privacy become plain data
(CompiledField, NumberRule) that gateway/stages/field_rules.py turns into the normalizer's code,
clock tolerances become integers of nanoseconds. Per message the pipeline never looks at a
dictionary of configuration.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from gateway.model import FieldValue
from gateway.profiles.policy import OFFLINE_HASH_KEY, keyed_hash
from gateway.profiles.schema import (
    BinaryLayoutSpec,
    ContentMatchSpec,
    DecodeSpec,
    FieldSpec,
    LivenessSpec,
    ProfileSpec,
    TagSpec,
    TimeSpec,
)
from gateway.profiles.topics import TopicPattern, parse_pattern
from gateway.profiles.units import known_unit, unit_conversion
from gateway.profiles.units import round_12 as _round_12

MISSING: Any = object()
"""Returned by a getter when the path is absent from the payload."""


class _NoReading:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_READING"


NO_READING: Any = _NoReading()
"""A binary layout's value for a sentinel ("no reading", e.g. 0xFFFF): the field is dropped
with reason sentinel (see CompiledField.sentinel)."""


class _NotInVariant:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_IN_VARIANT"


NOT_IN_VARIANT: Any = _NotInVariant()
"""A binary layout's value for a name that another variant declares but the chosen one does
not (an alarm frame has no volume): the field is simply absent, no drop (see _variant_aware)."""

Getter = Callable[[Any, Any], Any]
"""getter(reading, root) -> value or MISSING."""


class LocatedError(ValueError):
    """A profile that validates but cannot be compiled; `loc` is the YAML key path to blame."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        self.loc = loc
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class CompiledField:
    """A field as data. Its checks run in one place, the code gateway/stages/field_rules.py
    generates from it, in this order: the sentinel, the value map, the type's rule (`number`
    for float and int fields), the privacy hash."""

    name: str
    get: Getter
    required: bool
    # What `get` reads, for normalize's generated code: (from the message root?, keys); no
    # keys: call `get`.
    path: tuple[bool, tuple[str | int, ...]]
    kind: type  # the declared type: float, int, bool or str
    number: NumberRule | None = None  # float and int fields
    value_map: dict[str, FieldValue] | None = None  # `map:`, keyed by the raw value as text
    sentinel: bool = False  # the value may be NO_READING: dropped as sentinel
    digest: Callable[[str], str] | None = None  # privacy: hash; stored as the hash's text
    # Reads a value only some layout variants declare: NOT_IN_VARIANT means no field and no drop
    # (a required one still drops the reading as missing).
    by_variant: bool = False


@dataclass(frozen=True, slots=True)
class NumberRule:
    """A number field's conversion and range, decided once: the value becomes
    (value * scale + shift) * factor rounded to `digits` significant digits (when `linear` is
    set, see _linear_params), must lie in [low, high] (int fields: within int64 too), and is
    stored as an int when `integer` (a fraction is then wrong_type), else as a float."""

    low: float
    high: float
    linear: tuple[float, float, float, int] | None  # (scale, shift, factor, digits)
    integer: bool


@dataclass(frozen=True, slots=True)
class CompiledTag:
    name: str
    topic_segment: str | None
    get: Getter | None
    constant: str | None
    path: tuple[bool, tuple[str | int, ...]] = (False, ())  # as CompiledField.path


@dataclass(frozen=True, slots=True)
class CompiledLiveness:
    """A profile's `liveness:` block, ready for the pipeline and the liveness tracker."""

    expected_interval_s: float | None  # None: devices are never judged silent
    availability: TopicPattern | None  # the availability (last will) topic, if declared
    payload_online: bytes = b"online"
    payload_offline: bytes = b"offline"

    def availability_state(self, payload: bytes) -> bool | None:
        """True online, False offline, None for a payload that is neither."""
        word = payload.strip()
        if word == self.payload_online:
            return True
        return False if word == self.payload_offline else None


@dataclass(frozen=True, slots=True)
class CompiledProfile:
    id: str
    version: int
    domain: str
    file: str
    pattern: TopicPattern
    decode_spec: DecodeSpec  # gateway.stages.decode.decoder_for compiles it (decode imports us)
    readings: Getter | None
    time_ns: Callable[[Any, Any, int], int]  # (reading, root, received_ns) -> ns, unchecked
    # What `time_ns` does, as data, for normalize's generated code: "receive", or the path and
    # ns per unit of an epoch time; None (iso8601): call `time_ns`.
    time_rule: Literal["receive"] | tuple[tuple[bool, tuple[str | int, ...]], int] | None
    # Clock tolerance in ns; math.inf when the profile says null (int vs inf compares exactly).
    max_future_ns: float
    max_past_ns: float
    measurement: str
    database: str | None
    retention_policy: str | None
    max_series: int
    tags: tuple[CompiledTag, ...]  # sorted by tag name: line protocol's preferred order
    fields: tuple[CompiledField, ...]
    # Where the file says it, for messages about conflicts between files (0 = unknown).
    id_line: int = 0
    topic_line: int = 0
    warnings: tuple[str, ...] = ()  # load-time lint, already `file:line: field: message`
    liveness: CompiledLiveness | None = None  # absent: never stale, no availability topic
    tenant: str | None = None
    # None: any device may report (auto_register); else the device ids that may.
    known_devices: frozenset[str] | None = None
    # Payload paths of `privacy: drop/hash` fields and tags: what dead letters must not keep.
    private_paths: tuple[str, ...] = ()
    hashes_private_data: bool = False  # some privacy: hash (needs a stable key)
    # match.content / match.fallback: several models on one topic (registry.py resolves them).
    content: ContentMatchSpec | None = None
    fallback: bool = False
    # No tag reads the payload: the tags depend on the topic only, so normalize computes them
    # once per message instead of once per reading.
    tags_from_topic_only: bool = dataclass_field(init=False)

    def __post_init__(self) -> None:
        only_topic = all(tag.get is None for tag in self.tags)
        object.__setattr__(self, "tags_from_topic_only", only_topic)  # frozen: set once here


def compile_profile(
    spec: ProfileSpec,
    file: str,
    *,
    id_line: int = 0,
    topic_line: int = 0,
    warnings: tuple[str, ...] = (),
    hash_key: bytes = OFFLINE_HASH_KEY,
    known_devices: frozenset[str] | None = None,
) -> CompiledProfile:
    """Compile a profile; raises LocatedError naming the field when a unit is unknown.

    `privacy: drop` fields and tags are left out entirely (never read); `privacy: hash` ones
    carry the keyed hash, so normalize never holds a clear value in a Point."""
    relative = spec.readings is not None
    digest = keyed_hash(hash_key)
    sentinels = _sentinel_paths(spec.decode)
    by_variant = _variant_only_paths(spec.decode)
    return CompiledProfile(
        id=spec.id,
        version=spec.version,
        domain=spec.domain,
        file=file,
        pattern=parse_pattern(spec.match.topic),
        decode_spec=spec.decode,
        readings=make_getter(spec.readings.path, relative=False) if spec.readings else None,
        time_ns=_compile_time(spec.time, relative=spec.readings is not None),
        time_rule=_time_rule(spec.time, relative=spec.readings is not None),
        max_future_ns=_tolerance_ns(spec.time.max_future_s),
        max_past_ns=_tolerance_ns(spec.time.max_past_s),
        measurement=spec.output.measurement,
        database=spec.output.database,
        retention_policy=spec.output.retention_policy,
        max_series=spec.output.max_series,
        tags=tuple(
            _private_tag(
                _sentinel_tag(_compile_tag(name, tag, relative=relative), sentinels | by_variant),
                tag.privacy,
                digest,
            )
            for name, tag in sorted(spec.tags.items())
            if tag.privacy != "drop"
        ),
        fields=tuple(
            _private_field(
                _variant_aware(
                    _sentinel_aware(_compile_field(name, field, relative=relative), sentinels),
                    by_variant,
                ),
                field.privacy,
                digest,
            )
            for name, field in spec.fields.items()
            if field.privacy != "drop"
        ),
        id_line=id_line,
        topic_line=topic_line,
        warnings=warnings,
        liveness=_compile_liveness(spec.liveness),
        tenant=spec.tenant,
        known_devices=known_devices,
        private_paths=_private_paths(spec),
        hashes_private_data=any(privacy == "hash" for _, privacy in _privacy_of(spec)),
        content=spec.match.content,
        fallback=spec.match.fallback,
    )


def _sentinel_paths(decode: DecodeSpec) -> frozenset[tuple[str | int, ...]]:
    """Keys of the decoded values a binary layout may set to NO_READING (see layouts.py)."""
    return _layout_paths(decode, BinaryLayoutSpec.sentinel_names)


def _variant_only_paths(decode: DecodeSpec) -> frozenset[tuple[str | int, ...]]:
    """Keys of the decoded values a binary layout may set to NOT_IN_VARIANT (see layouts.py)."""
    return _layout_paths(decode, BinaryLayoutSpec.variant_only_names)


def _layout_paths(
    decode: DecodeSpec, names: Callable[[BinaryLayoutSpec], frozenset[str]]
) -> frozenset[tuple[str | int, ...]]:
    """Keys of the decoded values `names` picks from the binary layout: at the root for
    format binary, under `payload` for envelopes."""
    if isinstance(decode, BinaryLayoutSpec):
        return frozenset((name,) for name in names(decode))
    binary = getattr(decode, "binary", None)  # json with a binary frame inside
    layout = getattr(decode, "layout", None) or getattr(binary, "layout", None)
    if not isinstance(layout, BinaryLayoutSpec):
        return frozenset()
    return frozenset(("payload", name) for name in names(layout))


def _sentinel_aware(
    compiled: CompiledField, sentinels: frozenset[tuple[str | int, ...]]
) -> CompiledField:
    """A field reading a value that may be NO_READING drops it as `sentinel`."""
    if compiled.path[1] not in sentinels:
        return compiled
    return replace(compiled, sentinel=True)


def _variant_aware(
    compiled: CompiledField, by_variant: frozenset[tuple[str | int, ...]]
) -> CompiledField:
    """A field reading a value only some layout variants declare: normalize leaves it out
    without a drop when the chosen variant does not declare it."""
    if compiled.path[1] not in by_variant:
        return compiled
    return replace(compiled, by_variant=True)


def _sentinel_tag(
    compiled: CompiledTag, sentinels: frozenset[tuple[str | int, ...]]
) -> CompiledTag:
    """A tag reading a value that may be NO_READING (or NOT_IN_VARIANT) reads it as absent
    (missing_tag)."""
    get = compiled.get
    if get is None or compiled.path[1] not in sentinels:
        return compiled

    def checked(reading: Any, root: Any) -> Any:
        raw = get(reading, root)
        return None if raw is NO_READING or raw is NOT_IN_VARIANT else raw

    return replace(compiled, get=checked, path=(False, ()))  # no path: normalize calls `get`


def _compile_liveness(spec: LivenessSpec | None) -> CompiledLiveness | None:
    if spec is None:
        return None
    topic = spec.availability_topic
    return CompiledLiveness(
        spec.expected_interval_s,
        parse_pattern(topic) if topic is not None else None,
        spec.payload_online.strip().encode(),
        spec.payload_offline.strip().encode(),
    )


def _privacy_of(spec: ProfileSpec) -> list[tuple[str | None, str]]:
    """(payload path, privacy) of every field and tag."""
    fields = [(field.path, field.privacy) for field in spec.fields.values()]
    return fields + [(tag.path, tag.privacy) for tag in spec.tags.values()]


def _private_paths(spec: ProfileSpec) -> tuple[str, ...]:
    private = {path for path, privacy in _privacy_of(spec) if privacy != "keep" and path}
    return tuple(sorted(private))


def _private_field(
    compiled: CompiledField, privacy: str, digest: Callable[[str], str]
) -> CompiledField:
    """The compiled field, hashing its value as text when the profile says privacy: hash."""
    if privacy != "hash":
        return compiled
    return replace(compiled, digest=digest)


def _private_tag(compiled: CompiledTag, privacy: str, digest: Callable[[str], str]) -> CompiledTag:
    """The compiled tag, reading a hash instead of the value when the profile says hash."""
    get = compiled.get
    if privacy != "hash" or get is None:  # the schema allows privacy only on path: tags
        return compiled

    def hashed(reading: Any, root: Any) -> Any:
        raw = get(reading, root)
        if raw is MISSING or raw is None or isinstance(raw, dict | list):
            return raw  # normalize reports missing_tag, as without privacy
        return digest(raw if type(raw) is str else str(raw))

    return replace(compiled, get=hashed, path=(False, ()))  # no path: normalize calls `get`


def _tolerance_ns(seconds: int | None) -> float:
    return math.inf if seconds is None else seconds * 10**9


def parse_path(path: str, *, relative: bool) -> tuple[bool, tuple[str | int, ...]]:
    """(from the message root?, keys) of a dotted path; `$.` anchors it at the message root,
    digits index arrays."""
    from_root = path.startswith("$.") or not relative
    keys: tuple[str | int, ...] = tuple(
        int(key) if key.isdigit() else key for key in path.removeprefix("$.").split(".")
    )
    return from_root, keys


def make_getter(path: str, *, relative: bool) -> Getter:
    """A getter for a dotted path (see parse_path); MISSING where the path is absent."""
    from_root, keys = parse_path(path, relative=relative)
    if len(keys) == 1:
        return _one_key_getter(keys[0], from_root=from_root)

    def get(reading: Any, root: Any) -> Any:
        node = root if from_root else reading
        try:
            for key in keys:
                node = node[key]
        except (KeyError, IndexError, TypeError):
            return MISSING
        return node

    return get


def _one_key_getter(key: str | int, *, from_root: bool) -> Getter:
    # Most paths are one key; a single subscript without the loop is ~35% cheaper per field,
    # and getters run for every field of every reading.
    if from_root:

        def get_from_root(reading: Any, root: Any) -> Any:
            try:
                return root[key]
            except (KeyError, IndexError, TypeError):
                return MISSING

        return get_from_root

    def get(reading: Any, root: Any) -> Any:
        try:
            return reading[key]
        except (KeyError, IndexError, TypeError):
            return MISSING

    return get


def _compile_tag(name: str, tag: TagSpec, *, relative: bool) -> CompiledTag:
    return CompiledTag(
        name=name,
        topic_segment=tag.topic,
        get=make_getter(tag.path, relative=relative) if tag.path else None,
        constant=tag.value,
        path=parse_path(tag.path, relative=relative) if tag.path else (False, ()),
    )


def _compile_field(name: str, spec: FieldSpec, *, relative: bool) -> CompiledField:
    return CompiledField(
        name=name,
        get=make_getter(spec.path, relative=relative),
        required=spec.required,
        path=parse_path(spec.path, relative=relative),
        kind=_FIELD_KINDS[spec.type],
        number=_number_rule(name, spec) if spec.type in ("float", "int") else None,
        value_map=spec.map,
    )


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_FIELD_KINDS: dict[str, type] = {"float": float, "int": int, "bool": bool, "string": str}


def _number_rule(name: str, spec: FieldSpec) -> NumberRule:
    low = -math.inf if spec.min is None else spec.min
    high = math.inf if spec.max is None else spec.max
    if spec.type == "int":
        # InfluxDB stores an int field as int64 and refuses the whole line (and, before the bad
        # line is isolated, its batch) for a larger value: out_of_range here.
        low, high = max(low, INT64_MIN), min(high, INT64_MAX)
    return NumberRule(low, high, _linear_params(name, spec), integer=spec.type == "int")


def _linear_params(name: str, spec: FieldSpec) -> tuple[float, float, float, int] | None:
    """(scale, shift, factor, digits) of scale/offset then the unit conversion; None when the
    value passes unchanged.

    The result is rounded to `digits` significant digits. Binary floats turn decimal scales
    into noise (1234600 * 0.001 = 1234.6000000000001); a multiply-add with exact decimal
    factors is off by a few ulp, so 15 significant digits give back the decimal the device
    meant and keep long counters whole. pint's own factors are only good to 12 digits (see
    unit_conversion), so conversions that are not exact decimals (degF, psi) round to 12."""
    if spec.unit:
        check_unit(("fields", name, "unit"), spec.unit)
    if spec.canonical_unit:
        check_unit(("fields", name, "canonical_unit"), spec.canonical_unit)
    unit_factor, unit_shift = 1.0, 0.0
    if spec.canonical_unit and spec.unit:
        try:
            unit_factor, unit_shift = unit_conversion(spec.unit, spec.canonical_unit)
        except ValueError as exc:
            raise LocatedError(("fields", name, "canonical_unit"), str(exc)) from None
    # canonical = (value * scale + offset + unit_shift / unit_factor) * unit_factor: the
    # device-unit offset of a conversion (-32 for degF -> degC) cancels exactly, so 32 degF is
    # 0.0 degC, not the -8e-12 that adding a rounded shift after the factor leaves.
    shift = spec.offset + _round_12(unit_shift / unit_factor)
    if (spec.scale, shift, unit_factor) == (1.0, 0.0, 1.0):
        return None
    exact = all(_is_short_decimal(number) for number in (spec.scale, shift, unit_factor))
    return spec.scale, shift, unit_factor, 15 if exact else 12


def _is_short_decimal(number: float) -> bool:
    """True for 0.1, 3.6, 1.609344; false for 5/9 = 0.555555555556 (12 digits after rounding)."""
    return len(f"{abs(number):.12g}".replace(".", "").lstrip("0").split("e")[0]) <= 10


def check_unit(loc: tuple[str, ...], unit: str) -> None:
    """Raise LocatedError unless pint knows `unit` (see gateway/profiles/units.py)."""
    try:
        known_unit(unit)
    except ValueError as exc:
        raise LocatedError(loc, str(exc)) from None


_EPOCH_SCALE = {"epoch_s": 10**9, "epoch_ms": 10**6, "epoch_us": 10**3, "epoch_ns": 1}


def _time_rule(
    spec: TimeSpec, *, relative: bool
) -> Literal["receive"] | tuple[tuple[bool, tuple[str | int, ...]], int] | None:
    """See CompiledProfile.time_rule; the same cases as _compile_time."""
    if spec.source == "receive" or spec.path is None:
        return "receive"
    if spec.format not in _EPOCH_SCALE:  # iso8601, text epochs, strptime patterns
        return None
    return parse_path(spec.path, relative=relative), _EPOCH_SCALE[spec.format]


def _compile_time(spec: TimeSpec, *, relative: bool) -> Callable[[Any, Any, int], int]:
    if spec.source == "receive" or spec.path is None:
        return lambda reading, root, received_ns: received_ns
    get = make_getter(spec.path, relative=relative)
    if spec.format == "iso8601":
        parse = _iso8601_parser(spec.timezone)
    elif spec.format in _EPOCH_SCALE:
        parse = _epoch_parser(_EPOCH_SCALE[spec.format])
    elif spec.format.removesuffix("_text") in _EPOCH_SCALE:
        parse = _epoch_text_parser(_EPOCH_SCALE[spec.format.removesuffix("_text")])
    else:
        parse = _strptime_parser(spec.format, spec.timezone)

    def time_ns(reading: Any, root: Any, received_ns: int) -> int:
        return parse(get(reading, root))

    return time_ns


class BadTimestamp(Exception):  # noqa: N818  # signal caught by normalize, becomes a reason
    """The reading's timestamp is missing or unparseable."""


# InfluxDB stores int64 nanoseconds (years 1677-2262) and rejects the line otherwise. The
# parsers return any integer: normalize first applies the clock tolerance (year 2300 is a wrong
# clock like year 2100), then refuses what is still out of range.
MIN_NS, MAX_NS = -(2**63), 2**63 - 1


def _epoch_parser(scale: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if type(raw) is int:
            return raw * scale
        if type(raw) is float:
            scaled = raw * scale
            if math.isfinite(scaled):  # round(inf) raises OverflowError: 1.7e308 s overflows
                return round(scaled)
        raise BadTimestamp("bad_timestamp")

    return parse


def _sub_microsecond_ns(raw: str) -> int:
    """Nanoseconds beyond the microsecond of an ISO 8601 text whose fraction starts at [20]."""
    end = 26
    while end < 29 and raw[end : end + 1].isdigit():
        end += 1
    return int(raw[26:end].ljust(3, "0"))


def _iso8601_parser(zone_name: str) -> Callable[[Any], int]:
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415  # keeps the module's top light

    zone = ZoneInfo(zone_name)  # the schema checked that it exists
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    local_epoch = datetime(1970, 1, 1)  # naive on purpose: see below
    local_offset, no_offset = zone.utcoffset, timedelta(0)

    def parse(raw: Any) -> int:
        if type(raw) is not str:
            raise BadTimestamp("bad_timestamp")
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise BadTimestamp("bad_timestamp") from None
        # Exact integer arithmetic, unlike timestamp() floats. A time without an offset is the
        # profile's local time: the zone's offset at that wall time is subtracted, as
        # moment.replace(tzinfo=zone) - epoch would, but without replace(), which cost ~2 us.
        if moment.tzinfo is None:
            delta = moment - local_epoch - (local_offset(moment) or no_offset)  # never None
        else:
            delta = moment - epoch
        ns = (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
        # datetime keeps microseconds; LoRaWAN network servers write nanoseconds
        # (2026-11-24T01:00:00.123456789Z): digits 7-9 of the fraction are added back.
        if raw[26:27].isdigit() and raw[19:20] == ".":
            ns += _sub_microsecond_ns(raw)
        return ns

    return parse


_EPOCH_TEXT = re.compile(r"[+-]?[0-9]{1,20}(?:\.[0-9]{1,9})?", re.ASCII)


def _epoch_text_parser(scale: int) -> Callable[[Any], int]:
    """Epoch numbers sent as text ("1732435200", "1732435200123.5"); numbers pass as epoch_*.
    Exact: the fraction is scaled as decimal digits, not through a float."""
    numeric = _epoch_parser(scale)

    def parse(raw: Any) -> int:
        if type(raw) is not str:
            return numeric(raw)
        text = raw.strip()
        if not _EPOCH_TEXT.fullmatch(text):
            raise BadTimestamp("bad_timestamp")
        whole, _, fraction = text.partition(".")
        sign = -1 if whole.startswith("-") else 1
        digits = len(fraction)
        scaled = int(whole) * scale
        if digits:
            scaled += sign * round(int(fraction) * scale / 10**digits)
        return scaled

    return parse


def _strptime_parser(pattern: str, zone_name: str) -> Callable[[Any], int]:
    """A strptime pattern; without %z in the text the time is local in the profile's zone."""
    from datetime import UTC, datetime  # noqa: PLC0415  # keeps the module's top light

    zone = ZoneInfo(zone_name)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def parse(raw: Any) -> int:
        if type(raw) is not str:
            raise BadTimestamp("bad_timestamp")
        try:
            moment = datetime.strptime(raw.strip(), pattern)  # naive: the zone is applied below
        except ValueError:
            raise BadTimestamp("bad_timestamp") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        delta = moment - epoch
        return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000

    return parse
