"""The device profile file format, validated by pydantic with unknown keys forbidden.

One YAML file per device model. The technician-facing documentation of every key lives in the
`description` of its field, so `gateway profiles schema` exports it to editors.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway.profiles.topics import parse_pattern

_IDENT = r"^[a-z][a-z0-9_]*$"
_PROFILE_ID = r"^[a-z0-9][a-z0-9._-]*$"

TIME_REPLACED_FIELD = "time_replaced"
"""Boolean field normalize adds to a reading whose device time was replaced by the receive time."""

DEFAULT_MAX_FUTURE_S = 300
# Longer than the broker's default 7-day session (mqtt.session_expiry_s), so a backlog delivered
# after a week-long gateway outage keeps its device times; a clock reset (1970, 2000) is decades.
DEFAULT_MAX_PAST_S = 30 * 86400
DEFAULT_MAX_SERIES = 10_000


def _known_zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}; use an IANA name such as Asia/Ho_Chi_Minh or UTC"
        ) from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContentMatchSpec(_Strict):
    path: str = Field(
        min_length=1,
        description="Dotted path in the JSON message, e.g. deviceInfo.deviceProfileName "
        "(ChirpStack v4), end_device_ids.device_id or uplink_message.version_ids.model_id "
        "(The Things Stack v3), or a key of the device's own JSON.",
    )
    equals: str | int | None = Field(None, description="The value must be exactly this.")
    prefix: str | None = Field(
        None, min_length=1, description="The value must be text starting with this."
    )
    present: bool | None = Field(
        None, description="true: the path must exist (any value); false: it must be absent."
    )

    @model_validator(mode="after")
    def _one_test(self) -> ContentMatchSpec:
        given = [
            name for name in ("equals", "prefix", "present") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError("match.content takes exactly one of: equals, prefix, present")
        return self


class MatchSpec(_Strict):
    topic: str = Field(
        description="MQTT topic pattern; {name} captures one level, e.g. "
        "city/water/{district}/{device_id}/telemetry. Capture {device_id} here unless "
        "tags.device_id reads it from the payload (LoRaWAN network servers)."
    )
    content: ContentMatchSpec | None = Field(
        None,
        description="Several device models on one topic (a LoRaWAN application): this profile "
        "only takes the messages whose JSON also passes this test. Profiles on overlapping "
        "topics must all have content tests that cannot both pass, or be the one fallback.",
    )
    fallback: bool = Field(
        False,
        description="Catch-all: take the messages on this topic that no profile with a "
        "content test took. At most one fallback per topic.",
    )

    @field_validator("topic")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        parse_pattern(value)
        return value

    @model_validator(mode="after")
    def _content_or_fallback(self) -> MatchSpec:
        if self.fallback and self.content is not None:
            raise ValueError("a fallback takes what no content test took: drop content or fallback")
        return self


class LivenessSpec(_Strict):
    expected_interval_s: float | None = Field(
        None,
        gt=0,
        le=31 * 86400,
        description="How often a device of this model reports, in seconds (its longest normal "
        "gap, e.g. a heartbeat period). A device silent for [monitoring] stale_after_intervals "
        "(default 3) times this is listed stale. gateway.toml's "
        "[monitoring.expected_interval_s] overrides it per profile id. Absent: never stale.",
    )
    availability_topic: str | None = Field(
        None,
        description="Topic pattern of the device's availability messages (its MQTT last will "
        "and its online announcement), e.g. city/lighting/{district}/{device_id}/status; must "
        "capture {device_id}. These messages only mark the device online or offline: they are "
        "never decoded, stored or dead-lettered.",
    )
    payload_online: str = Field(
        "online", min_length=1, description="Availability payload meaning online."
    )
    payload_offline: str = Field(
        "offline", min_length=1, description="Availability payload meaning offline (last will)."
    )

    @field_validator("availability_topic")
    @classmethod
    def _availability_names_device(cls, value: str | None) -> str | None:
        if value is not None and "device_id" not in parse_pattern(value).segment_names:
            raise ValueError(
                "the availability topic must capture the device as {device_id}, e.g. "
                "city/lighting/{district}/{device_id}/status"
            )
        return value

    @model_validator(mode="after")
    def _says_something(self) -> LivenessSpec:
        if self.expected_interval_s is None and self.availability_topic is None:
            raise ValueError("give expected_interval_s, availability_topic, or both")
        if self.payload_online.strip() == self.payload_offline.strip():
            raise ValueError("payload_online and payload_offline must differ")
        custom = "payload_online" in self.model_fields_set or (
            "payload_offline" in self.model_fields_set
        )
        if custom and self.availability_topic is None:
            raise ValueError("payload_online/payload_offline need availability_topic")
        return self


_BINARY_TYPE_DOC = (
    "u8/i8/u16/i16/u24/i24/u32/i32/u64/i64: unsigned/signed integers of 8-64 bits; "
    "f32/f64: IEEE 754 floats; bcd: binary-coded decimal of `length` bytes (two digits a byte, "
    "most significant first; a nibble above 9, as in FF FF, means no reading); ascii: text of "
    "`length` bytes (trailing NUL and spaces removed; other than printable ASCII, no reading); "
    "hex: `length` bytes as lower-case hex text (a serial number, a firmware build)."
)
BinaryType = Literal[
    "u8",
    "i8",
    "u16",
    "i16",
    "u24",
    "i24",
    "u32",
    "i32",
    "u64",
    "i64",
    "f32",
    "f64",
    "bcd",
    "ascii",
    "hex",
]
BINARY_SIZES: dict[str, int] = {"8": 1, "16": 2, "24": 3, "32": 4, "64": 8}
SIZED_TYPES = frozenset({"bcd", "ascii", "hex"})
"""Types whose size is the field's `length`."""
NOT_INTEGER_TYPES = frozenset({"f32", "f64", *SIZED_TYPES})
_BYTE = Annotated[int, Field(ge=0, le=255)]


