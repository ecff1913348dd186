"""`gateway profiles import`: a profile from The Things Network's LoRaWAN device repository.

From a local checkout of github.com/TheThingsNetwork/lorawan-devices:

    vendor/<vendor>/<device>.yaml   firmwareVersions[].profiles[<region>].codec -> <codec id>
    vendor/<vendor>/<codec id>.yaml uplinkDecoder: {fileName, examples: [{description,
                                    input: {bytes, fPort}, output: {data, errors, warnings}}]}

it writes, into one folder: the vendor's codec file (copied as it is: the gateway runs it in its
sandbox, gateway/stages/codec.py), a profile that runs it on The Things Stack (or ChirpStack)
uplinks of that model, with fields proposed from the examples' `data` (units where the examples
give them, as Decentlab's {value, unit}), and golden vectors made from every example: bytes and
fPort in an uplink envelope -> the points the vendor's expected `data` maps to, or the
dead letter codec_error for an example that expects errors. `gateway profiles test --golden`
then checks that the codec, run by the gateway, gives what the vendor wrote down.

Offline tooling (reads the checkout, writes files); never on the message path.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.errors import ConfigError, DecodeError
from gateway.profiles.compile import check_unit
from gateway.profiles.registry import load_file
from gateway.stages.envelope import lorawan_decoder
from gateway.stages.lineprotocol import encode_point
from gateway.stages.normalize import normalize

ENVELOPES = ("tts_v3", "chirpstack_v4")
RECEIVED = "2026-11-24T01:00:00Z"  # the golden uplinks' receive time (a fixed, recent day)
_TOPICS = {
    "tts_v3": ("v3/{application_id}/devices/{device_id}/up", "v3/imported/devices/{device}/up"),
    "chirpstack_v4": (
        "application/{application_id}/device/{dev_eui}/event/up",
        "application/imported/device/{device}/event/up",
    ),
}
_MODEL_PATHS = {
    "tts_v3": "uplink_message.version_ids.model_id",
    "chirpstack_v4": "deviceInfo.deviceProfileName",
}
_DEVICE_TAGS = {"tts_v3": {"topic": "device_id"}, "chirpstack_v4": {"path": "deviceInfo.devEui"}}
_TAKEN_NAMES = frozenset({"device_id", "time_replaced"})  # a tag, and normalize's own field


@dataclass
class ImportReport:
    profile: Path
    codec: Path
    golden: Path
    examples: list[dict[str, Any]]  # the codec's examples, as the repository has them
    unmapped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Device:
    vendor: str
    name: str
    title: str
    description: str
    codec_file: Path
    examples: list[dict[str, Any]]


def import_device(  # noqa: PLR0917  # the CLI's options, one to one
    checkout: Path,
    device: str,
    out: Path,
    firmware: str | None = None,
    region: str | None = None,
    envelope: str = "tts_v3",
    domain: str = "environment",
) -> ImportReport:
    """Write <out>/<device>.yaml, the codec next to it and <out>/<profile id>.json (golden).
    ConfigError when the checkout, device, firmware or region cannot be found or is ambiguous."""
    if envelope not in ENVELOPES:
        raise ConfigError(f"--envelope {envelope!r}: one of {', '.join(ENVELOPES)}")
    found = _read_device(checkout, device, firmware, region)
    out.mkdir(parents=True, exist_ok=True)
    codec = out / found.codec_file.name
    shutil.copyfile(found.codec_file, codec)
    report = ImportReport(out / f"{found.name}.yaml", codec, out, found.examples)
    fields = _propose_fields(found.examples, report.unmapped)
    if not fields:  # the radio figures are still a valid profile to start from
        report.unmapped.append("no example gives the codec's data: write fields: by hand")
    profile_id = _slug(f"{found.vendor}-{found.name}")
    report.profile.write_text(
        _profile_text(found, profile_id, codec.name, envelope, domain, fields, report.unmapped),
        encoding="utf-8",
    )
    report.golden = out / f"{profile_id}.json"
    cases = list(_golden_cases(found, report.profile, envelope, report.unmapped))
    report.golden.write_text(_golden_text(cases), encoding="utf-8")
    return report


# --- the repository ----------------------------------------------------------------------------


def _read_device(checkout: Path, device: str, firmware: str | None, region: str | None) -> _Device:
    vendor, _, name = device.partition("/")
    folder = checkout / "vendor" / vendor
    definition = _yaml(folder / f"{name}.yaml", f"{device}: no such device in {checkout}")
    codec_id = _codec_id(device, definition, firmware, region)
    codec = _yaml(folder / f"{codec_id}.yaml", f"{device}: codec {codec_id!r} is missing")
    decoder = codec.get("uplinkDecoder") or {}
    if "fileName" not in decoder:
        raise ConfigError(f"{device}: codec {codec_id!r} has no uplinkDecoder.fileName")
    return _Device(
        vendor,
        name,
        str(definition.get("name", name)),
        str(definition.get("description", "")),
        folder / str(decoder["fileName"]),
        [e for e in decoder.get("examples") or [] if isinstance(e, dict)],
    )


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. The repository's own tools read YAML 1.2, so an
    example's `switch: on` or `NO: 77` (nitric oxide) is text there, not PyYAML's 1.1 boolean."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _yaml(path: Path, missing: str) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)  # noqa: S506  # a SafeLoader
    except FileNotFoundError:
        raise ConfigError(missing) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a YAML mapping")
    return data


def _codec_id(
    device: str, definition: dict[str, Any], firmware: str | None, region: str | None
) -> str:
    """The one codec of the chosen firmware and region; several candidates need a choice."""
    versions = [v for v in definition.get("firmwareVersions") or [] if isinstance(v, dict)]
    if firmware is not None:
        versions = [v for v in versions if str(v.get("version")) == firmware]
        if not versions:
            raise ConfigError(f"{device}: no firmware version {firmware!r}")
    by_choice: dict[tuple[str, str], str] = {}
    for version in versions:
        for name, profile in (version.get("profiles") or {}).items():
            if isinstance(profile, dict) and profile.get("codec") and region in (None, name):
                by_choice[(str(version.get("version")), str(name))] = str(profile["codec"])
    codecs = sorted(set(by_choice.values()))
    if not codecs:
        raise ConfigError(
            f"{device}: no codec for firmware {firmware or 'any'}, region {region or 'any'}"
        )
    if len(codecs) > 1:
        choices = ", ".join(f"--firmware {v} --region {r}" for v, r in sorted(by_choice))
        raise ConfigError(
            f"{device}: several codecs ({', '.join(codecs)}); choose one of: {choices}"
        )
    return codecs[0]


# --- fields ------------------------------------------------------------------------------------


def _propose_fields(
    examples: list[dict[str, Any]], unmapped: list[str]
) -> dict[str, dict[str, Any]]:
    """name -> field spec, from the leaves of every example's expected `data`."""
    kinds: dict[str, set[str]] = {}
    units: dict[str, str] = {}
    for example in examples:
        data = (example.get("output") or {}).get("data")
        if isinstance(data, dict):
            for path, value, unit in _leaves(data, (), unmapped):
                kinds.setdefault(path, set()).add(_kind(value))
                if unit:
                    units[path] = unit
    fields: dict[str, dict[str, Any]] = {}
    for path, seen in kinds.items():
        kind = "float" if seen == {"int", "float"} else next(iter(seen)) if len(seen) == 1 else None
        if kind is None:
            unmapped.append(f"data.{path}: values of several types ({', '.join(sorted(seen))})")
            continue
        spec: dict[str, Any] = {"path": f"payload.{path}", "type": kind}
        unit = units.get(path)
        if unit and kind in ("int", "float"):
            _with_unit(spec, path, unit, unmapped)
        fields[_field_name(path, fields)] = spec
    return fields


