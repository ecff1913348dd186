"""Dead letters of profiles with personal data: what is kept of the payload, and why.

A dead letter normally keeps the raw payload, so a fixed profile can replay it. For a profile
with `privacy: drop` or `privacy: hash` fields that would store the clear value (a licence
plate) on disk, readable with any SQLite tool, for as long as the store keeps letters. So:

- JSON payloads (format json without a binary envelope) keep their structure with the private
  keys **removed** (not replaced: a replay then writes the reading without them, instead of a
  hash of a placeholder that would merge every plate into one). Removed wherever they are:
  a dead letter is by definition a payload that did not have the shape the profile expects,
  so a plate may sit one level deeper (`{"data": {"plate": ...}}`), in an array, or in a
  root that is an array. Every object member named like the last key of a private path is
  removed at any depth (and an indexed path's element as well); a false positive costs
  replayability of a non-private value, a false negative would store a plate;
- every other payload (text, CSV, key=value, binary frames, LoRaWAN envelopes, invalid JSON),
  where a value cannot be located reliably, is **withheld**: the letter keeps topic, reason and
  time, with an empty payload;
- decoder error texts, which may quote the payload, are withheld too.

The trade-off: such letters can be counted and inspected but replay at best partially.
Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.profiles.compile import CompiledProfile
from gateway.profiles.schema import JsonDecodeSpec

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
    spec = profile.decode_spec
    if not (isinstance(spec, JsonDecodeSpec) and spec.binary is None):
        return _withhold
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
