"""Turn a validated profile into immutable plain functions for the hot path.

Everything that can be decided once is decided here: dotted paths become getters, units become
an affine factor computed with pint, value maps and ranges become closures. Per message the
pipeline never looks at a dictionary of configuration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.model import FieldValue
from gateway.profiles.schema import DecodeSpec, FieldSpec, ProfileSpec, TagSpec, TimeSpec
from gateway.profiles.topics import TopicPattern, parse_pattern

MISSING: Any = object()
"""Returned by a getter when the path is absent from the payload."""

Getter = Callable[[Any, Any], Any]
"""getter(reading, root) -> value or MISSING."""


class FieldDropped(Exception):  # noqa: N818  # a control-flow signal inside normalize, not an error
    """Raised by a field converter: the value is unusable; `args[0]` is the reason slug."""


@dataclass(frozen=True, slots=True)
class CompiledField:
    name: str
    get: Getter
    convert: Callable[[Any], FieldValue]
    required: bool


@dataclass(frozen=True, slots=True)
class CompiledTag:
    name: str
    topic_segment: str | None
    get: Getter | None
    constant: str | None


@dataclass(frozen=True, slots=True)
class CompiledProfile:
    id: str
    version: int
    domain: str
    file: str
    pattern: TopicPattern
    decode_spec: DecodeSpec  # gateway.decode.decoder_for compiles it (decode imports us)
    readings: Getter | None
    time_ns: Callable[[Any, Any, int], int]  # (reading, root, received_ns) -> ns
    measurement: str
    database: str | None
    retention_policy: str | None
    tags: tuple[CompiledTag, ...]  # sorted by tag name: line protocol's preferred order
    fields: tuple[CompiledField, ...]


def compile_profile(spec: ProfileSpec, file: str) -> CompiledProfile:
    """Compile a profile; raises ValueError naming the field when a unit is unknown."""
    return CompiledProfile(
        id=spec.id,
        version=spec.version,
        domain=spec.domain,
        file=file,
        pattern=parse_pattern(spec.match.topic),
        decode_spec=spec.decode,
        readings=make_getter(spec.readings.path, relative=False) if spec.readings else None,
        time_ns=_compile_time(spec.time, relative=spec.readings is not None),
        measurement=spec.output.measurement,
        database=spec.output.database,
        retention_policy=spec.output.retention_policy,
        tags=tuple(
            _compile_tag(name, tag, relative=spec.readings is not None)
            for name, tag in sorted(spec.tags.items())
        ),
        fields=tuple(
            _compile_field(name, field, relative=spec.readings is not None)
            for name, field in spec.fields.items()
        ),
    )


def make_getter(path: str, *, relative: bool) -> Getter:
    """A getter for a dotted path; `$.` anchors it at the message root, digits index arrays."""
    from_root = path.startswith("$.") or not relative
    keys: tuple[str | int, ...] = tuple(
        int(key) if key.isdigit() else key for key in path.removeprefix("$.").split(".")
    )

    def get(reading: Any, root: Any) -> Any:
        node = root if from_root else reading
        try:
            for key in keys:
                node = node[key]
        except (KeyError, IndexError, TypeError):
            return MISSING
        return node

    return get


def _compile_tag(name: str, tag: TagSpec, *, relative: bool) -> CompiledTag:
    return CompiledTag(
        name=name,
        topic_segment=tag.topic,
        get=make_getter(tag.path, relative=relative) if tag.path else None,
        constant=tag.value,
    )


def _compile_field(name: str, spec: FieldSpec, *, relative: bool) -> CompiledField:
    steps: list[Callable[[Any], Any]] = []
    if spec.map is not None:
        steps.append(_value_map(spec.map))
    if spec.type in ("float", "int"):
        steps.append(_number)
        factor, shift = _affine(spec)
        if (factor, shift) != (1.0, 0.0):
            steps.append(_linear(factor, shift))
        if spec.min is not None or spec.max is not None:
            steps.append(_in_range(spec.min, spec.max))
        steps.append(_to_int if spec.type == "int" else float)
    else:
        steps.append(_to_bool if spec.type == "bool" else _to_string)
    return CompiledField(
        name=name,
        get=make_getter(spec.path, relative=relative),
        convert=_chain(tuple(steps)),
        required=spec.required,
    )


def _chain(steps: tuple[Callable[[Any], Any], ...]) -> Callable[[Any], FieldValue]:
    if len(steps) == 1:
        return steps[0]

    def convert(raw: Any) -> Any:
        for step in steps:
            raw = step(raw)
        return raw

    return convert


def _affine(spec: FieldSpec) -> tuple[float, float]:
    """Combine scale/offset and the unit conversion into value * factor + shift."""
    factor, shift = spec.scale, spec.offset
    if spec.canonical_unit and spec.unit:
        unit_factor, unit_shift = unit_conversion(spec.unit, spec.canonical_unit)
        factor, shift = factor * unit_factor, shift * unit_factor + unit_shift
    return factor, shift


@cache
def unit_conversion(unit: str, canonical: str) -> tuple[float, float]:
    """(factor, shift) such that canonical = value * factor + shift, computed by pint.

    pint is imported here, at load time only: it costs ~0.3 s to import and nothing per message.
    """
    import pint  # noqa: PLC0415  # deferred: only profiles with units pay for the import

    registry = _unit_registry()
    try:
        zero = registry.Quantity(0.0, unit).to(canonical).magnitude
        one = registry.Quantity(1.0, unit).to(canonical).magnitude
    except (pint.errors.UndefinedUnitError, pint.errors.DimensionalityError, AttributeError) as exc:
        raise ValueError(f"cannot convert {unit!r} to {canonical!r}: {exc}") from exc
    # pint goes through base units, so exact decimal factors arrive with float noise
    # (L/s -> m^3/h = 3.6000000000000005); unit definitions have far fewer than 12 digits.
    return _round_12(float(one - zero)), _round_12(float(zero))


def _round_12(value: float) -> float:
    return float(f"{value:.12g}")


@cache
def _unit_registry() -> Any:
    import pint  # noqa: PLC0415  # see unit_conversion

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=True)


def _value_map(table: dict[str, FieldValue]) -> Callable[[Any], Any]:
    def mapped(raw: Any) -> Any:
        # YAML map keys are text; a device may send the enum as text, number or boolean.
        if type(raw) is str:
            key = raw
        elif type(raw) is bool:
            key = "true" if raw else "false"
        else:
            key = str(raw)
        try:
            return table[key]
        except KeyError:
            raise FieldDropped("unmapped_value") from None

    return mapped


def _number(raw: Any) -> float | int:
    if type(raw) is float:
        if not math.isfinite(raw):
            raise FieldDropped("not_finite")
        return raw
    if type(raw) is int:
        return raw
    raise FieldDropped("wrong_type")


def _linear(factor: float, shift: float) -> Callable[[float], float]:
    def convert(value: float) -> float:
        result = value * factor + shift
        if not math.isfinite(result):  # e.g. 1.7e308 L/s in m^3/h: line protocol has no inf
            raise FieldDropped("not_finite")
        return result

    return convert


def _in_range(low: float | None, high: float | None) -> Callable[[float], float]:
    lo = -math.inf if low is None else low
    hi = math.inf if high is None else high

    def check(value: float) -> float:
        if not lo <= value <= hi:
            raise FieldDropped("out_of_range")
        return value

    return check


def _to_int(value: float | int) -> int:
    if type(value) is int:
        return value
    if not float(value).is_integer():
        raise FieldDropped("wrong_type")
    return int(value)


def _to_bool(raw: Any) -> bool:
    if type(raw) is bool:
        return raw
    if raw in (0, 1) and type(raw) is int:
        return bool(raw)
    raise FieldDropped("wrong_type")


_MAX_STRING = 64 * 1024  # InfluxDB's limit for a string field value


def _to_string(raw: Any) -> str:
    if type(raw) is not str:
        raise FieldDropped("wrong_type")
    if len(raw) > _MAX_STRING:
        raise FieldDropped("string_too_long")
    return raw


_EPOCH_SCALE = {"epoch_s": 10**9, "epoch_ms": 10**6, "epoch_us": 10**3, "epoch_ns": 1}


def _compile_time(spec: TimeSpec, *, relative: bool) -> Callable[[Any, Any, int], int]:
    if spec.source == "receive" or spec.path is None:
        return lambda reading, root, received_ns: received_ns
    get = make_getter(spec.path, relative=relative)
    if spec.format == "iso8601":
        parse = _iso8601_parser(spec.timezone)
    else:
        parse = _epoch_parser(_EPOCH_SCALE[spec.format])

    def time_ns(reading: Any, root: Any, received_ns: int) -> int:
        return parse(get(reading, root))

    return time_ns


class BadTimestamp(Exception):  # noqa: N818  # signal caught by normalize, becomes a reason
    """The reading's timestamp is missing or unparseable."""