def _leaves(
    data: dict[str, Any], prefix: tuple[str, ...], unmapped: list[str]
) -> Iterator[tuple[str, Any, str | None]]:
    """(dotted path, value, unit) of every scalar; {value, unit, ...} objects give one leaf."""
    if "value" in data and not isinstance(data["value"], dict | list):
        unit = data.get("unit")
        yield ".".join((*prefix, "value")), data["value"], unit if isinstance(unit, str) else None
        return
    for key, value in data.items():
        where = (*prefix, str(key))
        if isinstance(value, dict):
            yield from _leaves(value, where, unmapped)
        elif isinstance(value, list):
            note = f"data.{'.'.join(where)}: an array (several values per frame): not mapped"
            if note not in unmapped:
                unmapped.append(note)
        elif value is not None and re.fullmatch(r"[A-Za-z0-9_]+", str(key)):
            yield ".".join(where), value, None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    return "float" if isinstance(value, float) else "string"


def _with_unit(spec: dict[str, Any], path: str, unit: str, unmapped: list[str]) -> None:
    spelled = {"°C": "degC", "°F": "degF", "%": "percent", "%RH": "percent"}.get(unit, unit)
    try:
        check_unit(("unit",), spelled)
    except ValueError:
        unmapped.append(f"data.{path}: unit {unit!r} is not one pint knows; left out")
        return
    spec["unit"] = spelled


