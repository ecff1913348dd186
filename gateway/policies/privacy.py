"""Dead letters of profiles with personal data: what is kept of the payload, and why.

A dead letter normally keeps the raw payload, so a fixed profile can replay it. For a profile
with `privacy: drop` or `privacy: hash` fields that would store the clear value (a licence
plate) on disk, readable with any SQLite tool, for as long as the store keeps letters. So the
private values are **removed** (not replaced: a replay then writes the reading without them,
instead of a hash of a placeholder that would merge every plate into one):

- JSON payloads (format json without a binary envelope) keep their structure without the
  private keys, wherever they are: a dead letter is by definition a payload that did not have
  the shape the profile expects, so a plate may sit one level deeper
  (`{"data": {"plate": ...}}`), in an array, or in a root that is an array. Every object member
  named like the last key of a private path is removed at any depth (and an indexed path's
  element as well); a false positive costs replayability of a non-private value, a false
  negative would store a plate;
- CSV lines keep every column with the private cells emptied (an empty cell is a missing
  value, and the row keeps its column count, so it still parses); key=value payloads keep
  every pair but the private keys' (all of them: the decoder keeps the last of a repeated key).
  A value is located exactly as the profile's decoder reads it: the payload must decode, and
  what is kept must decode to the same values without the private ones, else it is withheld.
  So a line with another number of columns (which column is the plate?), invalid UTF-8 or
  quoting, or a pair without a separator is withheld, as is a private path that is not one
  column or key name (the decoder yields a flat structure, so such a path would be a guess).
  A payload_too_large letter is redacted whole and only then cut at the size limit
  (process.py): cut first, a CSV line with extra columns could come back to the profile's
  column count and be read shifted, a plate in a public column;
- every other payload (binary frames, whose bytes cannot be removed, only overwritten with a
  placeholder; LoRaWAN envelopes, whose network-server metadata and decoded `object` may carry
  the value under any name; raw payloads, which are the value; vendor codecs; invalid JSON) is
  **withheld**: the letter keeps topic, reason and time, with an empty payload;
- decoder error texts, which may quote the payload, are withheld too.

The trade-off: such letters can be counted and inspected but replay at best partially.
Pure, no I/O.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import orjson

from gateway.errors import DecodeError
from gateway.profiles.compile import CompiledProfile
from gateway.profiles.schema import CsvDecodeSpec, JsonDecodeSpec, KeyValueDecodeSpec
from gateway.stages.decode import decoder_for

Redactor = Callable[[bytes], bytes]

WITHHELD_DETAIL = "detail withheld: the profile has private fields"
SAFE_DETAIL_REASONS = frozenset(
    {
        "no_valid_reading",
        "missing_readings",
        "cardinality_exceeded",
        "unknown_device",
        "payload_too_large",
        "rate_limited",
        "too_many_readings",
    }
)
"""Reasons whose detail the gateway writes itself (slugs, counts, the device id), never
quoting a payload value, so it is kept even for profiles with private fields."""


def redactors_for(profiles: tuple[CompiledProfile, ...]) -> dict[str, Redactor]:
    """profile id -> redactor, for the profiles that have private fields only."""
    return {p.id: redactor_for(p) for p in profiles if p.private_paths}


def redactor_for(profile: CompiledProfile) -> Redactor:
    match profile.decode_spec:
        case JsonDecodeSpec(binary=None):
            return _json_redactor(profile)
        case CsvDecodeSpec() | KeyValueDecodeSpec() as spec:
            return _text_redactor(profile, spec)
    return _withhold


def _json_redactor(profile: CompiledProfile) -> Redactor:
    relative = profile.readings is not None
    root_paths = [_keys(p) for p in profile.private_paths if p.startswith("$.") or not relative]
    reading_paths = [_keys(p) for p in profile.private_paths if relative and not p.startswith("$.")]
    readings = profile.readings
    names = frozenset(
        keys[-1] for keys in (*root_paths, *reading_paths) if isinstance(keys[-1], str)
    )

    def redact(payload: bytes) -> bytes:
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return b""
        for keys in root_paths:
            _remove(document, keys)
        if readings is not None and reading_paths:
            try:
                elements = readings(document, document)
            except (KeyError, IndexError, TypeError):  # a payload of any shape: swept below
                elements = None
            for element in elements if isinstance(elements, list) else ():
                for keys in reading_paths:
                    _remove(element, keys)
        _remove_names(document, names)
        try:
            return orjson.dumps(document)
        except TypeError:  # orjson writes 255 levels but reads 1,024: withhold what it cannot
            return b""

    return redact


def _remove_names(document: Any, names: frozenset[str]) -> None:
    """Delete every object member called one of `names`, at any depth and inside arrays.

    A loop over a stack, not recursion: orjson accepts 1,024 levels, more than Python's
    default recursion limit."""
    if not names:
        return
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for name in names.intersection(node):
                del node[name]
            stack.extend(value for value in node.values() if isinstance(value, dict | list))
        elif isinstance(node, list):
            stack.extend(value for value in node if isinstance(value, dict | list))


def _withhold(payload: bytes) -> bytes:
    return b""


# --- CSV and key=value -----------------------------------------------------------------------

Cutter = Callable[[str], bytes | None]  # the payload's text -> it without the private values


def _text_redactor(profile: CompiledProfile, spec: CsvDecodeSpec | KeyValueDecodeSpec) -> Redactor:
    """Cut the private values out of the text, then check the cut with the profile's decoder:
    the original decodes, and the rest decodes to the same values without the private ones."""
    names = _flat_names(profile)
    if names is None:
        return _withhold
    if isinstance(spec, CsvDecodeSpec):
        if not names <= set(spec.columns):
            return _withhold  # a private path naming no column: the profile and data disagree
        private = frozenset(i for i, column in enumerate(spec.columns) if column in names)
        cut = _csv_cutter(spec.delimiter, private)
    else:
        cut = _keyvalue_cutter(spec.pair_separator, spec.kv_separator, names)
    decode = decoder_for(spec)

    def redact(payload: bytes) -> bytes:
        try:
            before = decode(payload)
            kept = cut(payload.decode())  # UTF-8: the decoder just read it as such
            if kept is None:
                return b""
            after = decode(kept)
        except DecodeError:
            return b""
        # The cutters mirror decode.py's splitting; the decoder stays the authority, so if
        # the two ever disagree the letter is withheld, never kept half-cut.
        return kept if _same_but_private(before, after, names) else b""

    return redact


def _flat_names(profile: CompiledProfile) -> frozenset[str] | None:
    """The column or key names of the private values, or None when a private path is more than
    one name (or the profile has `readings:`): CSV and key=value decode to one flat object,
    where such a path reads nothing, so which text it meant would be a guess."""
    if profile.readings is not None:
        return None
    keys = [_keys(path) for path in profile.private_paths]
    if any(len(key) != 1 or not isinstance(key[0], str) for key in keys):
        return None
    return frozenset(str(key[0]) for key in keys)


def _same_but_private(before: dict[str, Any], after: dict[str, Any], names: frozenset[str]) -> bool:
    if any(after.get(name) is not None for name in names):
        return False
    return {k: v for k, v in after.items() if k not in names} == {
        k: v for k, v in before.items() if k not in names
    }


def _csv_cutter(delimiter: str, private: frozenset[int]) -> Cutter:
    """The line with the private cells empty, split as decode.py splits it: at the delimiter,
    or by the csv module when it has quotes (written back by it too: the cells' text is the
    same, their quoting may differ)."""

    def cut(text: str) -> bytes | None:
        line = text.strip("\r\n")
        if '"' not in line:
            cells = line.split(delimiter)
            return delimiter.join(_emptied(cells, private)).encode()
        try:
            [cells] = csv.reader([line], delimiter=delimiter, strict=True)
        except (csv.Error, ValueError):  # ValueError: not one row
            return None
        written = io.StringIO()
        csv.writer(written, delimiter=delimiter, lineterminator="").writerow(
            _emptied(cells, private)
        )
        return written.getvalue().encode()

    return cut


def _emptied(cells: list[str], private: frozenset[int]) -> list[str]:
    return ["" if i in private else cell for i, cell in enumerate(cells)]


def _keyvalue_cutter(pair_separator: str, kv_separator: str, names: frozenset[str]) -> Cutter:
    """The pairs but those with a private key (key text stripped, as decode.py compares it)."""

    def cut(text: str) -> bytes:
        pairs = text.split(pair_separator)
        kept = (p for p in pairs if p.partition(kv_separator)[0].strip() not in names)
        return pair_separator.join(kept).encode()

    return cut


def _keys(path: str) -> tuple[str | int, ...]:
    return tuple(int(k) if k.isdigit() else k for k in path.removeprefix("$.").split("."))


def _remove(node: Any, keys: tuple[str | int, ...]) -> None:
    """Delete the value at `keys` if it is there; a path through a list removes in every
    element would be guessing, so digits index exactly like the profile's getters do."""
    *parents, last = keys
    for key in parents:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict):
        node.pop(last, None)
    elif isinstance(node, list) and isinstance(last, int) and -len(node) <= last < len(node):
        node[last] = None