# InfluxDB stores int64 nanoseconds (years 1677-2262) and rejects the line otherwise.
_MIN_NS, _MAX_NS = -(2**63), 2**63 - 1


def _in_ns_range(time_ns: int) -> int:
    if not _MIN_NS <= time_ns <= _MAX_NS:
        raise BadTimestamp("bad_timestamp")
    return time_ns


def _epoch_parser(scale: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        if type(raw) is int:
            return _in_ns_range(raw * scale)
        if type(raw) is float:
            scaled = raw * scale
            if math.isfinite(scaled):  # round(inf) raises OverflowError: 1.7e308 s overflows
                return _in_ns_range(round(scaled))
        raise BadTimestamp("bad_timestamp")

    return parse


def _iso8601_parser(zone_name: str) -> Callable[[Any], int]:
    from datetime import UTC, datetime  # noqa: PLC0415  # keeps the module's top light

    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {zone_name!r}") from exc
    epoch = datetime(1970, 1, 1, tzinfo=UTC)

    def parse(raw: Any) -> int:
        if type(raw) is not str:
            raise BadTimestamp("bad_timestamp")
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise BadTimestamp("bad_timestamp") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        delta = moment - epoch  # exact integer arithmetic, unlike timestamp() floats
        return _in_ns_range(
            (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000
        )

    return parse