class BinaryFieldSpec(_Strict):
    offset: int = Field(
        ge=0,
        le=65535,
        description="Byte offset of the value, 0 = first byte (of the frame; of the group or "
        "channel value for fields under `then:` or `channels:`).",
    )
    type: BinaryType = Field(description=_BINARY_TYPE_DOC)
    bits: str | None = Field(
        None,
        pattern=r"^[0-9]{1,2}:[0-9]{1,2}$",
        description="Bit field inside an integer, 'start:length' with bit 0 the least "
        "significant, e.g. '1:3' for bits 1-3 (value 0-7). Absent: the whole integer.",
    )
    length: int | None = Field(
        None,
        ge=1,
        le=255,
        description="Bytes of a bcd (at most 8), ascii or hex value (those types only), e.g. 4 "
        "for 8 BCD digits.",
    )
    signed: bool = Field(
        False,
        description="The bit field is two's complement: its top bit is the sign, so bits "
        "'0:12' of 0xFFF read -1 (bits only).",
    )
    no_reading: list[int] = Field(
        default_factory=list,
        description="Raw values that mean 'no reading' (e.g. [0xFFFF] from a sensor that is "
        "warming up): the field is dropped with reason sentinel, never stored as a number.",
    )
    epoch: date | None = Field(
        None,
        description="The integer counts seconds from this date (a device clock), e.g. "
        "2000-01-01 or 2013-01-01; the value becomes Unix seconds, for time.format epoch_s.",
    )
    timezone: str | None = Field(
        None,
        description="With epoch: the device's clock runs in this IANA zone's local time (e.g. "
        "Asia/Ho_Chi_Minh); absent: UTC.",
    )

    @field_validator("no_reading", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @field_validator("timezone")
    @classmethod
    def _known_field_zone(cls, value: str | None) -> str | None:
        return value if value is None else _known_zone_name(value)

    @property
    def size(self) -> int:
        if self.type in SIZED_TYPES:
            return self.length or 1
        return BINARY_SIZES[self.type[1:]]

    @model_validator(mode="after")
    def _bits_fit(self) -> BinaryFieldSpec:
        integer = self.type not in NOT_INTEGER_TYPES
        if (self.type in SIZED_TYPES) != (self.length is not None):
            raise ValueError(
                "length is the size of a bcd, ascii or hex value: give it with those types only"
            )
        if self.type == "bcd" and (self.length or 0) > 8:  # 16 digits fit an int64
            raise ValueError("a bcd value has at most 8 bytes (16 digits)")
        if self.no_reading and not integer and self.type != "bcd":
            raise ValueError(f"no_reading lists integers, for integer types, not {self.type}")
        if self.signed and self.bits is None:
            raise ValueError("signed applies to bit fields (bits:); use i8..i64 for whole integers")
        if (self.epoch is None) and self.timezone is not None:
            raise ValueError("timezone needs epoch (the date the device clock counts from)")
        if self.epoch is not None and not integer:
            raise ValueError(f"epoch counts seconds in an integer type, not {self.type}")
        if self.bits is None:
            return self
        if not integer:
            raise ValueError(f"bits only apply to integer types, not {self.type}")
        start, length = (int(part) for part in self.bits.split(":"))
        width = self.size * 8
        if length < 1 or start + length > width:
            raise ValueError(
                f"bits {self.bits!r} do not fit a {width}-bit {self.type} "
                f"(start + length must be at most {width}, length at least 1)"
            )
        return self

    @property
    def is_plain(self) -> bool:
        """Read by the original fixed-layout decoder (no 24-bit, bcd, sign, sentinel, epoch)."""
        return (
            self.type[1:] != "24"
            and self.type not in SIZED_TYPES
            and not (self.signed or self.no_reading or self.epoch)
        )


_LayoutFields = dict[Annotated[str, Field(pattern=_IDENT)], BinaryFieldSpec]


class FlagSpec(_Strict):
    flag: str = Field(
        pattern=_IDENT, description="A field of the layout's `fields:` holding presence flags."
    )
    bit: int = Field(ge=0, le=63, description="The bit (0 = least significant) that must be 1.")


class GroupSpec(_Strict):
    present: FlagSpec | Literal["always", "room"] = Field(
        "always",
        description="always: the group is always sent (a frame too short is dead-lettered, "
        "truncated); room: an optional trailing group, present when the frame still holds it; "
        "{flag: NAME, bit: N}: present when that bit of field NAME is 1, and later groups "
        "shift when it is 0.",
    )
    fields: _LayoutFields = Field(
        min_length=1, description="name -> field; offsets count from the start of the group."
    )


class ChannelEntrySpec(_Strict):
    channel: _BYTE | None = Field(
        None, description="The channel byte (channels.key channel_type; e.g. 0x03)."
    )
    type: _BYTE = Field(description="The type byte, e.g. 0x67.")
    fields: _LayoutFields = Field(
        min_length=1, description="name -> field; offsets count from the start of the value."
    )
    size: int | None = Field(
        None, ge=1, le=255, description="Bytes of the value; default: the end of its last field."
    )

    @property
    def value_size(self) -> int:
        return self.size or max(field.offset + field.size for field in self.fields.values())

    @model_validator(mode="after")
    def _fields_fit(self) -> ChannelEntrySpec:
        if self.size is not None and self.value_size > self.size:
            raise ValueError(f"the fields end after the value's size {self.size}")
        return self


class ChannelsSpec(_Strict):
    key: Literal["channel_type", "type"] = Field(
        "channel_type",
        description="The bytes before each value: channel_type (a channel byte, then a type "
        "byte, as Milesight sends) or type (one type byte, as Elsys sends).",
    )
    length_byte: bool = Field(
        False, description="A length byte follows the key (type-length-value streams)."
    )
    entries: list[ChannelEntrySpec] = Field(
        min_length=1, description="The values this profile reads, by channel and type."
    )
    skip: dict[_BYTE, Annotated[int, Field(ge=0, le=255)]] = Field(
        default_factory=dict,
        description="type byte -> value size, for values without an entry: skipped, so the rest "
        "of the frame is still read (the decoded frame lists each skipped pair under "
        "'(skipped)'). A value of unknown size dead-letters the message (unknown_channel), "
        "since the rest of the frame cannot be found.",
    )

    @model_validator(mode="after")
    def _entries_distinct(self) -> ChannelsSpec:
        seen: set[tuple[int | None, int]] = set()
        for entry in self.entries:
            if (entry.channel is None) != (self.key == "type"):
                raise ValueError(
                    "with key channel_type every entry needs channel:, with key type none has one"
                )
            pair = (entry.channel, entry.type)
            if pair in seen:
                raise ValueError(f"channel {entry.channel} type {entry.type} is listed twice")
            seen.add(pair)
        return self


class WhenSpec(_Strict):
    fport: int | list[int] | None = Field(
        None, description="LoRaWAN port(s) of the uplink (chirpstack_v4 and tts_v3 only)."
    )
    length: int | list[int] | None = Field(None, description="Frame length(s) in bytes.")
    offset: int | None = Field(
        None, ge=0, le=65535, description="Offset of a header or report-type value to test."
    )
    type: BinaryType = Field("u8", description="Type of the tested value. " + _BINARY_TYPE_DOC)
    bits: str | None = Field(
        None, pattern=r"^[0-9]{1,2}:[0-9]{1,2}$", description="Bits of the tested value."
    )
    equals: int | list[int] | None = Field(None, description="Value(s) the tested value may have.")

    @model_validator(mode="after")
    def _complete(self) -> WhenSpec:
        if (self.offset is None) != (self.equals is None):
            raise ValueError("offset and equals go together: the value at offset must equal ...")
        if self.fport is None and self.length is None and self.offset is None:
            raise ValueError("give fport, length, or offset and equals")
        if self.type in NOT_INTEGER_TYPES:
            raise ValueError(f"a tested value is an integer type, not {self.type}")
        if self.offset is not None:
            self.tested_value()  # the bits must fit the type, as for a field
        return self

    def tested_value(self) -> BinaryFieldSpec:
        """The tested value as a field (offset given)."""
        try:
            return BinaryFieldSpec(offset=self.offset or 0, type=self.type, bits=self.bits)
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


class FrameBodySpec(_Strict):
    fields: _LayoutFields = Field(
        default_factory=dict,
        description="name -> {offset, type, bits, ...}; the decoded values are addressed by name.",
    )
    then: list[GroupSpec] = Field(
        default_factory=list,
        description="Groups of fields after `fields:`, in order, each starting where the "
        "previous present one ended: optional trailing groups and groups behind flag bits.",
    )
    channels: ChannelsSpec | None = Field(
        None,
        description="A channel/type stream after `fields:` and `then:`, read until the frame "
        "ends (Milesight, Elsys and TLV devices).",
    )
    constants: dict[Annotated[str, Field(pattern=_IDENT)], float | int | bool | str] = Field(
        default_factory=dict,
        description="name -> value added to every frame of this layout (e.g. a report kind).",
    )

    def value_names(self) -> list[str]:
        names = list(self.fields)
        for group in self.then:
            names += list(group.fields)
        for entry in self.channels.entries if self.channels else ():
            names += list(entry.fields)
        return names + list(self.constants)

    @model_validator(mode="after")
    def _names_and_flags(self) -> FrameBodySpec:
        names = self.value_names()
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"value names repeat within one layout: {repeated}")
        for group in self.then:
            flag = group.present
            if isinstance(flag, FlagSpec):
                field = self.fields.get(flag.flag)
                if field is None or not field.is_plain or field.type in ("f32", "f64"):
                    raise ValueError(
                        f"present.flag {flag.flag!r} must name a plain integer field (no "
                        f"bcd, no_reading or epoch) of this layout's fields: "
                        f"({', '.join(self.fields) or 'none'})"
                    )
                if flag.bit >= field.size * 8:
                    raise ValueError(f"bit {flag.bit} is outside the {field.type} {flag.flag!r}")
        return self

    def reads_something(self) -> bool:
        return bool(self.fields or self.then or self.channels or self.constants)


