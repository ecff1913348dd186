"""Payload bytes -> a structure that field paths can walk. Pure and synchronous.

`decoder_for` compiles a profile's `decode:` spec once into a closure; per message only that
closure runs. Every failure is a DecodeError with a stable reason slug; nothing else escapes.
"""

from __future__ import annotations

import csv
import re
import struct
from collections.abc import Callable
from typing import Any

import orjson

from gateway.errors import DecodeError
from gateway.profiles.compile import MISSING, make_getter
from gateway.profiles.schema import (
    BinaryDecodeSpec,
    BinaryFieldSpec,
    BinaryLayoutSpec,
    ChirpstackV4DecodeSpec,
    CsvDecodeSpec,
    DecodeSpec,
    JavascriptDecodeSpec,
    JsonBinarySpec,
    JsonDecodeSpec,
    KeyValueDecodeSpec,
    RawDecodeSpec,
    TtsV3DecodeSpec,
)
from gateway.stages.envelope import EMPTY_FRAME, from_base64, lorawan_decoder
from gateway.stages.layouts import STRUCT_CODES, FrameDecoder, compile_frame

Decoder = Callable[[bytes], Any]


def decoder_for(spec: DecodeSpec) -> Decoder:  # noqa: PLR0911  # one return per format
    """Compile a profile's `decode:` spec into a decoder."""
    match spec:
        case JsonDecodeSpec(binary=JsonBinarySpec() as binary):
            return _envelope(binary.path, binary.encoding, binary.layout)
        case ChirpstackV4DecodeSpec() | TtsV3DecodeSpec():
            return lorawan_decoder(spec.format, _without_time(spec.layout))
        case JavascriptDecodeSpec():
            return _javascript(spec)
        case BinaryDecodeSpec():
            return compile_layout(spec) if spec.is_plain() else _without_port(compile_frame(spec))
        case CsvDecodeSpec():
            return _csv(spec)
        case KeyValueDecodeSpec():
            return _keyvalue(spec)
        case RawDecodeSpec():
            return _raw(spec)
    return decode_json


def decode_json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("invalid_json", str(exc)) from None


# --- text ------------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_INT64 = 2**63  # InfluxDB integers are int64; wider integers are kept as (lossy) floats
_NUMBER_CHARS = "0123456789+-.eE"  # every character _INT and _FLOAT can match


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("invalid_text", f"not UTF-8: {exc.reason} at byte {exc.start}") from None


def parse_scalar(text: str) -> int | float | str | None:
    """A cell of a text payload: '' is missing, numbers become int or float, the rest stays.

    Only plain decimal notation counts as a number (not '1_000', 'nan', 'inf' or non-ASCII
    digits, which Python's int()/float() would accept).
    """
    value = text.strip()
    if not value:
        return None
    # Fast paths for the usual cells, "1234" and "12.5", with the regular expressions' answers:
    # ASCII digits only (str.isdigit alone accepts "²"), up to 18 digits (always an int64).
    if value.isascii():
        if value.isdigit() and len(value) <= 18:
            return int(value)
        if "." in value and value.replace(".", "", 1).isdigit():
            return float(value)
    return _number_or_text(value)


def _number_or_text(value: str) -> int | float | str:
    if value.strip(_NUMBER_CHARS):
        return value  # a character no number has (the usual text cell): no regex to run
    if _INT.fullmatch(value) and len(value) <= 20:  # 19 digits + sign
        number = int(value)
        if -_INT64 <= number < _INT64:
            return number
    if _FLOAT.fullmatch(value):
        return float(value)
    return value


def _csv(spec: CsvDecodeSpec) -> Decoder:
    columns = tuple(spec.columns)
    delimiter = spec.delimiter

    def decode(payload: bytes) -> dict[str, Any]:
        line = _text(payload).strip("\r\n")
        if "\n" in line or "\r" in line:
            raise DecodeError("invalid_csv", "one line per message, got several")
        cells = line.split(delimiter) if line and '"' not in line else _csv_cells(line, delimiter)
        if len(cells) != len(columns):
            raise DecodeError(
                "wrong_column_count", f"expected {len(columns)} columns, got {len(cells)}"
            )
        return {name: parse_scalar(cell) for name, cell in zip(columns, cells, strict=True)}

    return decode


def _csv_cells(line: str, delimiter: str) -> list[str]:
    """The cells of a line with quotes, read by the csv module (a line without quotes is only
    split at the delimiter, what the csv module does with it too, at a tenth of its ~1.2 us)."""
    try:
        rows = list(csv.reader([line], delimiter=delimiter, strict=True))
    except csv.Error as exc:
        raise DecodeError("invalid_csv", str(exc)) from None
    return rows[0] if rows else []


def _keyvalue(spec: KeyValueDecodeSpec) -> Decoder:
    pair_separator, kv_separator = spec.pair_separator, spec.kv_separator

    def decode(payload: bytes) -> dict[str, Any]:
        document: dict[str, Any] = {}
        for pair in _text(payload).split(pair_separator):
            if not pair.strip():
                continue  # a trailing or doubled separator
            key, found, value = pair.partition(kv_separator)
            key = key.strip()
            if not found or not key:
                raise DecodeError("invalid_keyvalue", f"not key{kv_separator}value: {pair!r}")
            document[key] = parse_scalar(value)
        if not document:
            raise DecodeError("invalid_keyvalue", "no key=value pair")
        return document

    return decode


