"""Which lines of a batch a time-series engine refused, read from its own error answer.

Pure (no I/O): the InfluxDB writer hands it an error answer's body and the lines it sent. When
the answer names every refused line, the delivery stage dead-letters exactly those lines and
needs no halving search (issue 18: one refused line cost ~15,000 write requests). Each engine
names them differently, all documented or observed against the real server:

- InfluxDB 3 (`/api/v3/write_lp`, and its v1/v2 compatibility endpoints): HTTP 400 with
  `{"error": "partial write of line protocol occurred", "data": [{"line_number": 2,
  "error_message": ..., "original_line": ...}]}`; line numbers count from 1 and every other line
  was written. With `accept_partial=false` the answer is `"parsing failed for write_lp
  endpoint"` with one such object and nothing was written.
- InfluxDB 1.x (`{"error": ...}`, HTTP 400) and 2.x (`{"message": ...}`, HTTP 422 for a partial
  write, 400 for a parse error): `partial write: unable to parse 'LINE': why` (one per bad line,
  joined by newlines) and `partial write: field type conflict: input field "f" on measurement
  "m" is type float, already exists as type integer dropped=N` (one conflict named, N lines
  dropped). "partial write:" means the other lines were written; without it nothing was.

When the answer does not account for every dropped line (1.x names one conflict of several,
or a retention-policy drop names none), this returns None and the caller falls back to the
halving search.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from gateway.stages.lineprotocol import decode_line

_V3_PARTIAL = "partial write of line protocol occurred"
_V1_PARTIAL = "partial write:"
_V1_UNPARSABLE = "unable to parse '"
_GO_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_V1_CONFLICT = re.compile(
    rf"field type conflict: input field {_GO_QUOTED} on measurement {_GO_QUOTED} "
    r"is type \w+, already exists as type (\w+)"
)
_V1_DROPPED = re.compile(r"dropped=(\d+)")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Lines the engine named: index in the batch -> the engine's reason, and whether the
    lines it did not name were written (else they must be sent again)."""

    refused: dict[int, str]
    others_written: bool


def named_refusals(body: str, lines: Sequence[str]) -> Refusal | None:
    """The refused lines when the answer accounts for all of them, else None."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _from_v1_text(body.strip(), lines)
    if not isinstance(decoded, dict):
        return None
    if "data" in decoded and "error" in decoded:
        return _from_v3(decoded, lines)
    text = decoded.get("error") or decoded.get("message")
    return _from_v1_text(text, lines) if isinstance(text, str) else None


def _from_v3(answer: dict[str, object], lines: Sequence[str]) -> Refusal | None:
    data = answer["data"]
    entries = data if isinstance(data, list) else [data]
    refused: dict[int, str] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            return None
        number = entry.get("line_number")
        if not isinstance(number, int) or not 1 <= number <= len(lines):
            return None  # a line we did not send: trust nothing in this answer
        refused[number - 1] = str(entry.get("error_message") or answer["error"])
    if not refused:
        return None
    return Refusal(refused, others_written=answer["error"] == _V3_PARTIAL)


def _from_v1_text(text: str, lines: Sequence[str]) -> Refusal | None:
    partial = text.startswith(_V1_PARTIAL) or f": {_V1_PARTIAL}" in text
    refused = _unparsable(text, lines)
    if refused is None:
        return None
    conflict = _V1_CONFLICT.search(text)
    dropped_match = _V1_DROPPED.search(text)
    dropped = int(dropped_match.group(1)) if dropped_match else 0
    if conflict is not None:
        field, measurement, existing = (
            _go_unquote(conflict.group(1)),
            _go_unquote(conflict.group(2)),
            conflict.group(3),
        )
        reason = conflict.group(0)
        conflicting = [
            index
            for index, line in enumerate(lines)
            if _field_kind(line, measurement, field) not in (None, existing)
        ]
        if len(conflicting) != dropped:
            return None  # other conflicts were dropped too, unnamed
        refused.update(dict.fromkeys(conflicting, reason))
    elif dropped:
        return None  # dropped for a reason that names no line (e.g. beyond retention)
    return Refusal(refused, others_written=partial) if refused else None


def _unparsable(text: str, lines: Sequence[str]) -> dict[int, str] | None:
    """Lines quoted by `unable to parse 'LINE': why`; None when one quoted is not ours."""
    named = text.count(_V1_UNPARSABLE)
    if not named:
        return {}
    refused: dict[int, str] = {}
    for index, line in enumerate(lines):
        start = text.find(f"{_V1_UNPARSABLE}{line}': ")
        if start >= 0:
            end = text.find("\n", start)
            refused[index] = text[start : end if end >= 0 else len(text)]
    return refused if len(refused) == named else None  # 1.x names each refused line once


def _go_unquote(quoted: str) -> str:
    return quoted.replace('\\"', '"').replace("\\\\", "\\")


def _field_kind(line: str, measurement: str, field: str) -> str | None:
    """InfluxDB 1.x's name for the type of `field` in `line` if the line is of
    `measurement`, else None. The lines are ours, so lineprotocol.decode_line reads them."""
    try:
        point = decode_line(line)
    except ValueError:
        return None
    if point.measurement != measurement or field not in point.fields:
        return None
    return _KIND_NAMES[type(point.fields[field])]


# InfluxDB 1.x's names for line protocol's value types, by the Python type decode_line gives.
_KIND_NAMES: dict[type, str] = {str: "string", int: "integer", bool: "boolean", float: "float"}