class VariantSpec(FrameBodySpec):
    name: str | None = Field(None, pattern=_IDENT, description="A label for messages and docs.")
    when: WhenSpec | None = Field(
        None,
        description="Conditions that choose this variant, tested before any field is read and "
        "never stored. Absent: any frame (only the last variant).",
    )

    @model_validator(mode="after")
    def _has_body(self) -> VariantSpec:
        if not self.reads_something():
            raise ValueError("a variant needs fields, then, channels or constants")
        return self


class BinaryLayoutSpec(FrameBodySpec):
    byte_order: Literal["big", "little"] = Field(
        "big", description="Byte order of multi-byte values: big (network order) or little."
    )
    variants: list[VariantSpec] | None = Field(
        None,
        min_length=1,
        description="Several frame layouts, the first whose `when:` holds is read; a frame "
        "that matches none is dead-lettered (no_layout), never misread.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> BinaryLayoutSpec:
        if self.variants is None:
            if not self.reads_something():
                raise ValueError("a layout needs fields, then, channels or variants")
            return self
        if self.reads_something():
            raise ValueError(
                "with variants, fields/then/channels/constants belong inside each variant"
            )
        for index, variant in enumerate(self.variants[:-1]):
            if variant.when is None:
                raise ValueError(
                    f"variant {index} has no when: and would hide the variants after it; only "
                    "the last variant may match every frame"
                )
        return self

    def sentinel_names(self) -> frozenset[str]:
        """Names of values that can read as 'no reading' (no_reading: or bcd)."""
        bodies: list[FrameBodySpec] = list(self.variants) if self.variants else [self]
        names: set[str] = set()
        for body in bodies:
            groups = [body.fields, *(group.fields for group in body.then)]
            groups += [entry.fields for entry in body.channels.entries] if body.channels else []
            for fields in groups:
                names.update(
                    n for n, f in fields.items() if f.no_reading or f.type in ("bcd", "ascii")
                )
        return frozenset(names)

    def variant_only_names(self) -> frozenset[str]:
        """Names of values some variants declare and others do not."""
        if not self.variants:
            return frozenset()
        declared = [frozenset(variant.value_names()) for variant in self.variants]
        return frozenset.union(*declared) - frozenset.intersection(*declared)

    def uses_fport(self) -> bool:
        return any(v.when is not None and v.when.fport is not None for v in self.variants or ())

    def is_plain(self) -> bool:
        """Only fixed fields the original decoder reads (see BinaryFieldSpec.is_plain)."""
        return (
            self.variants is None
            and not (self.then or self.channels or self.constants)
            and all(field.is_plain for field in self.fields.values())
        )


def _no_fport(layout: BinaryLayoutSpec) -> None:
    if layout.uses_fport():
        raise ValueError(
            "when.fport needs an envelope that carries the LoRaWAN port: format chirpstack_v4 "
            "or tts_v3"
        )


class JsonBinarySpec(_Strict):
    path: str = Field(description="Dotted path of the base64 or hex text inside the JSON.")
    encoding: Literal["base64", "hex"] = Field(
        "base64", description="How the bytes are written as text."
    )
    layout: BinaryLayoutSpec = Field(
        description="The byte layout; its fields appear under `payload.` (e.g. payload.power_w)."
    )

    @field_validator("layout")
    @classmethod
    def _layout_without_port(cls, value: BinaryLayoutSpec) -> BinaryLayoutSpec:
        _no_fport(value)
        return value


class JsonDecodeSpec(_Strict):
    format: Literal["json"] = Field(description="The payload is one JSON document.")
    binary: JsonBinarySpec | None = Field(
        None,
        description="A binary frame carried as text inside the JSON (an envelope): decoded by "
        "`layout` and added under the key `payload`; the rest of the JSON stays addressable.",
    )


class ChirpstackV4DecodeSpec(_Strict):
    format: Literal["chirpstack_v4"] = Field(
        description="ChirpStack v4 'up' event JSON: the frame is base64 in `data`; use paths "
        "like payload.<name>, deviceInfo.devEui, deviceInfo.tags.<tag>, rxInfo.0.rssi, time."
    )
    layout: BinaryLayoutSpec = Field(description="The byte layout of the device's frame.")


class TtsV3DecodeSpec(_Strict):
    format: Literal["tts_v3"] = Field(
        description="The Things Stack v3 uplink JSON: the frame is base64 in "
        "uplink_message.frm_payload; use paths like payload.<name>, "
        "end_device_ids.device_id, uplink_message.rx_metadata.0.rssi, received_at."
    )
    layout: BinaryLayoutSpec = Field(description="The byte layout of the device's frame.")


class BinaryDecodeSpec(BinaryLayoutSpec):
    format: Literal["binary"] = Field(
        description="The payload is a binary frame; its values are addressed by name."
    )

    @model_validator(mode="after")
    def _without_port(self) -> BinaryDecodeSpec:
        _no_fport(self)
        return self


_COLUMN = r"^[A-Za-z_][A-Za-z0-9_-]*$"


class CsvDecodeSpec(_Strict):
    format: Literal["csv"] = Field(
        description="The payload is one delimited text line; numbers become numbers, an "
        "empty cell counts as missing."
    )
    delimiter: str = Field(
        ",", min_length=1, max_length=1, description="The one character between columns."
    )
    columns: list[Annotated[str, Field(pattern=_COLUMN)]] = Field(
        min_length=1,
        description="Column names in order; field paths name a column. A line with another "
        "number of columns is dead-lettered (wrong_column_count).",
    )

    @model_validator(mode="after")
    def _unique_columns(self) -> CsvDecodeSpec:
        repeated = sorted({name for name in self.columns if self.columns.count(name) > 1})
        if repeated:
            raise ValueError(f"column names repeat: {repeated}")
        return self


class KeyValueDecodeSpec(_Strict):
    format: Literal["keyvalue"] = Field(
        description="The payload is text like V=230.1;I=0.66;STATE=ON; numbers become "
        "numbers, spaces around keys and values are ignored, field paths name a key."
    )
    pair_separator: str = Field(";", min_length=1, description="Text between pairs.")
    kv_separator: str = Field("=", min_length=1, description="Text between key and value.")

    @model_validator(mode="after")
    def _separators_differ(self) -> KeyValueDecodeSpec:
        if self.pair_separator == self.kv_separator:
            raise ValueError("pair_separator and kv_separator must differ")
        return self


class RawDecodeSpec(_Strict):
    format: Literal["raw"] = Field(
        description="The whole payload is one value, addressed as `path: value`."
    )
    value_type: Literal["number", "text"] = Field(
        description="number: the text of an int or decimal number; text: UTF-8 text."
    )


CodecEnvelope = Literal["chirpstack_v4", "tts_v3", "raw"]


class JavascriptDecodeSpec(_Strict):
    format: Literal["javascript"] = Field(
        description="The device vendor's JavaScript payload codec decodes the frame: LoRaWAN "
        "TS013 decodeUplink(input), ChirpStack v3 Decode(fPort, bytes, variables) or TTN v2 "
        "Decoder(bytes, port). Its `data` object appears under `payload.` (e.g. "
        "payload.temperature); the envelope's keys stay addressable as for chirpstack_v4/tts_v3."
    )
    script: str = Field(
        min_length=1,
        description="The codec file, relative to this profile's folder (e.g. vendor-codec.js); "
        "read and compiled when the profile loads.",
    )
    envelope: CodecEnvelope = Field(
        "raw",
        description="Where the frame comes from: chirpstack_v4 (base64 `data`, fPort `fPort`), "
        "tts_v3 (uplink_message.frm_payload / f_port), or raw (the MQTT payload is the frame "
        "itself, with the port `fport`).",
    )
    fport: int = Field(
        1, ge=1, le=255, description="LoRaWAN port passed to the codec with envelope: raw."
    )
    timeout_ms: int = Field(
        100, ge=1, le=5000, description="CPU time a call may take (else codec_timeout)."
    )
    memory_mb: int = Field(
        16, ge=1, le=512, description="Heap the codec may use (else codec_memory)."
    )
    stack_kb: int = Field(
        256, ge=16, le=4096, description="JavaScript stack the codec may use (else codec_memory)."
    )
    # The codec's source text, set by the profile loader (registry.py) after it read `script`:
    # decoding stays free of file I/O. Private: a profile file cannot set it.
    _source: str = PrivateAttr("")

    @property
    def source(self) -> str:
        """The codec's text once the loader has read `script` ("" before)."""
        return self._source

    def attach_source(self, text: str) -> None:
        self._source = text


DecodeSpec = Annotated[
    JsonDecodeSpec
    | ChirpstackV4DecodeSpec
    | TtsV3DecodeSpec
    | BinaryDecodeSpec
    | CsvDecodeSpec
    | KeyValueDecodeSpec
    | RawDecodeSpec
    | JavascriptDecodeSpec,
    Field(discriminator="format"),
]


class ReadingsSpec(_Strict):
    path: str = Field(
        description="Dotted path to an array in the payload; each element is one reading. "
        "Field and tag paths are then relative to the element; start a path with '$.' "
        "to read from the message root instead."
    )


TimeFormat = Literal[
    "epoch_s",
    "epoch_ms",
    "epoch_us",
    "epoch_ns",
    "epoch_s_text",
    "epoch_ms_text",
    "epoch_us_text",
    "epoch_ns_text",
    "iso8601",
]
# A pattern must read back what it writes (aware, so %z and %Z write something).
_STRPTIME_EXAMPLE = datetime(2026, 11, 24, 8, 30, 15, tzinfo=UTC)


def _time_format(value: str) -> str:
    """A named format, or a strptime pattern that can read a time it wrote."""
    if value in get_args(TimeFormat):
        return value
    if "%" in value:
        try:
            written = _STRPTIME_EXAMPLE.strftime(value)
            datetime.strptime(written, value)  # naive: `timezone` applies
        except ValueError as exc:
            raise ValueError(
                f"strptime pattern {value!r} cannot read what it writes: {exc}"
            ) from None
        return value
    raise ValueError(
        f"Input should be {', '.join(repr(name) for name in get_args(TimeFormat))} or a strptime "
        f"pattern such as '%Y/%m/%d %H:%M:%S' (got {value!r})"
    )


class TimeSpec(_Strict):
    source: Literal["payload", "receive"] = Field(
        "payload", description="payload: the device's timestamp; receive: the gateway's clock."
    )
    path: str | None = Field(None, description="Dotted path of the timestamp (source=payload).")
    format: TimeFormat | str = Field(
        "epoch_ms",
        description="epoch_s/ms/us/ns numbers; epoch_s_text (and _ms/_us/_ns) the same numbers "
        'sent as text ("1732435200"), numbers accepted too; iso8601 text (an offset like '
        "+07:00 or Z is required unless `timezone` says which local time the device uses); or "
        "a strptime pattern such as '%Y/%m/%d %H:%M:%S' or '%d/%m/%Y %H:%M:%S' (local time in "
        "`timezone` unless the pattern has %z).",
    )

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        return _time_format(value)

    timezone: str = Field(
        "Asia/Ho_Chi_Minh",
        description="IANA zone of naive local timestamps (iso8601 without an offset).",
    )
    max_future_s: int | None = Field(
        DEFAULT_MAX_FUTURE_S,
        gt=0,
        description="A device time more than this many seconds ahead of the gateway's receive "
        "time is replaced by the receive time (reason clock_future, field time_replaced=true). "
        "null: never replaced.",
    )
    max_past_s: int | None = Field(
        DEFAULT_MAX_PAST_S,
        gt=0,
        description="A device time more than this many seconds behind the receive time (a clock "
        "reset to 1970, say) is replaced by the receive time (reason clock_past, field "
        "time_replaced=true). Default 30 days: longer than the broker keeps a backlog. "
        "null: never replaced.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _known_zone_name(value)

    @model_validator(mode="after")
    def _path_for_payload(self) -> TimeSpec:
        if self.source == "payload" and not self.path:
            raise ValueError("time.source 'payload' needs time.path")
        return self


Privacy = Literal["keep", "drop", "hash"]
_PRIVACY_DOC = (
    "Personal data (a licence plate, a phone's MAC address): keep (default) stores the value; "
    "drop never reads it; hash stores a keyed hash (HMAC-SHA256 with [privacy] hash_key, 16 hex "
    "digits), the same for the same value, so counts per value still work. The clear value "
    "never reaches InfluxDB, the dead-letter store or the logs."
)


class TagSpec(_Strict):
    topic: str | None = Field(None, description="Name of a {segment} of the topic pattern.")
    path: str | None = Field(None, description="Dotted path in the payload.")
    value: str | None = Field(None, description="A constant.")
    privacy: Privacy = Field("keep", description=_PRIVACY_DOC)

    @model_validator(mode="after")
    def _exactly_one_source(self) -> TagSpec:
        given = [name for name in ("topic", "path", "value") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a tag takes exactly one of: topic, path, value")
        if self.privacy != "keep" and self.path is None:
            # The topic is seen by the broker and every subscriber: hiding it here protects nothing.
            raise ValueError("privacy applies to payload values (path:), not to topic or value")
        return self


FieldType = Literal["float", "int", "bool", "string"]


class FieldSpec(_Strict):
    path: str = Field(description="Dotted path of the value in the payload (or reading).")
    type: FieldType = Field(description="Stored type; fixed for ever once data is written.")
    unit: str | None = Field(None, description="The device's unit, e.g. 'L/s', 'kPa', 'degC'.")
    canonical_unit: str | None = Field(
        None, description="Unit to store, converted from `unit` at load time, e.g. 'm^3/h'."
    )
    scale: float = Field(1.0, description="Multiply the raw value first (e.g. 0.1 for deci-).")
    offset: float = Field(0.0, description="Then add this.")
    map: dict[str, float | int | bool | str] | None = Field(
        None, description="Value map for enums, e.g. {'ON': 1, 'OFF': 0}; unmapped = dropped."
    )
    min: float | None = Field(None, description="Plausibility minimum (after conversion).")
    max: float | None = Field(None, description="Plausibility maximum (after conversion).")
    required: bool = Field(
        False,
        description="If true, a reading without a valid value is dropped, not just the field.",
    )
    privacy: Privacy = Field("keep", description=_PRIVACY_DOC + " hash needs type: string.")

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if self.privacy == "hash" and self.type != "string":
            raise ValueError("privacy: hash stores hex text: the field needs type: string")
        if self.privacy == "drop" and self.required:
            raise ValueError("privacy: drop never reads the value, so it cannot be required")
        if self.canonical_unit and not self.unit:
            raise ValueError("canonical_unit needs unit (the device's unit) to convert from")
        numeric = self.type in ("float", "int")
        if not numeric and (self.unit or self.min is not None or self.max is not None):
            raise ValueError(f"unit/min/max only apply to numeric fields, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class OutputSpec(_Strict):
    measurement: str = Field(pattern=_IDENT, description="Canonical measurement name.")
    database: str | None = Field(
        None,
        description="InfluxDB database/bucket (default: config). A fixed name: no topic "
        "segment or payload value can choose or change it. With [tenants] configured, one of "
        "the profile's tenant's databases.",
    )
    retention_policy: str | None = Field(None, description="v1 retention policy.")

    max_series: int = Field(
        DEFAULT_MAX_SERIES,
        gt=0,
        description="Cardinality budget: distinct tag sets (series) this profile may create per "
        "gateway run; readings of further new series are refused (cardinality_exceeded) and "
        "dead-lettered. Raise it for a large fleet, never to admit a per-message tag.",
    )

    @field_validator("database", "retention_policy")
    @classmethod
    def _fixed_name(cls, value: str | None) -> str | None:
        if value is not None and ("{" in value or "}" in value or not value.strip()):
            raise ValueError(
                "a fixed, non-empty name: destinations are never taken from the topic or "
                "payload, so {segment} placeholders are not substituted here"
            )
        return value


_DEVICE_ID = r"^[^\s/#+]{1,128}$"


class DevicesSpec(_Strict):
    auto_register: bool = Field(
        True,
        description="true (default): any device publishing on the profile's topics is accepted. "
        "false: only the devices listed in `known` or `known_file`; others are quarantined "
        "(dead letter unknown_device, nothing written).",
    )
    known: list[Annotated[str, Field(pattern=_DEVICE_ID)]] = Field(
        default_factory=list, description="Device ids (the {device_id} tag) that may report."
    )
    known_file: str | None = Field(
        None,
        description="A text file next to the profile (or a path relative to it) with one "
        "device id per line; # starts a comment. Reloaded with the profiles.",
    )

    @model_validator(mode="after")
    def _lists_devices(self) -> DevicesSpec:
        if self.auto_register and (self.known or self.known_file):
            raise ValueError(
                "known/known_file only apply with auto_register: false (true accepts any device)"
            )
        if not self.auto_register and not (self.known or self.known_file):
            raise ValueError(
                "auto_register: false needs the known devices: known: [...] or known_file"
            )
        return self


class ProfileSpec(_Strict):
    id: str = Field(pattern=_PROFILE_ID, description="Unique profile id, e.g. mh-streetlight-json.")
    version: int = Field(ge=1, description="Bump when the mapping changes.")
    domain: Literal["lighting", "water", "traffic", "connectivity", "environment", "energy"] = (
        Field(description="The town service the data belongs to; the file's folder.")
    )
    manufacturer: str = Field("", description="Free text: who makes the device.")
    model: str = Field("", description="Free text: the device model.")
    description: str = Field("", description="Free text: what the device is and how it reports.")
    match: MatchSpec = Field(description="Which MQTT messages this profile takes.")
    decode: DecodeSpec = Field(
        description="How the payload's bytes become a structure; `format` picks the table."
    )
    readings: ReadingsSpec | None = Field(
        None, description="Present when one message carries an array of readings."
    )
    time: TimeSpec = Field(
        description="Where each reading's time comes from, and how far a device clock may be off."
    )
    liveness: LivenessSpec | None = Field(
        None,
        description="Device liveness: the expected reporting interval and the availability "
        "(last will) topic. Absent: devices of this profile are never reported stale.",
    )
    output: OutputSpec = Field(
        description="Where the points go: measurement, database, retention policy, series budget."
    )
    tags: dict[Annotated[str, Field(pattern=_IDENT)], TagSpec] = Field(
        default_factory=dict,
        description="name -> where its value comes from; tags identify a series, keep them few.",
    )
    fields: dict[Annotated[str, Field(pattern=_IDENT)], FieldSpec] = Field(
        min_length=1,
        description="name -> where its value comes from and how it is checked and converted.",
    )
    tenant: str | None = Field(
        None,
        pattern=_IDENT,
        description="The agency that owns this profile's data: a [tenants.<name>] of the "
        "gateway configuration; output.database must be one of its destinations.",
    )
    devices: DevicesSpec = Field(
        default_factory=DevicesSpec,
        description="Which devices may report on these topics (device provisioning).",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _locate_in_yaml(cls, data: Any, handler: ModelWrapValidatorHandler[ProfileSpec]) -> Any:
        """Drop the union tag pydantic puts in error locations (decode.csv.columns), so each
        location is a path of YAML keys (decode.columns) that the loader maps to a line."""
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if not any(_is_tagged(error["loc"]) for error in errors):
                raise
            raise ValidationError.from_exception_data(
                exc.title,
                [
                    {
                        "type": PydanticCustomError(
                            error["type"], "{message}", {"message": error["msg"]}
                        ),
                        "loc": _untagged(error["loc"]),
                        "input": error["input"],
                    }
                    for error in errors
                ],
            ) from None

    @model_validator(mode="after")
    def _tags_refer_to_topic(self) -> ProfileSpec:
        segments = parse_pattern(self.match.topic).segment_names
        if "device_id" not in segments and "device_id" not in self.tags:
            raise _located(
                ("match", "topic"),
                self.match.topic,
                "the pattern must capture the device identity as {device_id}, or "
                "tags.device_id must read it from the payload (path:)",
            )
        for name, tag in self.tags.items():
            if tag.topic is not None and tag.topic not in segments:
                raise _located(
                    ("tags", name, "topic"),
                    tag.topic,
                    f"tag {name!r} reads topic segment {{{tag.topic}}}, but the pattern "
                    f"{self.match.topic!r} only has {', '.join(segments) or 'no segments'}",
                )
        for name in self.fields:
            if name in self.tags:
                raise _located(
                    ("fields", name),
                    name,
                    f"{name!r} is declared both as a tag and as a field; rename one",
                )
        if all(spec.privacy == "drop" for spec in self.fields.values()):
            raise _located(
                ("fields",),
                sorted(self.fields),
                "every field has privacy: drop; keep at least one field to store",
            )
        if TIME_REPLACED_FIELD in self.fields:
            raise _located(
                ("fields", TIME_REPLACED_FIELD),
                TIME_REPLACED_FIELD,
                f"{TIME_REPLACED_FIELD!r} is reserved: the gateway sets it on readings whose "
                "device time it replaced (see time.max_future_s)",
            )
        return self

    @model_validator(mode="after")
    def _availability_apart_from_readings(self) -> ProfileSpec:
        topic = self.liveness.availability_topic if self.liveness else None
        if topic is not None and parse_pattern(topic).overlaps(parse_pattern(self.match.topic)):
            raise _located(
                ("liveness", "availability_topic"),
                topic,
                f"can match the same topics as match.topic {self.match.topic!r}: readings would "
                "be taken for availability messages; make one of the literal levels differ "
                "(e.g. .../status instead of .../telemetry)",
            )
        return self


def _located(loc: tuple[str, ...], value: object, message: str) -> ValidationError:
    """An error a cross-field check reports at `loc`, so the YAML line points at the culprit."""
    error = PydanticCustomError("value_error", "{message}", {"message": message})
    return ValidationError.from_exception_data(
        "ProfileSpec", [{"type": error, "loc": loc, "input": value}]
    )


_FORMATS = frozenset(
    {"json", "chirpstack_v4", "tts_v3", "binary", "csv", "keyvalue", "raw", "javascript"}
)


def _is_tagged(loc: tuple[int | str, ...]) -> bool:
    return len(loc) > 1 and loc[0] == "decode" and loc[1] in _FORMATS


def _untagged(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    return (loc[0], *loc[2:]) if _is_tagged(loc) else loc


# Names that usually carry a new value per message: as a tag, each value is a new series.
_PER_MESSAGE = re.compile(
    r"uuid|guid|plate|vehicle_?id|seq|f_?cnt|timestamp|^ts$|^time$|"
    r"(message|msg|event|request|dedup\w*)_?id$",
    re.IGNORECASE,
)


def cardinality_warnings(spec: ProfileSpec) -> list[tuple[tuple[str, ...], str]]:
    """(location, message) for tags that look like per-message values (a load-time lint).

    Allowed, because a name can mislead, but worth a look: every distinct value of a tag is a
    new series, and the profile's `output.max_series` budget runs out quickly.
    """
    warnings: list[tuple[tuple[str, ...], str]] = []
    for name, tag in spec.tags.items():
        source = tag.path or tag.topic
        if source is None:  # a constant is one series
            continue
        last_key = source.removeprefix("$.").rsplit(".", 1)[-1]
        if _PER_MESSAGE.search(name) or _PER_MESSAGE.search(last_key):
            warnings.append(
                (
                    ("tags", name),
                    f"tag {name!r} reads {source!r}, which looks like a per-message value; "
                    "each distinct value creates a series (make it a field unless it "
                    "identifies a device or place)",
                )
            )
    return warnings
