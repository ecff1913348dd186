"""Payload bytes -> a structure that field paths can walk. Pure and synchronous.

Every failure is a DecodeError with a stable reason slug; nothing else escapes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from gateway.errors import DecodeError

Decoder = Callable[[bytes], Any]


def decode_json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("invalid_json", str(exc)) from None


DECODERS: dict[str, Decoder] = {"json": decode_json}


def decoder_for(payload_format: str) -> Decoder:
    """The decoder for a profile's `decode.format` (validated by the profile schema)."""
    return DECODERS[payload_format]