def _raw(spec: RawDecodeSpec) -> Decoder:
    if spec.value_type == "text":
        return lambda payload: {"value": _text(payload).strip()}

    def decode(payload: bytes) -> dict[str, Any]:
        value = parse_scalar(_text(payload))
        if type(value) is not int and type(value) is not float:
            raise DecodeError("invalid_number", f"not a number: {payload[:40]!r}")
        return {"value": value}

    return decode


# --- binary ----------------------------------------------------------------------------------

Unpacker = Callable[[bytes], dict[str, int | float]]


def frame_decoder(layout: BinaryLayoutSpec) -> FrameDecoder:
    """(frame, fPort) -> values: plain fixed-offset layouts keep the original decoder below (the
    cheapest), the others get the layout engine (variants, groups, channels: layouts.py)."""
    if layout.is_plain():
        unpack = compile_layout(layout)
        return lambda frame, fport: unpack(frame)
    return compile_frame(layout)


def _without_time(layout: BinaryLayoutSpec) -> Callable[[bytes, int, int], Any]:
    """An envelope's frame decoder: a layout has no use for the receive time. A plain layout's
    unpacker is called directly, one wrapper less per uplink than frame_decoder's."""
    if layout.is_plain():
        unpack = compile_layout(layout)
        return lambda frame, _fport, _received_ms: unpack(frame)
    decode = compile_frame(layout)
    return lambda frame, fport, _received_ms: decode(frame, fport)


def _without_port(decode: FrameDecoder) -> Decoder:
    return lambda frame: decode(frame, None)


def compile_layout(layout: BinaryLayoutSpec) -> Unpacker:
    """One precompiled struct per field; the frame must reach the end of the furthest field."""
    prefix = ">" if layout.byte_order == "big" else "<"
    readers = tuple(_field_reader(name, field, prefix) for name, field in layout.fields.items())
    needed = max(field.offset + field.size for field in layout.fields.values())

    def unpack(frame: bytes) -> dict[str, int | float]:
        if len(frame) < needed:
            raise DecodeError("too_short", f"need {needed} bytes, got {len(frame)}")
        return dict(read(frame) for read in readers)

    return unpack


def _field_reader(
    name: str, field: BinaryFieldSpec, prefix: str
) -> Callable[[bytes], tuple[str, int | float]]:
    unpack_from = struct.Struct(prefix + STRUCT_CODES[field.type]).unpack_from
    offset = field.offset
    if field.bits is None:
        return lambda frame: (name, unpack_from(frame, offset)[0])
    start, length = (int(part) for part in field.bits.split(":"))
    mask = (1 << length) - 1
    # Python's >> and & on a negative int act on its two's complement, as C would on the bytes.
    return lambda frame: (name, (unpack_from(frame, offset)[0] >> start) & mask)


# --- vendor codecs ---------------------------------------------------------------------------


def _javascript(spec: JavascriptDecodeSpec) -> Decoder:
    """The vendor's codec (its own JS runtime per decoder: see gateway/stages/codec.py) on the
    frame of an envelope, or on the MQTT payload itself (envelope: raw)."""
    # Imported here: QuickJS costs ~2 MB of RSS, spent only by a gateway with codec profiles.
    from gateway.stages.codec import CodecLimits, JavascriptCodec  # noqa: PLC0415  # see above

    limits = CodecLimits(spec.timeout_ms, spec.memory_mb, spec.stack_kb)
    codec = JavascriptCodec(spec.source, spec.script, limits)
    if spec.envelope != "raw":
        return lorawan_decoder(
            spec.envelope,
            lambda frame, fport, received_ms: codec.decode(frame, fport, received_ms).data,
            with_time=True,
        )
    fport = spec.fport

    def decode(payload: bytes) -> dict[str, Any]:
        if not payload:
            raise DecodeError(EMPTY_FRAME, "an empty MQTT payload")
        return {"payload": codec.decode(payload, fport).data}

    return decode


# --- envelopes -------------------------------------------------------------------------------


def _envelope(path: str, encoding: str, layout: BinaryLayoutSpec) -> Decoder:
    get = make_getter(path, relative=False)
    to_bytes = from_base64 if encoding == "base64" else _from_hex
    unpack = frame_decoder(layout)

    def decode(payload: bytes) -> dict[str, Any]:
        document = decode_json(payload)
        if type(document) is not dict:
            raise DecodeError("invalid_envelope", "the JSON document is not an object")
        text = get(document, document)
        if text is MISSING or type(text) is not str:
            raise DecodeError("missing_field", f"no {encoding} text at {path!r}")
        return {**document, "payload": unpack(to_bytes(text), None)}

    return decode


def _from_hex(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise DecodeError("invalid_hex", str(exc)) from None