def _field_name(path: str, taken: dict[str, Any]) -> str:
    words = path.removesuffix(".value").replace(".", "_")
    name = re.sub(r"[^a-z0-9_]", "_", re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", words).lower())
    name = re.sub(r"_+", "_", name).strip("_") or "value"
    if not name[0].isalpha():
        name = f"f_{name}"
    if name in _TAKEN_NAMES:
        name = f"{name}_value"
    base, number = name, 2
    while name in taken:
        name, number = f"{base}_{number}", number + 1
    return name


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug if slug and slug[0].isalnum() else f"d-{slug}"


def _profile_text(  # noqa: PLR0917  # the parts of one file
    device: _Device,
    profile_id: str,
    script: str,
    envelope: str,
    domain: str,
    fields: dict[str, dict[str, Any]],
    unmapped: list[str],
) -> str:
    measurement = re.sub(r"[^a-z0-9_]", "_", device.name.lower())
    profile = {
        "id": profile_id,
        "version": 1,
        "domain": domain,
        "manufacturer": device.vendor,
        "model": device.name,
        "description": device.title,
        "match": {
            "topic": _TOPICS[envelope][0],
            "content": {"path": _MODEL_PATHS[envelope], "equals": device.name},
        },
        "decode": {"format": "javascript", "script": script, "envelope": envelope},
        "time": {"path": "radio.time", "format": "iso8601"},
        "output": {"measurement": measurement if measurement[0].isalpha() else f"m_{measurement}"},
        "tags": {"device_id": _DEVICE_TAGS[envelope]},
        "fields": {
            **fields,
            "rssi_dbm": {"path": "radio.rssi", "type": "int", "unit": "dBm"},
            "snr_db": {"path": "radio.snr", "type": "float", "unit": "dB"},
        },
    }
    header = [
        f"# Imported from The Things Network's device repository: {device.vendor}/{device.name}",
        f"# ({device.title}). Codec: {script}, run by the gateway as the vendor wrote it.",
        "# Fields are proposed from the codec's examples; review names, units and ranges.",
    ]
    header += [f"# not mapped: {note}" for note in unmapped]
    text = yaml.safe_dump(profile, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(header) + "\n" + text


# --- golden vectors ----------------------------------------------------------------------------


def _golden_cases(
    device: _Device, profile_file: Path, envelope: str, unmapped: list[str]
) -> Iterator[dict[str, Any]]:
    profile = load_file(profile_file)
    topic = _TOPICS[envelope][1].format(device=f"{device.name}-1")
    segments = profile.pattern.match(topic) or {}
    for number, example in enumerate(device.examples, 1):
        given, wanted = example.get("input") or {}, example.get("output") or {}
        name = str(example.get("description") or f"example {number}")
        try:
            frame, fport = bytes(given["bytes"]), int(given["fPort"])
        except (KeyError, TypeError, ValueError):
            unmapped.append(f"example {name!r}: input without bytes and fPort; no vector")
            continue
        payload = _uplink(envelope, device, frame, fport)
        case: dict[str, Any] = {
            "name": name,
            "topic": topic,
            "payload": payload,
            "received": RECEIVED,
        }
        if wanted.get("errors"):
            yield {**case, "dead_letter": "codec_error"}
            continue
        expected = lorawan_decoder(envelope, lambda *_: wanted.get("data"))  # noqa: B023  # used at once
        drops: list[tuple[str, str]] = []
        try:
            points = normalize(profile, expected(payload.encode()), segments, _received_ns(), drops)
        except DecodeError as exc:
            yield {**case, "dead_letter": exc.reason}
            continue
        lines = [encode_point(point) for point in points]
        yield {**case, "lines": lines, "drops": [list(d) for d in drops]}


def _uplink(envelope: str, device: _Device, frame: bytes, fport: int) -> str:
    """An uplink of the device as the network server publishes it, carrying `frame`."""
    data = base64.b64encode(frame).decode()
    radio = {"rssi": -97, "snr": 7.5}
    if envelope == "tts_v3":
        event: dict[str, Any] = {
            "end_device_ids": {"device_id": f"{device.name}-1", "dev_eui": "70B3D57ED0000001"},
            "received_at": RECEIVED,
            "uplink_message": {
                "f_port": fport,
                "frm_payload": data,
                "rx_metadata": [{"gateway_ids": {"gateway_id": "gw-1"}, **radio}],
                "version_ids": {"brand_id": device.vendor, "model_id": device.name},
                "received_at": RECEIVED,
            },
        }
    else:
        event = {
            "time": RECEIVED,
            "deviceInfo": {"deviceProfileName": device.name, "devEui": "70b3d57ed0000001"},
            "fPort": fport,
            "data": data,
            "rxInfo": [{"gatewayId": "0016c001f153a14c", **radio}],
        }
    return json.dumps(event, separators=(",", ":"))


def _received_ns() -> int:
    return 1795482000 * 10**9  # RECEIVED


def _golden_text(cases: list[dict[str, Any]]) -> str:
    lines = ",\n".join("  " + json.dumps(case, ensure_ascii=False) for case in cases)
    return f"[\n{lines}\n]\n"
