"""The device profile file format, validated by pydantic with unknown keys forbidden.

One YAML file per device model. The technician-facing documentation of every key lives in the
`description` of its field, so `gateway profiles schema` exports it to editors.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.profiles.topics import parse_pattern

_IDENT = r"^[a-z][a-z0-9_]*$"
_PROFILE_ID = r"^[a-z0-9][a-z0-9._-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchSpec(_Strict):
    topic: str = Field(
        description="MQTT topic pattern; {name} captures one level, e.g. "
        "city/water/{district}/{device_id}/telemetry. Must capture {device_id}."
    )

    @field_validator("topic")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        pattern = parse_pattern(value)
        if "device_id" not in pattern.segment_names:
            raise ValueError("the pattern must capture the device identity as {device_id}")
        return value


class JsonDecodeSpec(_Strict):
    format: Literal["json"] = Field(description="The payload is one JSON document.")


DecodeSpec = Annotated[JsonDecodeSpec, Field(discriminator="format")]


class ReadingsSpec(_Strict):
    path: str = Field(
        description="Dotted path to an array in the payload; each element is one reading. "
        "Field and tag paths are then relative to the element; start a path with '$.' "
        "to read from the message root instead."
    )


TimeFormat = Literal["epoch_s", "epoch_ms", "epoch_us", "epoch_ns", "iso8601"]


class TimeSpec(_Strict):
    source: Literal["payload", "receive"] = Field(
        "payload", description="payload: the device's timestamp; receive: the gateway's clock."
    )
    path: str | None = Field(None, description="Dotted path of the timestamp (source=payload).")
    format: TimeFormat = Field(
        "epoch_ms",
        description="epoch_s/ms/us/ns numbers, or iso8601 text (an offset like +07:00 or Z is "
        "required unless `timezone` says which local time the device uses).",
    )
    timezone: str = Field(
        "Asia/Ho_Chi_Minh",
        description="IANA zone of naive local timestamps (iso8601 without an offset).",
    )

    @model_validator(mode="after")
    def _path_for_payload(self) -> TimeSpec:
        if self.source == "payload" and not self.path:
            raise ValueError("time.source 'payload' needs time.path")
        return self


class TagSpec(_Strict):
    topic: str | None = Field(None, description="Name of a {segment} of the topic pattern.")
    path: str | None = Field(None, description="Dotted path in the payload.")
    value: str | None = Field(None, description="A constant.")

    @model_validator(mode="after")
    def _exactly_one_source(self) -> TagSpec:
        given = [name for name in ("topic", "path", "value") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a tag takes exactly one of: topic, path, value")
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

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
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
    database: str | None = Field(None, description="InfluxDB database/bucket (default: config).")
    retention_policy: str | None = Field(None, description="v1 retention policy.")


class ProfileSpec(_Strict):
    id: str = Field(pattern=_PROFILE_ID, description="Unique profile id, e.g. mh-streetlight-json.")
    version: int = Field(ge=1, description="Bump when the mapping changes.")
    domain: Literal["lighting", "water", "traffic", "connectivity", "environment", "energy"]
    manufacturer: str = ""
    model: str = ""
    description: str = ""
    match: MatchSpec
    decode: DecodeSpec
    readings: ReadingsSpec | None = Field(
        None, description="Present when one message carries an array of readings."
    )
    time: TimeSpec
    output: OutputSpec
    tags: dict[Annotated[str, Field(pattern=_IDENT)], TagSpec] = Field(default_factory=dict)
    fields: dict[Annotated[str, Field(pattern=_IDENT)], FieldSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _tags_refer_to_topic(self) -> ProfileSpec:
        segments = parse_pattern(self.match.topic).segment_names
        for name, tag in self.tags.items():
            if tag.topic is not None and tag.topic not in segments:
                raise ValueError(
                    f"tag {name!r} reads topic segment {{{tag.topic}}}, but the pattern "
                    f"{self.match.topic!r} only has {', '.join(segments)}"
                )
        clash = set(self.tags) & set(self.fields)
        if clash:
            raise ValueError(f"names used both as tag and field: {sorted(clash)}")
        return self
