"""A field's rule, as source for the generated normalizer: the one place that checks and converts
a field's value.

gateway/profiles/compile.py decides a field's parameters once (CompiledField, NumberRule);
normalize.py reads the value and puts the code below in its loop over readings, with `raw`
holding the value (present, not null). The steps and the drop reason of each, in order:

1. a binary layout's "no reading" (NO_READING): sentinel;
2. the value map (`map:`, keyed by the value as text): unmapped_value;
3. the declared type's rule. Number: not_finite or wrong_type (a bool is no number), the
   conversion's not_finite (1.7e308 L/s in m^3/h), out_of_range (int fields: int64 too), then
   wrong_type for a fraction in an int field. Bool: true/false or the integers 0/1, else
   wrong_type. String: wrong_type, string_too_long;
4. `privacy: hash`: the value's text is replaced by its keyed hash.

A value that passes is appended to `parts` as line protocol (`name=value`); a drop is appended
to `drops`, and a required field's drop ends the reading (`continue`). tests/reference_normalize.py
is the plain interpreter the tests hold this code to.
"""

from __future__ import annotations

import math

from gateway.profiles.compile import CompiledField, NumberRule
from gateway.stages.lineprotocol import field_prefix

MAX_STRING_CHARS = 64 * 1024  # InfluxDB's limit for a string field value

# Per field, then it starts over; ~0.1 kB a value. In the 10,000-device benchmark the radar's
# speeds take 1,638 entries (99% hits) and a speed test's bandwidths fill it (~60% hits).
_MAX_MEMO_VALUES = 2048


def field_source(number: int, field: CompiledField, names: dict[str, object]) -> list[str]:
    """The statements that check and convert the present value `raw` of the profile's
    `number`-th field, then emit it or record why not; the values they use go into `names`."""
    if field.number is not None:
        code = _number_source(number, field, field.number, names)
    elif field.kind is bool:
        code = [
            # The integers 0 and 1 are booleans too (a bool is no int here: type() is exact).
            "value = raw == 1 if type(raw) is int and (raw == 0 or raw == 1) else raw",
            "if type(value) is not bool:",
            *indent(field_drop(field, "wrong_type"), 1),
            "else:",
            *indent(_emit(number, field, names), 1),
        ]
    else:
        code = [
            "if type(raw) is not str:",
            *indent(field_drop(field, "wrong_type"), 1),
            f"elif len(raw) > {MAX_STRING_CHARS}:",
            *indent(field_drop(field, "string_too_long"), 1),
            "else:",
            "    value = raw",
            *indent(_emit(number, field, names), 1),
        ]
    if field.value_map is not None:
        names[f"map_{number}"] = field.value_map
        code = [
            # YAML map keys are text; a device may send the enum as text, number or boolean.
            "if type(raw) is bool:",
            "    raw = 'true' if raw else 'false'",
            "elif type(raw) is not str:",
            "    raw = str(raw)",
            f"raw = map_{number}.get(raw, MISSING)",
            "if raw is MISSING:",
            *indent(field_drop(field, "unmapped_value"), 1),
            "else:",
            *indent(code, 1),
        ]
    if field.sentinel:
        code = [
            "if raw is NO_READING:",
            *indent(field_drop(field, "sentinel"), 1),
            "else:",
            *indent(code, 1),
        ]
    return code


def field_drop(field: CompiledField, reason: str) -> list[str]:
    """Record a field's drop for `reason`; a required field's drop drops the whole reading."""
    code = [f"drops.append(({field.name!r}, {reason!r}))"]
    if field.required:
        code += [f"drops.append(('(reading)', {f'required_{field.name}_{reason}'!r}))", "continue"]
    return code


def indent(lines: list[str], levels: int) -> list[str]:
    return ["    " * levels + line for line in lines]


