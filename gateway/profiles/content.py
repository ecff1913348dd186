"""match.content: tell several device models on one topic apart by a value in the message.

A LoRaWAN network server publishes every device of an application on one topic pattern; the
device model is only in the message (ChirpStack v4 deviceInfo.deviceProfileName, The Things
Stack end_device_ids.device_id or uplink_message.version_ids.model_id). Pure: the registry
compiles each test once and applies it to the parsed JSON of a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.profiles.compile import MISSING, make_getter
from gateway.profiles.schema import ContentMatchSpec

ContentTest = Callable[[Any], bool]
"""test(document) -> whether the message is this profile's; `document` is None when the
payload is not JSON."""


def content_test(spec: ContentMatchSpec) -> ContentTest:
    get = make_getter(spec.path, relative=False)
    if spec.present is not None:
        wanted = spec.present
        return lambda document: (get(document, document) is not MISSING) is wanted
    if spec.prefix is not None:
        prefix = spec.prefix

        def starts_with(document: Any) -> bool:
            value = get(document, document)
            return type(value) is str and value.startswith(prefix)

        return starts_with
    expected = spec.equals
    kind = type(expected)

    def equals(document: Any) -> bool:
        value = get(document, document)
        return type(value) is kind and value == expected  # True is not 1 here

    return equals


def content_needle(spec: ContentMatchSpec) -> bytes | None:
    """Bytes that a JSON payload without escapes (no backslash) must contain to pass the test:
    the text value in quotes, or its opening quote and prefix. None for tests that need the
    parsed message (present, a number).

    Why: a profile that is its topic's fallback would parse every message once to learn that
    no content test passes, and its decoder parses it again (ChirpStack streetlights next to a
    ChirpStack water meter: +2.4 us a message). A value that must be written with an escape
    cannot stand in a payload without backslashes, so a miss there is a certain "no"."""
    if spec.prefix is not None:
        return b'"' + spec.prefix.encode()
    if type(spec.equals) is str:
        return b'"' + spec.equals.encode() + b'"'
    return None


def contents_disjoint(first: ContentMatchSpec, second: ContentMatchSpec) -> bool:
    """True when no message can pass both tests: they read the same path and ask for values
    that exclude each other. Tests of different paths can always both pass."""
    if first.path != second.path:
        return False
    if first.present is not None and second.present is not None:
        return first.present != second.present
    if first.present is not None or second.present is not None:
        return False in (first.present, second.present)  # absent vs a value test
    if first.prefix is None and second.prefix is None:
        return type(first.equals) is not type(second.equals) or first.equals != second.equals
    if first.prefix is not None and second.prefix is not None:
        return not (
            first.prefix.startswith(second.prefix) or second.prefix.startswith(first.prefix)
        )
    value, prefix = (
        (first.equals, second.prefix) if first.prefix is None else (second.equals, first.prefix)
    )
    return not (type(value) is str and value.startswith(str(prefix)))
