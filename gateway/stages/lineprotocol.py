"""Points -> InfluxDB line protocol (the format both the v1 and v2 write APIs take).

Escaping follows the line protocol reference: measurement escapes comma and space; tag keys,
tag values and field keys escape comma, equals sign and space; string field values escape
double quote and backslash. Integers carry the `i` suffix; floats use repr(), the shortest text
that reads back as the same float64.
"""

from __future__ import annotations

from functools import lru_cache

from gateway.model import FieldValue, Point

_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
STRING_ESCAPES = str.maketrans({'"': r"\"", "\\": "\\\\"})


def escape_key(text: str) -> str:
    """Tag key, tag value or field key. Not cached: the pipeline's normalizers cache whole
    series keys by tag values (gateway/stages/normalize.py), so this runs once per new series; a
    cache here held ~1.5 MB of device ids in the 10,000-device benchmark."""
    # translate() with replacements longer than one character takes its slow path, ~0.5 us
    # for a 16-character value; three substring tests take ~0.1 us, and most texts have
    # nothing to escape.
    if "," in text or "=" in text or " " in text:
        return text.translate(_KEY_ESCAPES)
    return text


@lru_cache(maxsize=1024)
def escape_measurement(text: str) -> str:
    return text.translate(_MEASUREMENT_ESCAPES)


def format_field(value: FieldValue) -> str:
    kind = type(value)
    if kind is float:
        return repr(value)
    if kind is int:
        return f"{value}i"
    if kind is bool:
        return "true" if value else "false"
    return '"' + str(value).translate(STRING_ESCAPES) + '"'


def series_key_uncached(measurement: str, tags: tuple[tuple[str, str], ...]) -> str:
    """`measurement,tag=value,...`, escaped: the series as line protocol names it."""
    parts = [escape_measurement(measurement)]
    parts.extend(f"{escape_key(key)}={escape_key(value)}" for key, value in tags)
    return ",".join(parts)


# Cached per series, of which a town has a bounded number. The pipeline's normalizers keep
# their own cache by raw tag values (gateway/stages/normalize.py) and call the uncached one.
series_key = lru_cache(maxsize=65536)(series_key_uncached)


def field_prefix(name: str) -> str:
    """`name=`, escaped: what precedes a field's value in a line."""
    return escape_key(name) + "="


class _FieldPrefixes(dict[str, str]):
    """name -> `name=`, escaped. Field names come from the profiles, so there are few of them.

    A dict with __missing__ rather than lru_cache: a hit is a plain subscript, about a third
    of the cost of calling the lru_cache wrapper, once per field of every point."""

    def __missing__(self, name: str) -> str:
        if len(self) >= _MAX_FIELD_PREFIXES:  # bounded like the lru_cache it replaced
            self.clear()
        prefix = self[name] = field_prefix(name)
        return prefix


_MAX_FIELD_PREFIXES = 4096
_field_prefix = _FieldPrefixes()


_float_text = float.__repr__


def encode_point(point: Point) -> str:
    """One line. The hot path's second biggest cost after normalizing (the Speed issue's
    profile), so format_field is inlined and each field is one concatenation: measured 35-45%
    faster per point than a generator of f-strings calling format_field."""
    parts: list[str] = []
    append = parts.append
    for name, value in point.fields.items():
        kind = type(value)
        if kind is float:
            append(_field_prefix[name] + _float_text(value))
        elif kind is int:
            append(f"{_field_prefix[name]}{value}i")
        elif kind is bool:
            append(_field_prefix[name] + ("true" if value else "false"))
        else:
            append(_field_prefix[name] + '"' + str(value).translate(STRING_ESCAPES) + '"')
    return f"{series_key(point.measurement, point.tags)} {','.join(parts)} {point.time_ns}"


def decode_line(
    line: str, database: str | None = None, retention_policy: str | None = None
) -> Point:
    """The Point a line of ours stands for: encode_point's inverse.

    Not on the hot path: the pipeline writes the lines its normalizers make; tools that show
    readings as tables (`gateway profiles test`) and tests read them back with this, so there is
    one output path. Raises ValueError for a line encode_point could not have written. A name
    or tag value with a backslash before a comma, space or `=`, or at its end, is ambiguous in
    line protocol itself (normalize drops such tag values: invalid_tag)."""
    # The series ends at its first unescaped space (quotes mean nothing there); the time
    # follows the last space (it has none); the fields are between.
    head = _split_unescaped(line, " ", quotes=False)[0]
    fields_text, _, time_text = line[len(head) + 1 :].rpartition(" ")
    series = _split_unescaped(head, ",", quotes=False)
    tags = tuple((key, _unescape(value)) for key, value in map(_key_value, series[1:]))
    fields = {
        key: _field_value(text)
        for key, text in map(_key_value, _split_unescaped(fields_text, ",", quotes=True))
    }
    return Point(_unescape(series[0]), tags, fields, int(time_text), database, retention_policy)


def _split_unescaped(text: str, separator: str, *, quotes: bool) -> list[str]:
    """`text` split at `separator`s that are neither backslash-escaped nor, with `quotes`,
    inside a string field value (a double quote right after `=` opens one)."""
    parts: list[str] = []
    start = index = 0
    quoted = opens = False  # opens: the previous character was an unescaped `=`
    while index < len(text):
        char = text[index]
        if char == "\\":
            index += 2
            opens = False
            continue
        if quotes and char == '"' and (quoted or opens):
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
        opens = char == "=" and not quoted
        index += 1
    parts.append(text[start:])
    return parts


def _key_value(text: str) -> tuple[str, str]:
    """`key=value` at its first unescaped `=`: the key unescaped, the value as written (a field's
    is read by _field_value, a tag's unescaped here)."""
    key = _split_unescaped(text, "=", quotes=False)[0]
    value = text[len(key) + 1 :]
    return _unescape(key), value


def _unescape(text: str, specials: str = ",= ") -> str:
    """`text` without the backslashes encode_point put before `specials`; any other backslash
    is the text's own (line protocol escapes only those characters)."""
    out: list[str] = []
    index = 0
    while index < len(text):
        if text[index] == "\\" and index + 1 < len(text) and text[index + 1] in specials:
            index += 1
        out.append(text[index])
        index += 1
    return "".join(out)


# Every spelling of a boolean line protocol accepts (we write true/false; InfluxDB's answers and
# other writers' lines may use the others).
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_BOOLEANS = _TRUE | {"f", "F", "false", "False", "FALSE"}


def _field_value(text: str) -> FieldValue:
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return _unescape(text[1:-1], '"\\')
    if text in _BOOLEANS:
        return text in _TRUE
    if text.endswith("i"):
        return int(text[:-1])
    return float(text)