def _number_source(
    number: int, field: CompiledField, rule: NumberRule, names: dict[str, object]
) -> list[str]:
    """Type check, affine conversion, range and int/float of a number in `raw`, `kind` its
    type. Checked in this order: wrong_type or not_finite, the conversion's not_finite,
    out_of_range, wrong_type for a fraction in an int field."""
    # A hashed field's clear values are not kept, not even in a memo.
    memo = rule.linear is not None and field.digest is None
    emit = _emit(number, field, names, memo=memo)
    fraction = field_drop(field, "wrong_type")
    if rule.linear is not None:  # the conversion made a float
        typed = emit
        if rule.integer:
            typed = ["if value.is_integer():", "    value = int(value)", *indent(emit, 1)]
            typed += ["else:", *indent(fraction, 1)]
    elif rule.integer:
        typed = ["if kind is int:", *indent(emit, 1), "elif value.is_integer():"]
        typed += ["    value = int(value)", *indent(emit, 1), "else:", *indent(fraction, 1)]
    else:  # a float field stores floats: an int reading becomes one
        typed = ["if kind is int:", "    value = float(value)", *emit]
    bounds = []
    if rule.low != -math.inf:
        names[f"low_{number}"] = rule.low
        bounds.append(f"low_{number} <= value")
    if rule.high != math.inf:
        names[f"high_{number}"] = rule.high
        bounds.append(f"value <= high_{number}")
    ranged = typed
    if bounds:
        ranged = [
            f"if not ({' and '.join(bounds)}):",
            *indent(field_drop(field, "out_of_range"), 1),
            "else:",
            *indent(typed, 1),
        ]
    code = [
        "kind = type(raw)",
        "if kind is not int and kind is not float:",  # bool too: True is no number reading
        *indent(field_drop(field, "wrong_type"), 1),
    ]
    if rule.linear is not None:
        converted = _linear_source(number, field, rule.linear, names, then=ranged, memo=memo)
        return [*code, "else:", *indent(converted, 1)]
    return [
        *code,
        "elif kind is float and not isfinite(raw):",
        *indent(field_drop(field, "not_finite"), 1),
        "else:",
        "    value = raw",
        *indent(ranged, 1),
    ]


def _linear_source(
    number: int,
    field: CompiledField,
    linear: tuple[float, float, float, int],
    names: dict[str, object],
    *,
    then: list[str],
    memo: bool,
) -> list[str]:
    """`value` = (raw * scale + shift) * factor to `digits` significant digits, then `then`;
    the field's text remembered per raw value if `memo` (see _emit). One not_finite check after
    the conversion covers the raw value too: inf and nan stay non-finite through it."""
    scale, shift, factor, digits = linear
    names[f"scale_{number}"], names[f"shift_{number}"] = scale, shift
    names[f"factor_{number}"], names[f"digits_{number}"] = factor, f".{digits}g"
    converted = [
        f"value = (raw * scale_{number} + shift_{number}) * factor_{number}",
        "if not isfinite(value):",  # also 1.7e308 L/s in m^3/h: line protocol has no inf
        *indent(field_drop(field, "not_finite"), 1),
        "else:",
        f"    value = float(format(value, digits_{number}))",
        *indent(then, 1),
    ]
    if not memo:
        return converted
    # Converting and printing a scaled value is the costliest step of a reading, and readings
    # repeat values (a radar's speeds to 0.01 m/s, lengths in whole cm): the field's text is
    # remembered per raw value, and looked up first. Only values that passed are kept (never
    # inf or nan); 1 and 1.0 share an entry, and convert alike.
    names[f"memo_{number}"] = {}
    return [
        f"text = memo_{number}.get(raw)",
        "if text is not None:",
        "    parts.append(text)",
        "else:",
        *indent(converted, 1),
    ]


def _emit(
    number: int, field: CompiledField, names: dict[str, object], *, memo: bool = False
) -> list[str]:
    """The statements that add the converted `value`'s line protocol text (remembered in
    `memo_N` by raw value if `memo`), hashed first for `privacy: hash`."""
    code = []
    if field.digest is not None:
        names[f"digest_{number}"] = field.digest
        text = "value" if field.kind is str else "str(value)"
        code.append(f"value = digest_{number}({text})")
    text = _text_expression(number, field, names)
    if not memo:
        return [*code, f"parts.append({text})"]
    return [
        *code,
        f"text = {text}",
        "parts.append(text)",
        f"if len(memo_{number}) >= {_MAX_MEMO_VALUES}:",
        f"    memo_{number}.clear()",
        f"memo_{number}[raw] = text",
    ]


def _text_expression(number: int, field: CompiledField, names: dict[str, object]) -> str:
    """A converted `value` as line protocol text, `name=...`, formatted as its type says.

    f-strings, not `+` and a call: ~50 ns less a float or string field (a float's repr is
    float.__repr__, the shortest text that reads back as the same float)."""
    prefix = f"prefix_{number}"
    names[prefix] = field_prefix(field.name)
    if field.digest is not None or field.kind is str:
        return f"f'{{{prefix}}}\"{{value.translate(ESCAPES)}}\"'"
    if field.kind is float:
        return f"f'{{{prefix}}}{{value!r}}'"
    if field.kind is int:
        return f"f'{{{prefix}}}{{value}}i'"
    names[f"{prefix}_true"] = field_prefix(field.name) + "true"
    names[f"{prefix}_false"] = field_prefix(field.name) + "false"
    return f"{prefix}_true if value else {prefix}_false"
